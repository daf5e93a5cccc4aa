"""Live progress: a rich status area on a terminal, JSON `progress` lines otherwise, for
`ingest loadtest` and `ingest run` alike."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

FIELDS = ("elapsed_s", "remaining_s", "target_rate", "achieved_rate", "target_missed",
          "delivered", "failed", "retried", "throttled", "queue_records", "latency_p50_ms",
          "latency_p99_ms", "mib_per_s")  # fmt: skip


async def test_ingest_run_writes_the_same_progress_lines(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "run", "--local", "--duration", "2", "--rate", "2000",
        "--http-port", "0", "--progress-every", "0.5", "--spool-dir", str(tmp_path / "spool"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()[-2000:]
    lines = [json.loads(line) for line in err.decode().splitlines() if '"progress"' in line]
    lines = [line for line in lines if line["event"] == "progress"]
    assert len(lines) >= 3
    for field in FIELDS:
        assert field in lines[-1], field
    assert lines[-1]["target_rate"] == 2000.0
    assert lines[-1]["generated"] > lines[0]["generated"] > 0
    assert all(line["run_id"] for line in lines)


def test_a_terminal_gets_a_live_status_area_not_json_lines(tmp_path: Path) -> None:
    """stderr is a pseudo-terminal: the status area is drawn with rich (a panel with the same
    figures), and no JSON progress line is written."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ingest", "loadtest", "--local", "--duration", "2.5",
         "--rate", "1000"],
        stdout=subprocess.PIPE, stderr=follower, env=env, cwd=tmp_path,
    )  # fmt: skip
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    out, _ = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 0
    text = screen.decode(errors="replace")
    for label in ("elapsed", "remaining", "target", "achieved", "delivered", "throttled",
                  "queue", "p99 latency", "MiB/s"):  # fmt: skip
        assert label in text, label
    assert "╭" in text  # the rich panel
    assert "elapsed_s" not in text  # no progress log line (JSON or console) besides the area
    assert "ingest loadtest: load test report" in out.decode()
