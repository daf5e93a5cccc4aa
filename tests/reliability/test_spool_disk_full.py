"""The dead-letter spool's disk full, over real processes: every call to the emulator fails, so
every event ends in the spool, which lives on a 1 MiB tmpfs (`mount -t tmpfs`, as root).

1. Space comes back: the spool fills, `put` is held (backpressure, one `spool_full` line), the
   test frees space, the run goes on: every event is in the spool (lost = 0).
2. Space never comes back, with --durable: after --spool-full-timeout the records are refused
   loudly (SpoolFullError, `failure_handler_refused` lines, exit 1) but stay in the durable log,
   which is on another disk; once space is back a restart resends them, they fail again and
   are spooled: every event is in the spool (lost = 0).
3. The durable log's own disk full: put() is held, then raises SpoolFullError; the run stops
   generating (exit 1) and every event it did accept is accounted for (spooled here).

Without permission to mount (not root), the same scenarios use the injected ENOSPC of
tests/spool/test_deadletter.py; here the byte bound (--spool-max-bytes) stands in for the disk.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from harness import INGEST, ROOT, EmulatorProcess, _env, _events

from ingest.spool.deadletter import read_spool

FAILING = ["--fault-call-error-rate", "1.0"]  # every call answered 500/503: nothing stored
FAST_FAIL = ["--record-deadline", "0.3", "--backoff-base", "0.02", "--backoff-cap", "0.1"]


@contextmanager
def small_disk(path: Path) -> Iterator[bool]:
    """A 1 MiB tmpfs at `path`; yields False (plain directory) when mounting is not allowed."""
    path.mkdir(parents=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """A filler file taking all but about `leave` bytes of the tmpfs."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * 4096)
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def run(url: str, spool: Path, run_id: str, *flags: str) -> subprocess.Popen[bytes]:
    command = [
        *INGEST, "run", "--endpoint-url", url, "--run-id", run_id, "--spool-dir", str(spool),
        "--rate", "0", "--http-port", "0", "--log-format", "json", *FAST_FAIL, *flags,
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    out, err = proc.communicate(timeout=120)
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith(b"{")]
    summary = orjson.loads(out.splitlines()[-1]) if out.strip() else {}
    return proc.returncode, summary, lines


def spooled_seqs(spool: Path, run_id: str) -> list[int]:
    return sorted(
        int(event["seq"])
        for entry in read_spool(spool)
        for event in _events(entry.data)
        if event["producer"] == run_id
    )


def test_spool_disk_full_is_backpressure_and_never_a_silent_drop(tmp_path: Path) -> None:
    emulator = EmulatorProcess(tmp_path / "emulator", tmp_path / "logs", flags=FAILING)
    url = emulator.start()
    try:
        with small_disk(tmp_path / "disk") as mounted:
            spool = tmp_path / "disk" / "spool"
            if mounted:  # 1. the disk fills, then space comes back
                filler = fill(tmp_path / "disk", leave=150_000)
                proc = run(url, spool, "full-a", "--count", "1000", "--spool-full-timeout", "60")
                assert proc.stderr is not None
                deadline = time.monotonic() + 60
                for line in proc.stderr:
                    if b'"spool_full"' in line or time.monotonic() > deadline:
                        break
                time.sleep(0.5)  # held: put() is blocked while the spool waits
                filler.unlink()
                code, summary, _ = finish(proc)
                seqs = spooled_seqs(spool, "full-a")
                assert (code, summary["failed"], summary["spooled"]) == (1, 1000, 1000)
                assert seqs == list(range(1000))
                print(f"spool disk full, space freed: events=1000 delivered=0 "
                      f"spooled={len(seqs)} duplicates=0 lost={1000 - len(set(seqs))}")  # fmt: skip

            # 2. the spool's disk stays full; the durable log (another disk) keeps the records
            bound = [] if mounted else ["--spool-max-bytes", "4096"]
            filler = fill(tmp_path / "disk", leave=0) if mounted else None
            durable = ["--durable", "--durable-dir", str(tmp_path / "durable")]
            proc = run(url, spool, "full-b", "--count", "500", "--spool-full-timeout", "1",
                       *durable, *bound)  # fmt: skip
            code, summary, lines = finish(proc)
            refused = sum(
                int(ln["count"]) for ln in lines if ln["event"] == "failure_handler_refused"
            )
            assert code == 1
            assert refused > 0  # said loudly, never a silent drop
            assert summary["failed"] == 500
            assert len(spooled_seqs(spool, "full-b")) + refused == 500
            if filler is not None:
                filler.unlink()
            bigger = [] if mounted else ["--spool-max-bytes", str(1 << 30)]
            proc = run(url, spool, "full-b", "--count", "1", *durable, *bigger)
            code, summary, _ = finish(proc)
            seqs = spooled_seqs(spool, "full-b")
            assert summary["recovered"] >= refused
            assert set(seqs) == set(range(501))  # the refused ones were kept and resent
            print(f"spool disk full, stays full (--durable): events=501 delivered=0 "
                  f"spooled={len(set(seqs))} duplicates={len(seqs) - len(set(seqs))} "
                  f"lost={501 - len(set(seqs))} refused_then_resent={refused}")  # fmt: skip
            if mounted:  # 3. the durable log's own disk full: backpressure, then the typed error
                for leftover in (tmp_path / "disk").iterdir():
                    subprocess.run(["rm", "-rf", str(leftover)], check=True)
                filler = fill(tmp_path / "disk", leave=600_000)
                wal = ["--durable", "--durable-dir", str(tmp_path / "disk" / "wal")]
                proc = run(url, tmp_path / "spool3", "full-c", "--count", "20000",
                           "--spool-full-timeout", "1", *wal)  # fmt: skip
                code, summary, lines = finish(proc)
                refusals = [n for n in lines if n["event"] == "producer_refused_records"]
                assert code == 1
                assert summary["stopped_by"] == "producer_refused"
                assert refusals[0]["kind"] == "SpoolFullError"
                assert any(n["event"] == "spool_full" for n in lines)  # said while it waited
                generated = summary["generated"]
                assert 0 < generated < 20000  # what the log took was accepted, no more
                spooled = set(spooled_seqs(tmp_path / "spool3", "full-c"))
                assert spooled == set(range(generated))
                lost = generated - len(spooled)
                print(f"durable log disk full: events={generated} delivered=0 "
                      f"spooled={len(spooled)} duplicates=0 lost={lost}")  # fmt: skip
    finally:
        emulator.stop()
