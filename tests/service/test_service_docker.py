"""Dockerfile and docker-compose.yml, checked without a Docker engine.

The compose file is validated against the compose specification, the Dockerfile is linted with
hadolint, and every file, port, command and config profile the two reference is compared with
the code: the CLI parser, the config loader and the HTTP routes.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # PyYAML, pinned in requirements-dev.lock (a dependency of moto[server])
from packaging.requirements import Requirement  # pinned in requirements-dev.lock (pytest's)
from packaging.utils import canonicalize_name

from ingest.cli import build_parser
from ingest.emulator.cli import options_from_args as emulator_options_from_args
from ingest.emulator.destinations import check_bucket
from ingest.service.config import load_config
from ingest.service.http import ROUTES

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGE_ROOT = "/app"  # WORKDIR of the final stage


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    pairs = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(pairs) if word == "FROM")
    return pairs[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            env.update(part.split("=", 1) for part in shlex.split(rest))  # type: ignore[misc]
    return env


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text("utf-8"))
    return data


def our_services() -> dict[str, dict[str, Any]]:
    """Services running this project's image (built from the Dockerfile)."""
    return {name: s for name, s in compose()["services"].items() if s.get("build")}


def in_repo(image_path: str) -> Path:
    """Map a path inside the image (under WORKDIR, copied from the repo) to the repo."""
    assert image_path.startswith(IMAGE_ROOT + "/"), image_path
    return REPO / image_path.removeprefix(IMAGE_ROOT + "/")


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
         str(REPO / "docker-compose.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint_without_warnings() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(REPO / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    # Any rule switched off must say why on the same line.
    for line in (REPO / "Dockerfile").read_text("utf-8").splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"ignore=\S+\s+\S", line), f"unexplained ignore: {line}"


def test_dockerfile_is_multi_stage_pinned_non_root_and_exec_form() -> None:
    pairs = dockerfile_instructions()
    bases = [rest.split()[0] for word, rest in pairs if word == "FROM"]
    assert len(bases) >= 2
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    stage = dict(final_stage())
    assert re.fullmatch(r"\d+:\d+", stage["USER"])
    assert not stage["USER"].startswith("0:")
    assert json.loads(stage["ENTRYPOINT"]) == ["python", "-m", "ingest"]
    assert (REPO / "ingest" / "__main__.py").is_file()
    build_parser().parse_args(json.loads(stage["CMD"]))
    installs = " ".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    assert "-r requirements.lock" in installs
    assert "--no-deps" in installs  # the lock alone decides every version...
    assert "pip check" in installs  # ...and the build fails if it misses a dependency
    assert not re.search(r"\b(apt-get|gcc|build-essential|curl|wget)\b", installs)


def lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / name).read_text("utf-8").split():
        package, _, version = line.partition("==")
        pins[canonicalize_name(package)] = version
    return pins


def test_lock_pins_exact_versions() -> None:
    lines = (REPO / "requirements.lock").read_text("utf-8").split()
    assert lines
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", line) for line in lines), lines


def test_lock_is_complete_and_what_the_tests_run() -> None:
    """The image installs the lock with --no-deps: every runtime dependency (of the project and
    of each locked package, for Linux/CPython 3.11) must be pinned, at the versions tested here."""
    pins = lock("requirements.lock")
    assert all(lock("requirements-dev.lock").get(name) == v for name, v in pins.items())
    project = importlib.metadata.requires("ingest") or []
    wanted = [Requirement(r) for r in project]
    for name in pins:
        assert importlib.metadata.version(name) == pins[name], name
        wanted += [Requirement(r) for r in importlib.metadata.requires(name) or []]
    linux = {"extra": "", "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
    for requirement in wanted:
        if requirement.marker is None or requirement.marker.evaluate(linux):
            assert canonicalize_name(requirement.name) in pins, str(requirement)


def test_copied_files_exist_and_are_not_docker_ignored() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for word, rest in dockerfile_instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.rstrip("/") not in ignored, source


def test_image_environment_is_valid_configuration() -> None:
    env = image_env()
    ingest_env = {k: v for k, v in env.items() if k.startswith("INGEST_")}
    assert ingest_env["INGEST_HTTP_HOST"] == "0.0.0.0"
    config = load_config({}, ingest_env)  # raises on an unknown value
    stage = dict(final_stage())
    assert stage["EXPOSE"] == str(config.http_port)


def test_healthcheck_asks_healthz_with_python() -> None:
    stage = dict(final_stage())
    check = stage["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"
    assert "/healthz" in command[-1]
    assert "/healthz" in ROUTES
    assert "curl" not in check
    assert "wget" not in check
    assert "INGEST_HTTP_PORT" in command[-1]


def test_compose_commands_parse_with_the_real_cli() -> None:
    parser = build_parser()
    for name, service in our_services().items():
        args = parser.parse_args(service["command"])
        assert args.command in ("run", "emulator"), name


def test_producer_profile_points_at_the_emulator_service() -> None:
    services = our_services()
    producer_args = build_parser().parse_args(services["producer"]["command"])
    config_path = in_repo(producer_args.config)
    assert config_path.is_file()
    env = {**image_env(), **services["producer"].get("environment", {})}
    config = load_config({"config": str(config_path)}, env)
    emulator_args = build_parser().parse_args(services["emulator"]["command"])
    endpoint = urlsplit(config.endpoint_url or "")
    assert endpoint.hostname == "emulator"
    assert endpoint.port == emulator_args.port
    assert emulator_args.host == "0.0.0.0"  # reachable from the other containers
    assert config.stream in emulator_args.create_stream
    assert not config.local
    # Published port and Prometheus target agree with the producer's HTTP port.
    (published,) = services["producer"]["ports"]
    assert published == f"127.0.0.1:{config.http_port}:{config.http_port}"
    scrape = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text("utf-8"))
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] in ROUTES
    assert job["static_configs"][0]["targets"] == [f"producer:{config.http_port}"]


def test_emulator_destination_is_kept_and_health_gates_the_producer() -> None:
    """Objects go to a named volume (--data-dir) or to the MinIO service (--s3-*)."""
    services = our_services()
    emulator = services["emulator"]
    args = build_parser().parse_args(emulator["command"])
    options = emulator_options_from_args(args)  # the emulator's own checks of its flags
    if options.data_dir is not None:
        mounts = {m.split(":")[1]: m.split(":")[0] for m in emulator["volumes"]}
        assert mounts[str(args.data_dir)] in compose()["volumes"]
        assert f"mkdir {args.data_dir}" in " ".join(r for w, r in final_stage() if w == "RUN")
    else:
        assert options.s3_bucket is not None
        assert urlsplit(options.s3_endpoint_url or "").hostname in compose()["services"]
    assert str(args.port) in " ".join(emulator["healthcheck"]["test"])
    assert services["producer"]["depends_on"]["emulator"]["condition"] == "service_healthy"


def test_emulator_writes_to_the_minio_service_with_its_credentials() -> None:
    services = compose()["services"]
    minio, emulator = services["minio"], services["emulator"]
    args = build_parser().parse_args(emulator["command"])
    options = emulator_options_from_args(args)
    # Pinned (MinIO publishes RELEASE.<timestamp> tags), never :latest.
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", minio["image"])
    command = minio["command"]
    assert command[:2] == ["server", "/data"]
    api_port = int(command[command.index("--address") + 1].rsplit(":", 1)[1])
    console_port = int(command[command.index("--console-address") + 1].rsplit(":", 1)[1])
    endpoint = urlsplit(options.s3_endpoint_url or "")
    assert (endpoint.scheme, endpoint.hostname, endpoint.port) == ("http", "minio", api_port)
    assert check_bucket(options.s3_bucket or "") is None
    # The emulator signs with MinIO's root user; MinIO refuses passwords under 8 characters.
    env = minio["environment"]
    assert emulator["environment"]["AWS_ACCESS_KEY_ID"] == env["MINIO_ROOT_USER"]
    assert emulator["environment"]["AWS_SECRET_ACCESS_KEY"] == env["MINIO_ROOT_PASSWORD"]
    assert len(env["MINIO_ROOT_PASSWORD"]) >= 8
    # Its data survives restarts on a named volume; its ports are published on localhost only.
    source, target = minio["volumes"][0].split(":")[:2]
    assert (source in compose()["volumes"], target) == (True, "/data")
    assert set(minio["ports"]) == {
        f"127.0.0.1:{api_port}:{api_port}",
        f"127.0.0.1:{console_port}:{console_port}",
    }
    # The emulator starts once MinIO serves (it creates the bucket at start).
    assert emulator["depends_on"]["minio"]["condition"] == "service_healthy"
    assert minio["healthcheck"]["test"][:2] == ["CMD", "mc"]


def test_prometheus_uses_the_shipped_config_and_binds_localhost() -> None:
    prometheus = compose()["services"]["prometheus"]
    assert not prometheus["image"].endswith(":latest")
    source = prometheus["volumes"][0].split(":")[0]
    assert (REPO / source).resolve() == REPO / "config" / "prometheus.yml"
    for service in compose()["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


@pytest.mark.parametrize("profile", ["default.toml", "aws.toml", "compose.toml"])
def test_every_profile_is_in_the_image(profile: str) -> None:
    copied = [rest for word, rest in final_stage() if word == "COPY"]
    assert any(rest.startswith("config/") for rest in copied)
    assert (REPO / "config" / profile).is_file()
