"""The bounded buffer: builds batches under the Firehose limits and hands them to the sender.

One bound covers everything the producer holds (open batch, ready batches, requests in flight,
records awaiting a resend): `queue_records` and `queue_bytes` go up when a record is appended
and down only when the ledger settles it. A batch is ready when it is full (500 records, or the
next record would pass 4 MiB raw) or when its linger time expires; expiry is a
``loop.call_later`` timer, so nothing polls. Nothing here awaits I/O.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from itertools import accumulate, islice

from ingest.errors import PutTimeoutError
from ingest.firehose.limits import MAX_BATCH_BYTES, MAX_RECORDS_PER_BATCH
from ingest.producer.batch import Batch, Receipt, Receipts
from ingest.producer.ledger import Ledger

__all__ = ["Accumulator"]


class Accumulator:
    """Batches records; `max_records`/`max_bytes` bound what is held; `linger_s` in seconds."""

    def __init__(self, ledger: Ledger, *, max_records: int, max_bytes: int, linger_s: float):
        self._ledger = ledger
        self._counters = ledger.counters
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._linger_s = linger_s
        self.queue_records = 0
        self.queue_bytes = 0
        self._open: Batch | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._ready: deque[Batch] = deque()
        self._ready_waiter: asyncio.Future[None] | None = None
        self._room_waiter: asyncio.Future[None] | None = None
        self._closed = False

    def has_room(self, size: int) -> bool:
        return self.queue_records < self.max_records and self.queue_bytes + size <= self.max_bytes

    def append(self, record: bytes, size: int) -> Receipt:
        """Add one record (the caller has checked `has_room`); returns its receipt."""
        batch = self._open
        if batch is None or batch.nbytes + size > MAX_BATCH_BYTES:
            batch = self._start_batch()
        index = len(batch.records)
        batch.records.append(record)
        batch.nbytes += size
        self.queue_records += 1
        self.queue_bytes += size
        self._counters.records_put += 1
        if index + 1 == MAX_RECORDS_PER_BATCH:
            self.seal()
        return Receipt(batch, index)

    def append_many(
        self, records: list[bytes], sizes: list[int], taken: int, receipts: Receipts
    ) -> int:
        """Add ``records[taken:]`` while there is room; returns the index reached."""
        total = len(records)
        while taken < total:
            batch = self._open
            if batch is None or batch.nbytes + sizes[taken] > MAX_BATCH_BYTES:
                batch = self._start_batch()
            start = len(batch.records)
            room_records = min(MAX_RECORDS_PER_BATCH - start, self.max_records - self.queue_records)
            byte_cap = min(MAX_BATCH_BYTES, self.max_bytes - self.queue_bytes + batch.nbytes)
            limit = min(total, taken + room_records)
            # Running totals in C; the cut is the last record that still fits under the cap.
            totals = list(accumulate(islice(sizes, taken, limit), initial=batch.nbytes))
            end = taken + bisect_right(totals, byte_cap) - 1
            nbytes = totals[end - taken]
            if end == taken:
                return taken  # no room: the caller waits for space
            batch.records.extend(records[taken:end])
            self.queue_records += end - taken
            self.queue_bytes += nbytes - batch.nbytes
            self._counters.records_put += end - taken
            batch.nbytes = nbytes
            receipts.add(batch, start, len(batch.records))
            taken = end
            if len(batch.records) == MAX_RECORDS_PER_BATCH:
                self.seal()
        return taken

    def _start_batch(self) -> Batch:
        self.seal()
        batch = Batch()
        self._open = batch
        self._ledger.track(batch)
        self._linger = asyncio.get_running_loop().call_later(self._linger_s, self.seal)
        return batch

    def seal(self) -> None:
        """Make the open batch ready now (full, linger expired, flush or close)."""
        batch = self._open
        if batch is None:
            return
        self._open = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if not batch.records:
            self._ledger.settle(batch)  # nothing to wait for
            return
        self._ready.append(batch)
        self._wake(self._ready_waiter)

    async def next_batch(self) -> Batch | None:
        """Wait for a ready batch; None once closed and nothing is left. Cancellation-safe:
        a cancelled wait takes nothing."""
        while not self._ready:
            if self._closed:
                return None
            self._ready_waiter = asyncio.get_running_loop().create_future()
            await self._ready_waiter
        return self._ready.popleft()

    def close(self) -> None:
        """Stop batching: the open batch becomes ready at once; `next_batch` ends when empty."""
        self.seal()
        self._closed = True
        self.wake_all()

    def take_unsent(self) -> list[Batch]:
        """Remove and return every batch not yet handed to the sender."""
        self.seal()
        batches = list(self._ready)
        self._ready.clear()
        return batches

    def release(self, records: int, nbytes: int) -> None:
        """Give back the space of settled records; wakes producers waiting for room."""
        self.queue_records -= records
        self.queue_bytes -= nbytes
        self._wake(self._room_waiter)

    def describe_fill(self) -> str:
        return (
            f"{self.queue_records}/{self.max_records} records, "
            f"{self.queue_bytes}/{self.max_bytes} bytes held"
        )

    async def wait_for_room(
        self, size: int, timeout: float | None, recheck: Callable[[], None], *, accepted: int
    ) -> None:
        """Wait until `size` more bytes (and one record) fit, at most `timeout` seconds (None:
        no limit); `recheck` runs after every wake-up and raises if the producer stopped.
        Raises `PutTimeoutError` (with `accepted`). Cancelling the wait takes no space."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.has_room(size):
            remaining = None if deadline is None else deadline - loop.time()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                async with asyncio.timeout(remaining):
                    await self.room_changed()
            except TimeoutError:
                message = f"no queue space within {timeout} s ({self.describe_fill()})"
                raise PutTimeoutError(message, accepted) from None
            recheck()

    async def room_changed(self) -> None:
        """Wait until some space is released (or the accumulator closes), then return; the
        caller re-checks. Cancelling the wait is harmless."""
        if self._room_waiter is None or self._room_waiter.done():
            self._room_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._room_waiter)

    def wake_all(self) -> None:
        """Wake everyone waiting (used on crash or fatal error, so nothing hangs)."""
        self._wake(self._ready_waiter)
        self._wake(self._room_waiter)

    @staticmethod
    def _wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
