"""What a new operator meets, over real processes: the summary, live metrics and probes, log
lines, --help, make run / make clean, and hints (issue 11)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.cli import build_parser
from ingest.emulator.cli import options_from_args, register
from ingest.events import min_event_size
from ingest.service.prepare import new_run_id
from tests.service.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@dataclass
class LiveRun:
    code: int
    stdout: str
    stderr: str
    metrics: str  # one scrape while events flowed
    heads: dict[str, tuple[int, bytes]]  # path -> (status, body) of a HEAD while running
    gets: dict[str, int]  # path -> status of a GET at the same moment

    def log_lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stderr.splitlines()]

    def summary(self) -> dict[str, Any]:
        (line,) = self.stdout.splitlines()
        summary: dict[str, Any] = orjson.loads(line)
        assert summary["event"] == "run_summary"
        return summary


def _request(url: str, method: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def live_run(tmp_path_factory: pytest.TempPathFactory) -> LiveRun:
    """One `ingest run --local` asked for far more than a laptop can generate (5M events/s for
    2 s, JSON logs, random run id), scraped and probed while it runs."""
    workdir = tmp_path_factory.mktemp("live")
    port = free_port()
    out, err = workdir / "stdout", workdir / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "run", "--local", "--rate", "5000000",
             "--duration", "2", "--http-port", str(port), "--log-format", "json"],
            stdout=stdout, stderr=stderr,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    metrics, heads, gets = "", {}, {}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, body = _request(base + "/metrics", "GET")
            except OSError:
                time.sleep(0.05)
                continue
            if status == 200 and re.search(rb"^ingest_records_delivered_total [1-9]", body, re.M):
                metrics = body.decode()
                for path in ("/healthz", "/readyz", "/metrics"):
                    gets[path] = _request(base + path, "GET")[0]
                    heads[path] = _request(base + path, "HEAD")
                break
            time.sleep(0.05)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return LiveRun(code, out.read_text(), err.read_text(), metrics, heads, gets)


def test_summary_has_run_id_target_rates_over_generation_drain_mib_latency_and_a_miss(
    live_run: LiveRun,
) -> None:
    summary = live_run.summary()
    assert re.fullmatch(r"[0-9a-f]{12}", summary["run_id"])
    assert summary["target_rate"] == 5_000_000
    assert summary["target_missed"] is True  # nobody generates 5M events/s here
    assert summary["exit_code"] == live_run.code == 0  # a missed rate is a finding, not a failure
    generation = summary["generation_s"]
    assert summary["delivered_per_s"] == pytest.approx(summary["delivered"] / generation, rel=0.01)
    assert summary["drain_s"] == pytest.approx(summary["total_s"] - generation, abs=0.002)
    assert summary["delivered_mib_per_s"] == pytest.approx(
        summary["bytes_delivered"] / MIB / generation, rel=0.01
    )
    assert 0 < summary["latency_p50_s"] <= summary["latency_p99_s"]
    assert summary["requests"] > 0
    finished = [e for e in live_run.log_lines() if e["event"] == "run_finished"]
    assert finished[0]["target_missed"] is True


def test_human_summary_says_the_target_and_when_it_was_missed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "run", "--local", "--count", "300", "--rate", "1000",
         "--http-port", "0", "--log-format", "console", "--run-id", "table-run"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert table.startswith("ingest run table-run finished (count) in ")
    assert ", drain " in table.splitlines()[0]
    assert re.search(r"target +1,000 events/s", table)
    assert re.search(r"delivered +300  \([\d,]+ events/s, [\d.]+ MiB/s, [\d,]+ bytes\)", table)
    assert re.search(r"latency +p50 \d+ ms, p99 \d+ ms", table)
    assert "target missed" not in table


def test_live_metrics_follow_the_naming_guide_with_zero_series_and_standard_collectors(
    live_run: LiveRun,
) -> None:
    text = live_run.metrics
    assert text, "no scrape while events flowed"
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert ("ingest_records_throttled_total", ()) in samples
    assert samples[("ingest_delivered_bytes_total", ())] > 0
    # A renamed metric is also emitted under its old name, same value, HELP says deprecated.
    old, new = ("ingest_bytes_delivered_total", ()), ("ingest_delivered_bytes_total", ())
    assert samples[old] == samples[new]
    assert families["ingest_bytes_delivered"].documentation.startswith("DEPRECATED")
    assert families["ingest_throttled"].documentation.startswith("DEPRECATED")
    # Nothing failed, yet every failure reason already has its 0 series.
    assert samples[("ingest_records_failed_total", (("reason", "timeout"),))] == 0
    assert samples[("ingest_records_failed_total", (("reason", "close_timeout"),))] == 0
    assert samples[("ingest_requests_total", (("outcome", "throttled"),))] == 0
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert "python_info" in families
    typed = [line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert all(name.endswith("_total") for name, kind in typed if kind == "counter")
    info = [s for s in families["ingest_info"].samples if s.name == "ingest_info"]
    assert info[0].labels["run_id"] == live_run.summary()["run_id"]


def test_head_answers_like_get_on_a_live_run(live_run: LiveRun) -> None:
    assert set(live_run.heads) == {"/healthz", "/readyz", "/metrics"}
    for path, (status, body) in live_run.heads.items():
        assert status == live_run.gets[path] == 200, path
        assert body == b""


def test_every_log_line_carries_run_id_and_stream_and_the_config_shows_the_real_id(
    live_run: LiveRun,
) -> None:
    lines = live_run.log_lines()
    run_id = live_run.summary()["run_id"]
    assert len(lines) >= 5
    assert all(line.get("run_id") == run_id for line in lines), lines
    assert all(line.get("stream") == "aws-ml-cert" for line in lines)
    (starting,) = [line for line in lines if line["event"] == "service_starting"]
    assert starting["config"]["run_id"] == run_id


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_help_names_units_and_http_paths(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one flag per line, whatever the terminal
    run_help = _help("run", capsys)
    for shown in ("--duration SECONDS", "--linger SECONDS", "--rate EVENTS/S",
                  "--event-size BYTES", "--records-per-s RECORDS/S", "--endpoint-url URL",
                  "/healthz", "/readyz", "/metrics"):  # fmt: skip
        assert shown in run_help, shown
    assert not re.search(r"--[a-z-]+ X\b", run_help)  # no unit-less placeholder left
    emulator_help = _help("emulator", capsys)
    for shown in ("--fault-latency SECONDS", "--buffer-interval SECONDS",
                  "--quota-bytes-per-s BYTES/S", "POST /", "GET /_emulator/stats"):  # fmt: skip
        assert shown in emulator_help, shown


def test_make_run_keeps_only_the_latest_output_says_where_and_make_clean_removes_it(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "local"
    (run_dir / "earlier-run").mkdir(parents=True)
    (run_dir / "earlier-run" / "object").write_bytes(b"x" * 1000)
    # -o: the venv is ready; never reinstall it from a test.
    made = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "run", f"RUN_DIR={run_dir}",
         "RUN_ARGS=--count 200"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert not (run_dir / "earlier-run").exists()
    assert any(run_dir.rglob("aws-ml-cert-1-*"))
    last = made.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"make run: this run's objects are in {re.escape(str(run_dir))}/ \(\d+(\.\d+)?[KMG]\); "
        r"the next make run replaces them, make clean removes them",
        last,
    ), last
    cleaned = subprocess.run(
        ["make", "-s", "clean-data", f"RUN_DIR={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert cleaned.returncode == 0
    assert not run_dir.exists()
    dry = subprocess.run(
        ["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "data/local" in dry  # make clean includes clean-data


def test_readme_statements_match_the_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    smallest = min_event_size(new_run_id())
    assert f"unpadded event's size ({smallest} with a random run id" in readme
    assert "~140" not in readme
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["emulator", "--create-stream", "other"])
    assert options_from_args(args).streams == ("other",)  # replaces the default, as documented
    assert "(or, instead, the streams named by `--create-stream NAME`" in readme


def test_missing_credentials_name_a_hint_never_an_empty_one() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "run", "--endpoint-url", "http://127.0.0.1:9",
         "--count", "1", "--http-port", "0", "--log-format", "json"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 1
    (unusable,) = [
        line for line in map(orjson.loads, result.stderr.splitlines())
        if line["event"] == "target_unusable"
    ]  # fmt: skip
    assert unusable["reason"] == "credentials"
    assert "any non-empty values for a local emulator" in unusable["hint"]
    assert '"hint":""' not in result.stderr
