"""`ingest replay` and `ingest spool check` as real processes against the emulator."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.cli import main
from ingest.emulator import Emulator, EmulatorOptions, FaultOptions
from ingest.producer.stats import FailedRecord
from ingest.spool.check import check_log
from ingest.spool.deadletter import DeadLetterSpool
from ingest.spool.journal import JOURNAL, read_journal
from ingest.spool.log import KIND_DEAD_LETTER, KIND_DURABLE, SegmentLog, find_logs
from ingest.spool.replay import replay_tree

STREAM = "aws-ml-cert"


def target(emulator: Emulator) -> dict[str, Any]:
    return {"endpoint_url": emulator.endpoint_url, "max_inflight": 4}


async def make_spool(directory: Path, writer: str, clear: int, ambiguous: int) -> list[bytes]:
    """A spool log as `ingest run` leaves it: `clear` plain failures, then `ambiguous` ones."""
    spool = DeadLetterSpool(directory, stream=STREAM, writer_id=writer)
    records = [f'{{"writer":"{writer}","n":{n}}}\n'.encode() for n in range(clear + ambiguous)]
    failed = [
        FailedRecord(data, "timeout", "gave up", 3, maybe_stored=n >= clear)
        for n, data in enumerate(records)
    ]
    for start in range(0, len(failed), 7):  # several groups, as failures come in batches
        await spool.handle(failed[start : start + 7])
    await spool.close()
    return records


async def ingest(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def replay(spool: Path, emulator: Emulator, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await ingest(
        "replay", str(spool), "--endpoint-url", emulator.endpoint_url, "--json",
        "--log-level", "warning", *extra,
    )  # fmt: skip
    assert out.strip(), err
    return code, orjson.loads(out.strip().splitlines()[-1])


async def test_replay_resends_once_and_ambiguous_records_only_when_asked(
    tmp_path: Path, emulator: Emulator
) -> None:
    spool = tmp_path / "spool"
    first = await make_spool(spool, "run-a", clear=30, ambiguous=10)
    second = await make_spool(spool, "run-b", clear=5, ambiguous=0)

    code, report = await replay(spool, emulator)
    assert code == 1  # the ambiguous ones are still undelivered
    assert report["logs"] == 2
    assert report["delivered"] == 35
    assert report["skipped_ambiguous"] == 10
    stored = Counter(emulator.stored_records(STREAM))
    assert stored == Counter(first[:30] + second)

    again = await replay_tree(str(spool), producer_args=target(emulator))  # nothing resent
    assert (again.sent, again.in_spool, again.undelivered) == (0, 10, 10)

    rest = await replay_tree(str(spool), producer_args=target(emulator), include_ambiguous=True)
    assert (rest.delivered, rest.undelivered) == (10, 0)
    done = await replay_tree(str(spool), producer_args=target(emulator), include_ambiguous=True)
    assert (done.sent, done.in_spool) == (0, 0)
    assert Counter(emulator.stored_records(STREAM)) == Counter(first + second)  # once each
    assert [report.pending for report in map(check_log, find_logs(str(spool)))] == [0, 0]


async def test_a_replay_killed_mid_way_never_resends_what_it_journaled(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    records = await make_spool(spool, "run-a", clear=6_000, ambiguous=0)
    journal = spool / "run-a" / JOURNAL
    slow = EmulatorOptions(data_dir=tmp_path / "emulator", faults=FaultOptions(latency_s=0.4))
    async with Emulator(slow) as emulator:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ingest", "replay", str(spool),
            "--endpoint-url", emulator.endpoint_url, "--log-level", "warning",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env,
        )  # fmt: skip
        async with asyncio.timeout(60):
            while not (journal.exists() and journal.stat().st_size > 0):  # noqa: ASYNC110 (another process writes it)
                await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        journaled, _ = read_journal(journal.read_bytes())
        assert 0 < len(journaled) < 6_000
        before = Counter(emulator.stored_records(STREAM))

        report = await replay_tree(str(spool), producer_args=target(emulator))
        assert report.undelivered == 0
        assert report.already_delivered == len(journaled)
        stored = Counter(emulator.stored_records(STREAM))
        assert set(stored) == set(records)  # every record delivered
        for seq in journaled:  # ... and none the killed replay saw delivered was sent again
            assert stored[records[seq]] == before[records[seq]] == 1


async def test_a_spool_in_use_is_skipped_and_said_so(tmp_path: Path, emulator: Emulator) -> None:
    spool = tmp_path / "spool"
    await make_spool(spool, "live", clear=3, ambiguous=0)
    held = SegmentLog(spool / "live", kind=KIND_DEAD_LETTER)
    held.open()  # what a running `ingest run` (or another replay) holds
    try:
        code, out, _ = await ingest("replay", str(spool), "--endpoint-url", emulator.endpoint_url)
    finally:
        held.close()
    assert code == 1
    assert "in use, skipped" in out
    assert emulator.stored_records(STREAM) == []


def test_usage_errors_and_a_durable_log_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["replay", str(tmp_path), "--max-inflight", "0"]) == 2
    assert "max_inflight" in capsys.readouterr().err
    wal = SegmentLog(tmp_path / "wal", kind=KIND_DURABLE)
    wal.open()
    wal.append([[b"event\n"]])
    wal.close()
    assert main(["replay", str(tmp_path / "wal"), "--log-level", "error"]) == 2
    assert "--durable log" in capsys.readouterr().err
    assert main(["spool", "check", str(tmp_path / "missing")]) == 2


def test_spool_check_reports_a_torn_tail_and_a_corrupt_segment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = tmp_path / "spool"
    asyncio.run(make_spool(spool, "run-a", clear=20, ambiguous=4))
    assert main(["spool", "check", str(spool)]) == 0
    out = capsys.readouterr().out
    assert "pending            24" in out
    assert "timeout: 24" in out
    assert "ambiguous           4" in out
    (segment,) = sorted((spool / "run-a").glob("*.seg"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-5])  # a torn last write
    assert main(["spool", "check", str(spool)]) == 1
    assert "torn tail" in capsys.readouterr().out
    corrupt = bytearray(data)
    corrupt[100] ^= 0xFF  # inside the first frame, with frames after it
    segment.write_bytes(bytes(corrupt))
    assert main(["spool", "check", str(spool), "--json"]) == 1
    (log,) = orjson.loads(capsys.readouterr().out)
    assert not log["intact"]
    assert any("corrupt" in problem for problem in log["problems"])
