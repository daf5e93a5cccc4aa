"""The segment log on a real file system and on the fault-injecting layer: round trip, torn
tails, corrupt segments, the checkpoint, short writes, ENOSPC, fsync failures, the lock."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from faultfs import FaultyFiles  # tests/spool/ is on sys.path (rootdir-less import)

from ingest.errors import SpoolFullError, SpoolIOError, SpoolLockedError
from ingest.spool.log import (
    CHECKPOINT,
    HEADER_BYTES,
    KIND_DEAD_LETTER,
    KIND_DURABLE,
    QUARANTINE,
    SegmentLog,
)
from ingest.spool.marks import LowWaterMark
from ingest.spool.writer import GroupWriter


def records(prefix: str, n: int, size: int = 20) -> list[bytes]:
    return [f"{prefix}-{i}".encode().ljust(size, b".") for i in range(n)]


def flat(pending: list[tuple[int, list[bytes]]]) -> dict[int, bytes]:
    return {first + i: r for first, group in pending for i, r in enumerate(group)}


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_round_trip_resolve_and_trim(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER, segment_bytes=300)
    assert log.open().pending == []
    written: dict[int, bytes] = {}
    for n in range(10):
        group = records(f"g{n}", 3)
        (first,) = log.append([group])
        written.update({first + i: r for i, r in enumerate(group)})
        log.sync()
    assert sorted(written) == list(range(30))
    assert len(segment_files(tmp_path)) > 2
    deleted = log.resolve(20)
    assert deleted >= 1
    log.close()

    again = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER, segment_bytes=300)
    recovery = again.open()
    assert recovery.lwm == 20
    assert flat(recovery.pending) == {seq: written[seq] for seq in range(20, 30)}
    assert recovery.next_seq == 30
    # Everything resolved: a dead-letter spool deletes every segment, seqs still continue.
    again.resolve(30)
    assert segment_files(tmp_path) == []
    assert again.append([[b"next"]]) == [30]
    again.close()


def test_a_durable_log_keeps_its_newest_record_after_trimming(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, kind=KIND_DURABLE, segment_bytes=200)
    log.open()
    for n in range(6):
        log.append([records(f"g{n}", 4)])
    log.sync()
    log.resolve(24)
    log.close()
    recovery = SegmentLog(tmp_path, kind=KIND_DURABLE).open()
    assert recovery.pending == []
    assert recovery.last_record == records("g5", 4)[-1]
    assert recovery.next_seq == 24
    assert len(segment_files(tmp_path)) == 1


def test_a_torn_last_write_is_cut_with_a_warning_never_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = SegmentLog(tmp_path, kind=KIND_DURABLE)
    log.open()
    log.append([records("a", 5)])
    log.append([records("b", 5)])
    log.sync()
    log.close()
    (segment,) = segment_files(tmp_path)
    whole = segment.stat().st_size
    with segment.open("r+b") as file:
        file.truncate(whole - 7)  # the last frame lost its end
    reopened = SegmentLog(tmp_path, kind=KIND_DURABLE)
    recovery = reopened.open()
    assert flat(recovery.pending) == dict(enumerate(records("a", 5)))
    assert recovery.torn_bytes > 0
    assert "spool_torn_tail_cut" in capsys.readouterr().out
    # The log goes on from the cut: the lost group's seqs are reused, nothing is skipped.
    assert reopened.append([[b"c"]]) == [5]
    reopened.close()


def test_a_zeroed_tail_is_torn_too(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, kind=KIND_DURABLE)
    log.open()
    log.append([records("a", 2)])
    log.sync()
    log.close()
    (segment,) = segment_files(tmp_path)
    with segment.open("ab") as file:
        file.write(b"\0" * 4096)  # preallocated or never-written blocks after a power loss
    recovery = SegmentLog(tmp_path, kind=KIND_DURABLE).open()
    assert len(flat(recovery.pending)) == 2
    assert recovery.quarantined == []


def test_a_corrupt_segment_is_quarantined_and_counted_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    log = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER, segment_bytes=250)
    log.open()
    for n in range(6):
        log.append([records(f"g{n}", 3)])
    log.sync()
    log.close()
    first = segment_files(tmp_path)[0]
    data = bytearray(first.read_bytes())
    data[HEADER_BYTES + 20] ^= 0xFF  # inside the first frame, with more frames after it
    first.write_bytes(bytes(data))
    for _ in range(2):  # the second open finds it already moved: no crash loop
        reopened = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER, segment_bytes=250)
        recovery = reopened.open()
        pending = flat(recovery.pending)
        assert pending
        assert min(pending) > 0
        assert max(pending) == 17
        reopened.close()
    assert (tmp_path / QUARANTINE / first.name).exists()
    assert not first.exists()


def test_the_newest_valid_checkpoint_slot_wins(tmp_path: Path) -> None:
    log = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER)
    log.open()
    log.append([records("a", 10)])
    log.sync()
    log.resolve(3)  # gen 1, slot 1
    log.resolve(6)  # gen 2, slot 0
    log.close()
    path = tmp_path / CHECKPOINT
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # damage slot 0 (the newest): slot 1 (lwm 3) is used
    path.write_bytes(bytes(data))
    recovery = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER).open()
    assert recovery.lwm == 3
    assert sorted(flat(recovery.pending)) == list(range(3, 10))


def test_a_second_process_cannot_open_a_locked_log(tmp_path: Path) -> None:
    first = SegmentLog(tmp_path, kind=KIND_DEAD_LETTER)
    first.open()
    with pytest.raises(SpoolLockedError, match=f"pid {os.getpid()}"):
        SegmentLog(tmp_path, kind=KIND_DEAD_LETTER).open()
    first.close()
    SegmentLog(tmp_path, kind=KIND_DEAD_LETTER).open()  # released by close


def test_a_short_write_is_cut_back_and_nothing_of_the_group_is_kept() -> None:
    fs = FaultyFiles()
    log = SegmentLog("/spool", kind=KIND_DEAD_LETTER, files=fs, lock=False)
    log.open()
    log.append([records("a", 3)])
    fs.fail_write_after(11)
    with pytest.raises(OSError, match="No space"):
        log.append([records("b", 3)])
    assert log.next_seq == 3
    assert log.append([records("c", 2)]) == [3]
    log.sync()
    log.close()
    recovery = SegmentLog("/spool", kind=KIND_DEAD_LETTER, files=fs, lock=False).open()
    assert flat(recovery.pending) == dict(enumerate(records("a", 3) + records("c", 2)))
    assert recovery.torn_bytes == 0


def test_a_failed_fsync_is_not_retried_the_groups_are_rewritten_and_survive_power_loss() -> None:
    fs = FaultyFiles()
    log = SegmentLog("/wal", kind=KIND_DURABLE, files=fs, lock=False)
    log.open()
    log.append([records("a", 3)])
    log.sync()
    log.append([records("b", 3)])
    fs.fail_next_sync()
    log.sync()  # fails once: rewritten to a new segment and synced there
    assert len(log.segments()) == 2
    log.close()
    fs.crash(power_loss=True, rng=random.Random(1))
    recovery = SegmentLog("/wal", kind=KIND_DURABLE, files=fs, lock=False).open()
    assert flat(recovery.pending) == dict(enumerate(records("a", 3) + records("b", 3)))


def test_fsync_failing_twice_degrades_the_log_loudly() -> None:
    fs = FaultyFiles()
    log = SegmentLog("/wal", kind=KIND_DURABLE, files=fs, lock=False)
    log.open()
    log.append([records("a", 3)])
    opened = fs.open_append

    def open_append(path: str) -> object:  # the rewrite's new segment fails to sync too
        fs.fail_next_sync()
        return opened(path)

    fs.fail_next_sync()
    fs.open_append = open_append  # type: ignore[assignment]
    with pytest.raises(SpoolIOError, match="fsync failed twice"):
        log.sync()
    with pytest.raises(SpoolIOError, match="accepts no writes"):
        log.append([[b"x"]])


def test_the_mark_moves_only_over_a_gapless_prefix() -> None:
    mark = LowWaterMark(10)
    assert not mark.resolve(15, 5)
    assert not mark.resolve(20, 1)
    assert mark.value == 10
    assert mark.resolve(10, 5)
    assert mark.value == 21
    assert mark.runs_ahead == 0


async def test_a_full_disk_is_backpressure_then_a_typed_error() -> None:
    fs = FaultyFiles(space=400)
    writer = GroupWriter(
        SegmentLog("/spool", kind=KIND_DEAD_LETTER, files=fs, lock=False), full_timeout_s=0.3
    )
    await writer.open()
    await writer.append(records("a", 5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SpoolFullError, match="disk is full"):
        await writer.append(records("b", 50))
    assert loop.time() - started >= 0.25  # it waited before giving up
    # Space comes back while a group waits: it is written, nothing lost.
    waiting = writer.submit(records("c", 20))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    fs.space = 10_000
    assert await waiting == 5
    await writer.close()
    recovery = SegmentLog("/spool", kind=KIND_DEAD_LETTER, files=fs, lock=False).open()
    assert flat(recovery.pending) == dict(enumerate(records("a", 5) + records("c", 20)))


async def test_the_byte_bound_is_backpressure_then_a_typed_error(tmp_path: Path) -> None:
    writer = GroupWriter(
        SegmentLog(tmp_path, kind=KIND_DEAD_LETTER), full_timeout_s=0.1, max_bytes=500
    )
    await writer.open()
    await writer.append(records("a", 5))
    with pytest.raises(SpoolFullError, match="byte bound"):
        await writer.append(records("b", 30))
    await writer.close()


async def test_concurrent_appends_share_one_group_commit(tmp_path: Path) -> None:
    writer = GroupWriter(SegmentLog(tmp_path, kind=KIND_DURABLE))
    await writer.open()
    firsts = await asyncio.gather(*(writer.append(records(f"p{n}", 2)) for n in range(50)))
    assert sorted(firsts) == list(range(0, 100, 2))
    await writer.close()
    recovery = SegmentLog(tmp_path, kind=KIND_DURABLE).open()
    assert len(flat(recovery.pending)) == 100
