"""A Hypothesis state machine drives the real segment log (and the dead-letter spool on top of
it) over the fault-injecting file layer and compares it with a model after every crash.

Oracle (after each crash and recovery):
- the checkpoint mark is exactly the last one `resolve` returned for (it is fsync'd first);
- kill -9: every record an `append` returned for, at or above the mark, is recovered intact;
- power loss: every record a successful `sync` covered, at or above the mark, is recovered;
- nothing is recovered that was never appended (no phantom, no torn frame taken as data);
- our own crashes (torn tails, short writes, failed fsyncs) never quarantine a segment.
"""

from __future__ import annotations

import asyncio
import random

from faultfs import FaultyFiles  # tests/spool/ is on sys.path (rootdir-less import)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ingest.errors import SpoolIOError
from ingest.producer.stats import FailedRecord
from ingest.spool.deadletter import DeadLetterSpool, decode_entry
from ingest.spool.log import KIND_DURABLE, SegmentLog, encode_frame

DIRECTORY = "/log"


class SegmentLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = FaultyFiles()
        self.rng = random.Random(7)
        self.written: dict[int, bytes] = {}  # seq -> record, for every append that returned
        self.synced: set[int] = set()  # seqs a successful sync covered
        self.lwm = 0
        self.counter = 0
        self.degraded = False
        self.log = self._open()

    def _open(self) -> SegmentLog:
        log = SegmentLog(DIRECTORY, kind=KIND_DURABLE, files=self.fs, lock=False, segment_bytes=300)
        self.recovery = log.open()
        return log

    def _records(self, sizes: list[int]) -> list[bytes]:
        made = []
        for size in sizes:
            self.counter += 1
            made.append(f"r{self.counter}:".encode().ljust(size, b"x"))
        return made

    @precondition(lambda self: not self.degraded)
    @rule(
        sizes=st.lists(st.integers(0, 80), min_size=1, max_size=6),
        fault=st.sampled_from([None, None, "short", "enospc", "short_uncut"]),
        cut=st.integers(0, 120),
    )
    def append(self, sizes: list[int], fault: str | None, cut: int) -> None:
        records = self._records(sizes)
        before = self.log.next_seq
        if fault is not None:
            self.fs.fail_write_after(0 if fault == "enospc" else cut)
        if fault == "short_uncut":  # and the partial frame cannot be cut off
            self.fs.fail_next_truncate()
        try:
            (first,) = self.log.append([records])
        except SpoolIOError:
            self.degraded = True
            return
        except OSError:
            assert self.log.next_seq == before  # nothing of the group was kept
            return
        finally:
            self.fs.clear_faults()
        assert first == before
        self.written.update({first + i: record for i, record in enumerate(records)})

    @precondition(lambda self: not self.degraded)
    @rule(fail=st.booleans())
    def sync(self, fail: bool) -> None:
        if fail:
            self.fs.fail_next_sync()
        try:
            self.log.sync()
        except SpoolIOError:
            self.degraded = True
            return
        finally:
            self.fs.clear_faults()
        self.synced |= set(self.written)

    @precondition(lambda self: not self.degraded)
    @rule(data=st.data(), fail=st.booleans())
    def resolve(self, data: st.DataObject, fail: bool) -> None:
        target = data.draw(st.integers(self.lwm, self.log.next_seq))
        if fail:
            self.fs.fail_next_sync()
        try:
            self.log.resolve(target)
        except OSError:
            assert self.log.lwm == self.lwm  # the mark moves only once it is on disk
            return
        finally:
            self.fs.clear_faults()
        self.lwm = max(self.lwm, target)

    @rule(cut=st.integers(1, 200))
    def die_mid_write(self, cut: int) -> None:
        """kill -9 while a frame was being written: part of it is in the active segment (a
        segment left after an error is never written again, so it cannot get one)."""
        if not self.log.segments() or self.log._active is None:
            return
        frame = encode_frame(self.log.next_seq, self._records([30, 5]))
        path = f"{DIRECTORY}/{self.log.segments()[-1]}"
        self.fs.files[path].data += frame[: min(cut, len(frame) - 1)]
        self.crash(power_loss=False)

    @rule(power_loss=st.booleans())
    def crash(self, power_loss: bool) -> None:
        self.log._abandon_active()  # the process is gone: no close, no final sync
        self.fs.crash(power_loss=power_loss, rng=self.rng)
        self.log = self._open()
        recovery = self.recovery
        assert recovery.lwm == self.lwm
        assert recovery.quarantined == []
        pending = {
            first + i: record for first, group in recovery.pending for i, record in enumerate(group)
        }
        must = self.synced if power_loss else set(self.written)
        for seq in must:
            if seq >= self.lwm:
                assert pending.get(seq) == self.written[seq], f"seq {seq} lost"
        for seq, record in pending.items():
            assert seq >= self.lwm
            assert self.written.get(seq) == record, f"seq {seq} was never appended"
        if pending:
            assert recovery.next_seq > max(pending)
        self.written = pending
        self.synced = set(pending)  # recovery syncs what it found
        self.degraded = False

    @invariant()
    def mark_is_monotonic_and_on_disk(self) -> None:
        assert self.log.lwm == self.lwm


SegmentLogMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSegmentLog = SegmentLogMachine.TestCase


class DeadLetterMachine(RuleBasedStateMachine):
    """The spool's handler over the faulty layer: a record handed over is either on disk
    (the handler returned) or the handler raised; a crash never loses one it returned for."""

    def __init__(self) -> None:
        super().__init__()
        self.fs = FaultyFiles()
        self.loop = asyncio.new_event_loop()
        self.stored: list[bytes] = []
        self.counter = 0
        self.spool = self._open()

    def _open(self) -> DeadLetterSpool:
        spool = DeadLetterSpool(
            "/spool", stream="s", full_timeout_s=0.0, files=self.fs, segment_bytes=400
        )
        spool._writer.log._use_lock = False
        self.recovery = self.loop.run_until_complete(spool.open())
        return spool

    def teardown(self) -> None:
        self.loop.run_until_complete(self.spool.close())
        self.loop.close()

    @rule(n=st.integers(1, 5), fault=st.sampled_from([None, None, "short", "sync"]))
    def fail_records(self, n: int, fault: str | None) -> None:
        batch = []
        for _ in range(n):
            self.counter += 1
            batch.append(FailedRecord(f"event-{self.counter}\n".encode(), "throttled", "m", 3))
        if fault == "short":
            self.fs.fail_write_after(13)
        elif fault == "sync":
            self.fs.fail_next_sync()
        try:
            self.loop.run_until_complete(self.spool.handle(batch))
        except Exception:
            return  # refused loudly: the producer counts and logs them
        finally:
            self.fs.clear_faults()
        self.stored.extend(record.data for record in batch)

    @rule()
    def power_loss(self) -> None:
        self.spool._writer.log._abandon_active()
        self.loop.run_until_complete(self.spool._writer.close())
        self.fs.crash(power_loss=True, rng=random.Random(self.counter))
        self.spool = self._open()
        recovered = [decode_entry(r).data for _, group in self.recovery.pending for r in group]
        assert recovered == self.stored


DeadLetterMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDeadLetterSpool = DeadLetterMachine.TestCase
