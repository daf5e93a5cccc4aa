"""The `durable_dir` path of the Producer: a write-ahead segment log in front of the accumulator.

A record is accepted once its group is in the log (written, and with ``durable_sync="group"``
fdatasync'd): `put`/`put_many` first write the records that fit in the queue as one group (group
commit with every other put waiting at the same time), then hand them to the accumulator. Each
batch remembers the seq runs of its records; when the ledger settles a batch (delivered, or
failed and taken by the failure handler) its runs resolve, the contiguous low-water mark moves,
and every `checkpoint_interval_s` the mark is fsync'd and whole segments below it deleted. After
a kill -9, `open` finds every record at or above the mark and the producer resends those first
(counted as recovered and as possible duplicates: some were delivered before the crash).

Uses only the storage engine of `ingest.spool` (stdlib-only modules), never its CLI or handlers.
"""

from __future__ import annotations

import asyncio
import functools
import os
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate, islice

import structlog

from ingest.errors import PutTimeoutError
from ingest.producer.accumulator import Accumulator
from ingest.producer.batch import Batch, Receipts
from ingest.producer.ledger import Ledger
from ingest.producer.stats import Counters
from ingest.spool.log import KIND_DURABLE, Recovery, SegmentLog
from ingest.spool.marks import LowWaterMark
from ingest.spool.writer import GroupWriter, SyncMode

__all__ = ["DurableBuffer"]

_log = structlog.get_logger(__name__)
#: Records per log group at most: bounds one write's size (a full disk refuses a group, not a
#: whole large put_many) while keeping one fdatasync per thousands of events.
MAX_GROUP_RECORDS = 2048


class DurableBuffer:
    """The write-ahead log of one producer (see the module doc). Durations in seconds."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        ledger: Ledger,
        accumulator: Accumulator,
        counters: Counters,
        sync: SyncMode = "group",
        sync_interval_s: float = 0.2,
        full_timeout_s: float = 30.0,
        checkpoint_interval_s: float = 0.2,
    ) -> None:
        self.directory = os.fspath(directory)
        self.writer = GroupWriter(
            SegmentLog(self.directory, kind=KIND_DURABLE),
            sync=sync,
            sync_interval_s=sync_interval_s,
            full_timeout_s=full_timeout_s,
        )
        self._ledger = ledger
        self._acc = accumulator
        self._counters = counters
        self._checkpoint_interval_s = checkpoint_interval_s
        self.mark = LowWaterMark()
        self._runs: dict[Batch, list[list[int]]] = {}  # batch -> [[first seq, count], ...]
        self._written_mark = 0
        self._checkpointer: asyncio.Task[None] | None = None
        self._feeder: asyncio.Task[None] | None = None
        self.recovery: Recovery | None = None

    # -- life cycle ---------------------------------------------------------------------------

    async def open(self) -> Recovery:
        """Recover the log; `start_resending` then queues what it holds."""
        recovery = await self.writer.open()
        self.recovery = recovery
        self.mark = LowWaterMark(recovery.lwm)
        self._written_mark = recovery.lwm
        expected = recovery.lwm
        for first, records in recovery.pending:  # gaps (quarantined segments) are resolved
            self.mark.resolve(expected, first - expected)
            expected = first + len(records)
        self.mark.resolve(expected, recovery.next_seq - expected)
        self._ledger.on_settle = self.settled
        self._checkpointer = asyncio.create_task(self._checkpoint_every(), name="ingest-durable")
        _log.info(
            "durable_log_opened",
            directory=self.directory,
            pending=recovery.pending_records,
            next_seq=recovery.next_seq,
            torn_bytes=recovery.torn_bytes,
            quarantined=len(recovery.quarantined),
            sync=self.writer.sync_mode,
        )
        return recovery

    def start_resending(self, check_open: Callable[[], None]) -> None:
        """Queue the recovered records (before any new put) in a background task."""
        if self.recovery is not None and self.recovery.pending:
            self._feeder = asyncio.create_task(
                self._resend(self.recovery.pending, check_open), name="ingest-durable-resend"
            )

    async def close(self) -> None:
        """After the producer settled everything: checkpoint the final mark, close the log."""
        if self._feeder is not None:
            self._feeder.cancel()
            await asyncio.gather(self._feeder, return_exceptions=True)
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        try:
            if not self.writer.closed and self.mark.value > self._written_mark:
                await self.writer.resolve(self.mark.value)
        finally:
            await self.writer.close()

    # -- intake -------------------------------------------------------------------------------

    async def put_many(
        self,
        records: list[bytes],
        sizes: list[int],
        timeout: float | None,
        check_open: Callable[[], None],
    ) -> Receipts:
        """Log, then queue, `records` (see the module doc); the errors of `Producer.put_many`
        plus `SpoolFullError` (the log's disk stayed full: none of the records not yet
        accepted were taken) and `SpoolIOError`."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        receipts = Receipts()
        if self._feeder is not None and not self._feeder.done():
            await self._wait_resent(deadline)
        acc = self._acc
        total = len(records)
        taken = 0
        while taken < total:
            count = self._fitting(sizes, taken, total)
            if count == 0:
                await acc.wait_for_room(
                    sizes[taken], _remaining(loop, deadline), check_open, accepted=taken
                )
                continue
            chunk = records[taken : taken + count]
            future = self.writer.submit(chunk)
            try:
                first = await asyncio.shield(future)
            except asyncio.CancelledError:  # logged anyway: those seqs were never accepted
                future.add_done_callback(functools.partial(self._not_accepted, count=count))
                raise
            done = 0
            try:
                check_open()
                chunk_sizes = sizes[taken : taken + count]
                while done < count:
                    part = Receipts()
                    reached = acc.append_many(chunk, chunk_sizes, done, part)
                    self._attach(first + done, part, receipts)
                    done = reached
                    if done < count:  # another put took the room meanwhile
                        await acc.wait_for_room(
                            chunk_sizes[done],
                            _remaining(loop, deadline),
                            check_open,
                            accepted=taken + done,
                        )
            except BaseException:
                self.mark.resolve(first + done, count - done)
                raise
            taken += count
        return receipts

    def _fitting(self, sizes: list[int], taken: int, total: int) -> int:
        """How many of ``sizes[taken:]`` fit in the queue now."""
        acc = self._acc
        room_records = acc.max_records - acc.queue_records
        if room_records <= 0:
            return 0
        limit = min(total, taken + room_records, taken + MAX_GROUP_RECORDS)
        totals = accumulate(islice(sizes, taken, limit))
        return bisect_right(list(totals), acc.max_bytes - acc.queue_bytes)

    def _attach(self, first_seq: int, part: Receipts, receipts: Receipts) -> None:
        seq = first_seq
        runs_of = self._runs
        for batch, start, stop in part.segments():
            count = stop - start
            runs = runs_of.get(batch)
            if runs is None:
                runs_of[batch] = [[seq, count]]
            elif runs[-1][0] + runs[-1][1] == seq:
                runs[-1][1] += count
            else:
                runs.append([seq, count])
            seq += count
            receipts.add(batch, start, stop)

    def _not_accepted(self, future: asyncio.Future[int], *, count: int) -> None:
        if not future.cancelled() and future.exception() is None:
            self.mark.resolve(future.result(), count)

    async def _wait_resent(self, deadline: float | None) -> None:
        assert self._feeder is not None
        remaining = _remaining(asyncio.get_running_loop(), deadline)
        done, _ = await asyncio.wait({self._feeder}, timeout=remaining)
        if not done:
            raise PutTimeoutError(
                f"no queue space within the timeout: the durable log's {self._pending()} "
                "recovered records are resent first",
                0,
            )

    def _pending(self) -> int:
        return 0 if self.recovery is None else self.recovery.pending_records

    async def _resend(
        self, groups: list[tuple[int, list[bytes]]], check_open: Callable[[], None]
    ) -> None:
        acc = self._acc
        counters = self._counters
        for first, records in groups:
            sizes = [len(record) for record in records]
            done = 0
            while done < len(records):
                part = Receipts()
                reached = acc.append_many(records, sizes, done, part)
                self._attach(first + done, part, Receipts())
                counters.records_recovered += reached - done
                counters.duplicates_possible += reached - done
                done = reached
                if done < len(records):
                    await acc.room_changed()
                    check_open()
        _log.info("durable_log_resent", records=self._pending())

    # -- settlement and the checkpoint ----------------------------------------------------------

    def settled(self, batch: Batch) -> None:
        """The ledger settled `batch`: its records are delivered or handed to the failure
        handler. A batch whose failures the handler refused stays unresolved (resent after a
        restart rather than lost)."""
        runs = self._runs.pop(batch, None)
        if runs is None or batch in self._ledger.unhandled:
            return
        mark = self.mark
        for first, count in runs:
            mark.resolve(first, count)

    async def _checkpoint_every(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_interval_s)
            value = self.mark.value
            if value > self._written_mark:
                try:
                    await self.writer.resolve(value)
                except Exception as exc:  # keep going: the next tick tries again
                    _log.error(
                        "durable_checkpoint_failed", directory=self.directory, error=str(exc)
                    )
                    continue
                self._written_mark = value


def _remaining(loop: asyncio.AbstractEventLoop, deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - loop.time())
