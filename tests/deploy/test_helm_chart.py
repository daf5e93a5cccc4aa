"""The Helm chart (deploy/helm/ingest), checked offline: contract + manifest, not a cluster run.

A real Helm binary (installed by `make setup` with deploy/install_helm.py) renders the chart for a
matrix of values; every manifest is validated with `kubernetes-validate --strict` against the
schemas of the oldest and newest Kubernetes version the chart supports; the ServiceMonitor (a
Prometheus Operator CRD, for which kubernetes-validate has no schema) is validated against a
structural schema of the fields the CRD defines; then the checks schema validation cannot make:
probes on real routes and the real port, the grace period against the drain deadline, the run id
source, the Indexed Job's shape, non-root without privilege escalation. Nothing here schedules a
pod: the README says what that leaves unproven and how to check it on a cluster.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema  # pinned in requirements-dev.lock (kubernetes-validate's and moto's)
import kubernetes_validate
import pytest
import yaml  # PyYAML, pinned in requirements-dev.lock

import ingest
from ingest.cli import build_parser
from ingest.service.config import load_config
from ingest.service.http import ROUTES
from ingest.service.keys import KEYS_BY_NAME
from tests.service.test_service_docker import image_env

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "ingest"
HELM = Path(sys.executable).with_name("helm")
KUBERNETES_VALIDATE = Path(sys.executable).with_name("kubernetes-validate")
NAMESPACE = "load"
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/component",
    "helm.sh/chart",
)
AWS_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
# The matrix the issue asks for: both modes, 1 and 4 replicas, ServiceMonitor on and off.
MATRIX = [
    (mode, replicas, monitor)
    for mode in ("service", "loadtest")
    for replicas in (1, 4)
    for monitor in (False, True)
]


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert HELM.exists(), f"{HELM} missing: run `make setup` (deploy/install_helm.py installs it)"
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=60, check=check
    )


def set_args(values: dict[str, object]) -> list[str]:
    """--set-json pairs: each value keeps its JSON type (a number stays a number)."""
    return [
        arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]


def render(release: str, values: dict[str, object]) -> list[dict[str, Any]]:
    out = helm("template", release, str(CHART), "--namespace", NAMESPACE, *set_args(values))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def matrix_values(mode: str, replicas: int, monitor: bool) -> dict[str, object]:
    return {
        "mode": mode,
        "replicas": replicas,
        "serviceMonitor.enabled": monitor,
        "podDisruptionBudget.enabled": mode == "service",
        "serviceAccount.annotations": {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ingest"
        },
    }


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds: dict[str, dict[str, Any]] = {}
    for doc in docs:
        assert doc["kind"] not in kinds, f"two {doc['kind']} objects"
        kinds[doc["kind"]] = doc
    return kinds


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def effective_config(docs: dict[str, dict[str, Any]], tmp: Path, pod_name: str) -> Any:
    """The ServiceConfig the container would load: the ConfigMap's TOML at INGEST_CONFIG, the
    image's environment (Dockerfile ENV) overlaid by the container's (downward-API fields
    resolved as the kubelet would), read by the service's own loader."""
    main = container(docs["Deployment"] if "Deployment" in docs else docs["Job"])
    toml_file = tmp / "ingest.toml"
    toml_file.write_text(docs["ConfigMap"]["data"]["ingest.toml"], encoding="utf-8")
    env = image_env()
    for var in main["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[var["name"]] = pod_name
    mounted = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert str(Path(env["INGEST_CONFIG"]).parent) in mounted
    env["INGEST_CONFIG"] = str(toml_file)
    return load_config({}, env)


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, int, bool], list[dict[str, Any]]]:
    return {
        case: render("lt" if case[0] == "loadtest" else "ing", matrix_values(*case))
        for case in MATRIX
    }


def supported_versions() -> tuple[str, str]:
    """Oldest: the chart's kubeVersion floor; newest: the newest schema kubernetes-validate ships
    (the chart claims no version it was not validated against)."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text("utf-8"))
    floor = re.fullmatch(r">=(\d+\.\d+\.\d+)-0", chart["kubeVersion"])
    assert floor, chart["kubeVersion"]
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    shipped = sorted(
        (tuple(int(p) for p in d.name[1:].split("-")[0].split(".")) for d in schemas.iterdir()
         if d.name.endswith("-local-strict")),
    )  # fmt: skip
    oldest = tuple(int(p) for p in floor.group(1).split("."))
    assert oldest in shipped, f"no strict schema for the chart's oldest version {oldest}"
    return floor.group(1), ".".join(map(str, shipped[-1]))


# --- schema validation ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifest_files(
    rendered: dict[tuple[str, int, bool], list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Path]:
    out = tmp_path_factory.mktemp("manifests")
    files = []
    for (mode, replicas, monitor), docs in rendered.items():
        for doc in docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                continue  # a CRD: validated structurally below
            name = f"{mode}-{replicas}-{int(monitor)}-{doc['kind']}.yaml".lower()
            (out / name).write_text(yaml.safe_dump(doc), encoding="utf-8")
            files.append(out / name)
    return files


def kubernetes_validate_cli(version: str, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", version, *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_every_manifest_is_valid_for_the_oldest_and_newest_supported_kubernetes(
    which: str, manifest_files: list[Path]
) -> None:
    version = dict(zip(("oldest", "newest"), supported_versions(), strict=True))[which]
    result = kubernetes_validate_cli(version, manifest_files)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"^INFO (\S+) passed for resource", result.stdout, re.M)
    assert sorted(passed) == sorted(map(str, manifest_files)), result.stdout
    assert "WARN" not in result.stdout + result.stderr  # e.g. "Couldn't find schema"


def test_helm_refuses_a_kubernetes_older_than_the_validated_floor() -> None:
    oldest, newest = supported_versions()
    for version in (oldest, newest):
        assert helm("template", "x", str(CHART), "--kube-version", version).returncode == 0
    older = helm("template", "x", str(CHART), "--kube-version", "1.24.9", check=False)
    assert older.returncode == 1
    assert "chart requires kubeVersion: >=1.25.0-0" in older.stderr


def test_kubernetes_validate_strict_refuses_a_misspelt_field(tmp_path: Path) -> None:
    """The validator is not a no-op: the Job with one misspelt field fails --strict."""
    job = by_kind(render("lt", matrix_values("loadtest", 4, False)))["Job"]
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    bad = tmp_path / "job.yaml"
    bad.write_text(yaml.safe_dump(job), encoding="utf-8")
    result = kubernetes_validate_cli(supported_versions()[1], [bad])
    assert result.returncode == 1
    assert "completionMod" in result.stdout + result.stderr


# Structural schema of monitoring.coreos.com/v1 ServiceMonitor, transcribed from the Prometheus
# Operator's CRD (spec.selector required; endpoints[].port is a Service port *name*; durations
# match the CRD's pattern). Only the fields this chart may emit are listed, and nothing else is
# allowed, so a misspelt field fails as `--strict` would.
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "labels": _LABELS, "annotations": _LABELS},
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _LABELS, "matchExpressions": {"type": "array"}},
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def test_service_monitor_is_structurally_valid_and_scrapes_the_metrics_service(
    rendered: dict[tuple[str, int, bool], list[dict[str, Any]]],
) -> None:
    for (mode, replicas, monitor), docs in rendered.items():
        kinds = by_kind(docs)
        if mode != "service" or not monitor:
            assert "ServiceMonitor" not in kinds, (mode, replicas, monitor)
            continue
        monitor_doc = kinds["ServiceMonitor"]
        jsonschema.validate(monitor_doc, SERVICE_MONITOR_SCHEMA)
        service = kinds["Service"]
        (endpoint,) = monitor_doc["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["path"] in ROUTES
        assert (
            monitor_doc["spec"]["selector"]["matchLabels"].items()
            <= service["metadata"]["labels"].items()
        )
        assert monitor_doc["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    broken = by_kind(render("ing", {"serviceMonitor.enabled": True}))["ServiceMonitor"]
    broken["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SERVICE_MONITOR_SCHEMA)


# --- semantic checks ------------------------------------------------------------------------


def test_chart_lints_strictly_in_both_modes() -> None:
    for mode in ("service", "loadtest"):
        result = helm("lint", "--strict", str(CHART), "--set", f"mode={mode}", check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_app_version_is_the_package_version_and_labels_are_the_recommended_ones(
    rendered: dict[tuple[str, int, bool], list[dict[str, Any]]],
) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text("utf-8"))
    assert chart["appVersion"] == ingest.__version__
    for (mode, _, _), docs in rendered.items():
        for doc in docs:
            labels = doc["metadata"]["labels"]
            assert all(name in labels for name in RECOMMENDED_LABELS), doc["kind"]
            assert labels["app.kubernetes.io/version"] == ingest.__version__
            assert labels["app.kubernetes.io/component"] == mode
            assert labels["app.kubernetes.io/managed-by"] == "Helm"


def dockerfile_user() -> tuple[int, int]:
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", (REPO / "Dockerfile").read_text("utf-8"), re.M)
    assert users, "the Dockerfile's final stage must name a numeric USER"
    return int(users[-1][0]), int(users[-1][1])


def assert_hardened(pod_spec: dict[str, Any]) -> None:
    uid, gid = dockerfile_user()
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] == uid
    assert pod_spec["securityContext"]["runAsGroup"] == gid
    assert pod_spec["automountServiceAccountToken"] is False
    for box in pod_spec["containers"]:
        security = box["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == uid
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        # A read-only root: the writable places are volumes (temp files, the data directory).
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in box["volumeMounts"]}
        assert "emptyDir" in mounts["/tmp"]
        assert "emptyDir" in mounts["/data"]


def test_service_deployment_probes_port_grace_period_and_run_id(
    rendered: dict[tuple[str, int, bool], list[dict[str, Any]]], tmp_path: Path
) -> None:
    for (mode, replicas, _), docs in rendered.items():
        if mode != "service":
            continue
        kinds = by_kind(docs)
        deployment = kinds["Deployment"]
        spec = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        assert deployment["spec"]["replicas"] == replicas
        assert main["args"][0] == "run"
        assert build_parser().parse_args(main["args"]).command == "run"
        config = effective_config(kinds, tmp_path, pod_name=f"ing-ingest-{replicas}-abcde")
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        # Probes: the service's own routes, on the port the service config listens on.
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in (main["livenessProbe"], main["readinessProbe"]):
            assert probe["httpGet"]["path"] in ROUTES
            assert ports[probe["httpGet"]["port"]] == config.http_port
        assert config.http_host == "0.0.0.0"  # the kubelet probes the pod IP, not localhost
        # What the service writes lands on the writable emptyDir, not the read-only root.
        writable = {m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")}
        for path in (config.spool_dir, config.durable_dir):
            assert any(path.is_relative_to(mount) for mount in writable), path
        # The run id of each replica is its pod name (downward API).
        assert config.run_id == f"ing-ingest-{replicas}-abcde"
        # SIGKILL comes after the drain deadline, with a margin for the summary.
        assert spec["terminationGracePeriodSeconds"] > config.drain_timeout_s
        assert_hardened(spec)
        # The metrics Service and the PDB select exactly these pods.
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        service = kinds["Service"]
        assert service["spec"]["selector"] == selector
        assert service["spec"]["ports"][0]["targetPort"] in ports
        assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
        assert kinds["ServiceAccount"]["metadata"]["name"] == spec["serviceAccountName"]
        assert kinds["ServiceAccount"]["metadata"]["annotations"] == {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ingest"
        }
        assert not {"Job", "PersistentVolumeClaim", "Pod"} & kinds.keys()


def test_grace_period_follows_the_drain_deadline_and_toml_keeps_types(tmp_path: Path) -> None:
    values = {
        "config.drain_timeout_s": 45.5,
        "config.linger_s": 0.005,
        "config.max_queue_records": 1000000,
        "config.http_port": 9102,
        "config.local": False,
        "config.endpoint_url": "https://firehose-fips.us-east-1.amazonaws.com",
        "config.log_level": "debug",
        "terminationGraceMarginSeconds": 7,
    }
    kinds = by_kind(render("ing", values))
    config = effective_config(kinds, tmp_path, pod_name="p")
    assert config.drain_timeout_s == 45.5
    assert config.linger_s == 0.005
    assert config.max_queue_records == 1_000_000  # not 1e+06
    assert config.http_port == 9102
    assert config.endpoint_url == "https://firehose-fips.us-east-1.amazonaws.com"
    assert config.log_level == "debug"
    spec = kinds["Deployment"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 46 + 7
    assert container(kinds["Deployment"])["ports"][0]["containerPort"] == 9102


def test_loadtest_is_an_indexed_job_with_one_report_per_index(
    rendered: dict[tuple[str, int, bool], list[dict[str, Any]]], tmp_path: Path
) -> None:
    for (mode, replicas, _), docs in rendered.items():
        if mode != "loadtest":
            continue
        kinds = by_kind(docs)
        job = kinds["Job"]
        assert job["spec"]["completionMode"] == "Indexed"
        assert job["spec"]["completions"] == replicas
        assert job["spec"]["parallelism"] == replicas
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"  # a failed pod is replaced, same index
        assert_hardened(spec)
        main = container(job)
        args = main["args"]
        assert args[0] == "loadtest"
        assert args[args.index("--fleet-size") + 1] == str(replicas)
        assert args[args.index("--test-id") + 1] == "lt"  # the release name
        # The index comes from the Job controller's JOB_COMPLETION_INDEX, which the chart
        # must neither set nor shadow.
        assert "JOB_COMPLETION_INDEX" not in {v["name"] for v in main["env"]}
        assert "--fleet-index" not in args
        report = args[args.index("--report") + 1]
        assert report == "/reports/lt-$(JOB_COMPLETION_INDEX).json"
        # The real CLI accepts the arguments once the kubelet expanded the index.
        expanded = [arg.replace("$(JOB_COMPLETION_INDEX)", "0") for arg in args]
        parsed = build_parser().parse_args(expanded)
        assert parsed.command == "loadtest"
        volumes = {v["name"]: v for v in spec["volumes"]}
        mount = next(m for m in main["volumeMounts"] if report.startswith(m["mountPath"] + "/"))
        claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == claim
        assert kinds["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
        config = effective_config(kinds, tmp_path, pod_name="unused")
        assert spec["terminationGracePeriodSeconds"] > config.drain_timeout_s
        assert config.run_id is None  # loadtest names its runs "<test id>-<index>"
        # The merge-verify test pod reads every index's report from the same claim.
        hook = kinds["Pod"]
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
        (script,) = hook["spec"]["containers"][0]["args"]
        expected = [f"/reports/lt-{i}.json" for i in range(replicas)]
        assert f"loadtest merge {' '.join(expected)} --report /reports/lt-merged.json" in script
        for line in script.splitlines():
            words = shlex.split(line)
            assert words[:3] == ["python", "-m", "ingest"]
            build_parser().parse_args(words[3:])  # exits 2 on anything the CLI refuses
        hook_claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in hook["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert hook_claims == {claim}
        assert not {"Deployment", "Service", "ServiceMonitor", "PodDisruptionBudget"} & kinds.keys()


def test_notes_print_the_wait_merge_and_verify_commands() -> None:
    result = helm(
        "install", "lt", str(CHART), "--dry-run=client", "--namespace", NAMESPACE,
        *set_args({"mode": "loadtest", "replicas": 3, "loadtest.verify.s3": "s3://bucket/fh/"}),
    )  # fmt: skip
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} wait --for=condition=complete job/lt-ingest" in notes
    assert f"helm test lt -n {NAMESPACE} --logs" in notes
    merge = "ingest loadtest merge /reports/lt-0.json /reports/lt-1.json /reports/lt-2.json"
    assert f"{merge} --report /reports/lt-merged.json" in notes
    verify = "ingest verify --report /reports/lt-merged.json --s3 s3://bucket/fh/"
    assert verify in notes
    build_parser().parse_args(shlex.split(verify)[1:])
    service = helm("install", "ing", str(CHART), "--dry-run=client", "--namespace", NAMESPACE)
    assert "rollout status deployment/ing-ingest" in service.stdout


def test_credentials_come_only_from_the_service_account_or_an_existing_secret() -> None:
    kinds = by_kind(render("ing", {"aws.existingSecret": "ingest-aws"}))
    main = container(kinds["Deployment"])
    assert main["envFrom"] == [{"secretRef": {"name": "ingest-aws"}}]
    text = yaml.safe_dump_all(list(kinds.values()))
    assert not any(name in text for name in AWS_SECRETS)
    # A literal secret in extraEnv is refused at install; one from a Secret is fine.
    literal = [{"name": "AWS_SECRET_ACCESS_KEY", "value": "wJalr"}]
    refused = helm("template", "ing", str(CHART), *set_args({"extraEnv": literal}), check=False)
    assert refused.returncode == 1
    assert "/extraEnv/0" in refused.stderr
    from_secret = [
        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    ]
    assert render("ing", {"extraEnv": from_secret})


# --- values.schema.json ---------------------------------------------------------------------


def schema_config_properties() -> dict[str, Any]:
    schema = json.loads((CHART / "values.schema.json").read_text("utf-8"))
    return schema["properties"]["config"]["properties"]  # type: ignore[no-any-return]


def test_schema_config_keys_are_the_service_config_keys_with_their_types() -> None:
    kinds = {
        "str": "string",
        "path": "string",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
    }
    for name, prop in schema_config_properties().items():
        assert name in KEYS_BY_NAME, f"config.{name} is not a key of ingest run"
        key = KEYS_BY_NAME[name]
        assert prop["type"] == [kinds[key.kind], "null"], name
        if key.choices:
            assert prop["enum"] == [*key.choices, None], name
    # run_id and http_host belong to the chart (pod name / test id; 0.0.0.0 for the probes).
    assert not {"run_id", "http_host"} & schema_config_properties().keys()


def test_default_values_pass_the_schema_and_the_service_config() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text("utf-8"))
    schema = json.loads((CHART / "values.schema.json").read_text("utf-8"))
    jsonschema.Draft7Validator(schema).validate(values)
    toml = tomllib.loads(by_kind(render("ing", {}))["ConfigMap"]["data"]["ingest.toml"])
    assert toml == {k: v for k, v in values["config"].items() if v is not None}


def test_a_broken_values_file_is_refused_with_a_message_per_mistake() -> None:
    result = helm(
        "template", "x", str(CHART), "-f", str(Path(__file__).with_name("broken-values.yaml")),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    message = result.stderr
    assert "values don't meet the specifications of the schema" in message
    for where, why in [
        ("/mode", "value must be one of 'service', 'loadtest'"),
        ("/replicas", "minimum: got 0, want 1"),
        ("/config/http_port", "maximum: got 70,000, want 65,535"),
        ("/config", "additional properties 'drain_timeout' not allowed"),
        ("/loadtest/reports/mountPath", "does not match pattern"),
    ]:
        assert re.search(rf"at '{re.escape(where)}': .*{re.escape(why)}", message), (where, message)
    assert not result.stdout  # nothing rendered


def readme_helm_installs() -> list[list[str]]:
    """The README's complete `helm install` commands (continuation lines joined)."""
    text = (REPO / "README.md").read_text("utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("helm install")]
    return [shlex.split(line) for line in lines if "..." not in line]


def test_readme_helm_install_commands_render() -> None:
    commands = readme_helm_installs()
    assert {"mode=loadtest" in " ".join(c) for c in commands} == {True, False}
    for command in commands:
        assert command[:2] == ["helm", "install"]
        result = helm("template", *command[2:], check=False)
        assert result.returncode == 0, (command, result.stderr)
