"""A failed pod replaced with the same index, as a Kubernetes Indexed Job does, with real
processes: three `ingest loadtest` processes (JOB_COMPLETION_INDEX=0,1,2, as the Job controller
sets it) against one `ingest emulator` process; index 1 is killed with SIGKILL mid-run and run
again with the same index (a replacement pod). `ingest loadtest merge` and `ingest verify` then
account for every event of the test: the killed attempt's deliveries show up as duplicates of
run "<test>-1", nothing is missing. This is the contract the chart relies on (index from the
environment, same run id on a rerun), not a cluster run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

TEST_ID = "fleet"
FLEET = 3
COUNT = 9_000  # the whole test; each index sends 3,000
RATE = 6_000  # events/s for the whole fleet: about 1.5 s per index
INGEST = [sys.executable, "-m", "ingest"]


def environment(index: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    env.update(
        JOB_COMPLETION_INDEX=str(index),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        NO_PROXY="127.0.0.1",
    )
    return env


def loadtest(endpoint: str, reports: Path, index: int, stderr: object) -> subprocess.Popen[str]:
    """One fleet member, as the chart's Job runs it (index only from JOB_COMPLETION_INDEX)."""
    return subprocess.Popen(
        [*INGEST, "loadtest", "--endpoint-url", endpoint, "--fleet-size", str(FLEET),
         "--test-id", TEST_ID, "--count", str(COUNT), "--rate", str(RATE),
         "--report", str(reports / f"{TEST_ID}-{index}.json"), "--log-format", "json",
         "--progress-every", "0.2"],
        env=environment(index), stdout=subprocess.DEVNULL, stderr=stderr, text=True,
    )  # fmt: skip


def delivered_so_far(process: subprocess.Popen[str], at_least: int) -> int:
    """Read the member's JSON progress lines until it reports `at_least` delivered events."""
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("{") and '"event":"progress"' in line:
            delivered = int(json.loads(line)["delivered"])
            if delivered >= at_least:
                return delivered
    raise AssertionError(f"the process ended (exit {process.wait()}) before delivering {at_least}")


@pytest.fixture
def emulator_url(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = subprocess.Popen(
        [*INGEST, "emulator", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--buffer-interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    ready = process.stdout.readline().strip()
    assert ready == f"emulator listening on http://127.0.0.1:{port}", ready
    yield f"http://127.0.0.1:{port}", process
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stdout.close()


def test_a_killed_index_rerun_with_the_same_index_loses_nothing(
    emulator_url: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    endpoint, emulator = emulator_url
    reports = tmp_path / "reports"
    reports.mkdir()
    logs = [(tmp_path / f"index-{i}.log").open("w") for i in range(FLEET)]
    try:
        members = {i: loadtest(endpoint, reports, i, logs[i]) for i in (0, 2)}
        doomed = loadtest(endpoint, reports, 1, subprocess.PIPE)
        before_kill = delivered_so_far(doomed, at_least=500)
        doomed.send_signal(signal.SIGKILL)  # kill -9: no drain, no report
        assert doomed.wait(timeout=10) == -signal.SIGKILL
        assert doomed.stderr is not None
        doomed.stderr.close()
        assert not (reports / f"{TEST_ID}-1.json").exists()
        members[1] = loadtest(endpoint, reports, 1, logs[1])  # the replacement pod
        for index, member in members.items():
            assert member.wait(timeout=120) == 0, (tmp_path / f"index-{index}.log").read_text()
    finally:
        for log in logs:
            log.close()

    merged = reports / f"{TEST_ID}-merged.json"
    parts = [str(reports / f"{TEST_ID}-{i}.json") for i in range(FLEET)]
    merge = subprocess.run(
        [*INGEST, "loadtest", "merge", *parts, "--report", str(merged)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert merge.returncode == 0, merge.stderr
    runs = {
        run["run_id"]: run["events_generated"] for run in json.loads(merged.read_text())["runs"]
    }
    assert runs == {f"{TEST_ID}-{i}": COUNT // FLEET for i in range(FLEET)}

    emulator.send_signal(signal.SIGTERM)  # writes what it still buffers
    assert emulator.wait(timeout=30) == 0
    data = str(tmp_path / "data")
    verify = subprocess.run(
        [*INGEST, "verify", "--report", str(merged), "--data-dir", data, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    result = {run["run_id"]: run for run in json.loads(verify.stdout)["runs"]}
    assert result.keys() == runs.keys()
    for run in result.values():
        assert run["expected"] == COUNT // FLEET, run
        assert run["delivered_unique"] == COUNT // FLEET, run
        assert run["missing"] == 0, run
        assert run["beyond_expected"] == 0, run
    # The killed attempt delivered at least what it reported before the kill; the rerun sent
    # those seqs again: duplicates, counted, of that run id only.
    assert result[f"{TEST_ID}-1"]["duplicated_events"] >= before_kill
    assert result[f"{TEST_ID}-0"]["duplicated_events"] == 0
    assert result[f"{TEST_ID}-2"]["duplicated_events"] == 0
