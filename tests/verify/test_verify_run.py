"""`ingest run --local --verify --report` as a real process, then `ingest verify` on its files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.emulator import Emulator
from ingest.service.aftercheck import verify_exit_code, verify_run


def ingest(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_")}
    return subprocess.run(
        [sys.executable, "-m", "ingest", *argv],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_run_verifies_its_own_events_and_writes_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, report = tmp_path / "local", tmp_path / "run.json"
    done = ingest("run", "--local", "--count", "3000", "--rate", "0", "--http-port", "0",
                  "--local-data-dir", str(data), "--verify", "--report", str(report),
                  "--run-id", "verify-me", "--log-format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    checked = next(line for line in lines if line.get("event") == "verify_summary")
    assert checked["run_id"] == "verify-me"
    assert (checked["expected"], checked["delivered_unique"], checked["missing"]) == (3000, 3000, 0)
    assert checked["ok"] is True
    assert any('"event": "verify_finished"' in line or '"event":"verify_finished"' in line
               for line in done.stderr.splitlines())  # fmt: skip

    written = json.loads(report.read_text())
    assert written["runs"] == [{"run_id": "verify-me", "events_generated": 3000}]
    assert written["summary"]["delivered"] == 3000
    assert written["verify"]["runs"][0]["missing"] == 0

    # The report is what `ingest verify --report` reads.
    assert main(["verify", "--data-dir", str(data), "--report", str(report)]) == 0
    capsys.readouterr()
    # Lose one line from one object: found, and named.
    victim = next(p for p in sorted(data.rglob("*")) if p.is_file() and ".tmp" not in p.parts)
    kept = victim.read_bytes().splitlines(keepends=True)
    lost = json.loads(kept.pop(1))["seq"]
    victim.write_bytes(b"".join(kept))
    assert main(["verify", "--data-dir", str(data), "--report", str(report), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["runs"][0]["missing_ranges"] == [[lost, lost]]


def test_run_prints_how_many_events_reached_the_files(tmp_path: Path) -> None:
    done = ingest("run", "--local", "--count", "1000", "--rate", "0", "--http-port", "0",
                  "--local-data-dir", str(tmp_path), "--verify",
                  "--log-format", "console")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"verify: 1,000 of 1,000 events reached the emulator's files in {tmp_path}" in (
        done.stdout
    )


def test_verify_needs_local_and_report_needs_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("INGEST_")]:
        monkeypatch.delenv(name)
    assert main(["run", "--verify", "--http-port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ingest run: configuration error: verify: ")
    assert "local" in err
    assert "Traceback" not in err
    assert main(["run", "--local", "--report", str(tmp_path / "no" / "dir.json")]) == 2
    assert "report: invalid value" in capsys.readouterr().err


async def test_verify_run_says_plainly_when_the_files_cannot_be_read(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(emulator.data_dir)
    result = await verify_run(emulator, "gone", 10, since_s=0, json_line=False)
    assert result is None
    assert verify_exit_code(result) == 1
    out = capsys.readouterr().out
    # (unconfigured structlog prints its verify_failed line on stdout too)
    assert "\nverify: could not check the emulator's files: data_dir: " in "\n" + out
