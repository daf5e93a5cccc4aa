"""The bounded buffer: builds batches under the Firehose limits and hands them to the sender.

One bound covers everything the producer holds (open batch, ready batches, requests in flight,
records awaiting a resend): `queue_records` and `queue_bytes` go up when a record is appended
and down only when the ledger settles it.

When a batch ships: a FULL batch (500 records, or the next record would pass 4 MiB) is ready at
once. A partial batch keeps filling while requests are on the wire; it ships to a free request
slot only once its linger time (counted from its first record) has expired AND no request is on
the wire (Nagle's rule), or at once when writers are blocked on the bound, or on flush/close.
So under slow answers batches fill up instead of going out small, and no more requests are made
than the rate needs: 5,000 events/s against 200 ms answers travel as ~2 requests of 500 in
flight, not 8 of 125. Linger expiry is a ``loop.call_later`` timer, so nothing polls.

The lane (`lane_room`, `lane_records`, `lane_batch`, `lane_end`): `Producer.put`'s per-event
path. While the lane is open, a record of at most `lane_room` bytes may be appended straight to
`lane_records` (the open batch's list), taking `lane_room` down by its size; the batch's byte
count, the queue counts and ``records_put`` are brought up to date only when something reads
them (`sync_lane`, run first by every method here that reads or changes them), so a put costs a
list append and one subtraction. `lane_room` never exceeds the batch's byte room, the queue's
byte room or the largest record allowed, and the lane ends at `lane_end` records: the limits and
the bound hold exactly as for `append`. A closed lane has `lane_room` -1: no record fits.

With packing (`Packer`), the batch still holds EVENTS (the ledger counts events), and its limits
apply to the records the sender will pack them into: at most 500 packed records and 4 MiB (gzip's
worst-case growth included). The accumulator follows the packer's next-fit grouping as events
arrive (`_packs`, `_fill`), so the sender's packing of the batch gives the same records.
Nothing here awaits I/O.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from itertools import accumulate

from ingest.errors import PutTimeoutError
from ingest.firehose.limits import MAX_BATCH_BYTES, MAX_RECORD_BYTES, MAX_RECORDS_PER_BATCH
from ingest.producer.batch import Batch, Receipt, Receipts
from ingest.producer.ledger import Ledger
from ingest.producer.packing import Packer

__all__ = ["Accumulator"]


class Accumulator:
    """Batches records; `max_records`/`max_bytes` bound what is held; `linger_s` in seconds;
    `packer` (None: one record per event) packs events into Firehose records; `largest` is the
    largest record the producer accepts."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_records: int,
        max_bytes: int,
        linger_s: float,
        packer: Packer | None = None,
        largest: int = MAX_RECORD_BYTES,
    ) -> None:
        self._ledger = ledger
        self._counters = ledger.counters
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.largest = largest  # the largest record put may take (the lane never takes more)
        self._linger_s = linger_s
        self.queue_records = 0
        self.queue_bytes = 0
        self._open: Batch | None = None
        self._expired = False  # the open batch's linger time is over
        self._linger: asyncio.TimerHandle | None = None
        self._ready: deque[Batch] = deque()
        self._ready_waiter: asyncio.Future[None] | None = None
        self._room_waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.packer = packer
        # Packed records the open batch will make, and the raw bytes of its last one.
        self._packs = 0
        self._fill = 0
        self._pack_bytes = packer.pack_bytes if packer is not None else 0
        self._gzip = packer is not None and packer.gzip
        if packer is not None:
            self.append = self._append_packed  # type: ignore[method-assign]
            self.append_many = self._append_many_packed  # type: ignore[method-assign]
        # The lane (see the module doc). `lanes_allowed` is the producer's to set: only plain
        # puts (no packing, no durable log) of a running producer may use it.
        self.lanes_allowed = False
        self.lane_room = -1
        self.lane_records: list[bytes] = []
        self.lane_batch: Batch | None = None
        self.lane_end = 0
        self._lane_opened_room = -1  # lane_room at the last sync
        self._lane_synced = 0  # len(lane_records) at the last sync

    def has_room(self, size: int) -> bool:
        self.sync_lane()
        return self.queue_records < self.max_records and self.queue_bytes + size <= self.max_bytes

    # -- the lane ------------------------------------------------------------------------------

    def sync_lane(self) -> None:
        """Count what went through the lane since the last sync (the lane stays open)."""
        if self.lane_batch is None:
            return
        added = len(self.lane_records) - self._lane_synced
        if added:
            nbytes = self._lane_opened_room - self.lane_room
            self.lane_batch.nbytes += nbytes
            self.queue_records += added
            self.queue_bytes += nbytes
            self._counters.records_put += added
            self._lane_synced += added
            self._lane_opened_room = self.lane_room

    def close_lane(self) -> None:
        """Sync and close the lane: the next put takes the slow path."""
        self.sync_lane()
        self.lane_batch = None
        self.lane_room = self._lane_opened_room = -1
        self.lane_end = 0

    def lane_filled(self) -> None:
        """The lane reached `lane_end`: close it, and seal the batch if that made it full."""
        batch = self.lane_batch
        self.close_lane()
        if batch is not None and len(batch.records) == MAX_RECORDS_PER_BATCH:
            self.seal()

    def _open_lane(self) -> None:
        """Open the lane on the open batch, within the batch's and the queue's room (the lane
        must be synced, i.e. closed or just synced)."""
        batch = self._open
        if batch is None or not self.lanes_allowed:
            return
        count = len(batch.records)
        end = count + min(MAX_RECORDS_PER_BATCH - count, self.max_records - self.queue_records)
        if end <= count:
            return
        room = min(MAX_BATCH_BYTES - batch.nbytes, self.max_bytes - self.queue_bytes, self.largest)
        self.lane_batch = batch
        self.lane_records = batch.records
        self.lane_room = self._lane_opened_room = room
        self._lane_synced = count
        self.lane_end = end

    # -- one record per Firehose record --------------------------------------------------------

    def append(self, record: bytes, size: int) -> Receipt:
        """Add one record (the caller has checked `has_room`); returns its receipt. Opens the
        lane for the records after it."""
        self.close_lane()
        batch = self._open
        if batch is None or batch.nbytes + size > MAX_BATCH_BYTES:
            batch = self._start_batch()
        records = batch.records
        index = len(records)
        records.append(record)
        batch.nbytes += size
        self.queue_records += 1
        self.queue_bytes += size
        self._counters.records_put += 1
        if index + 1 == MAX_RECORDS_PER_BATCH:
            self.seal()
        else:
            self._open_lane()
        return Receipt(batch, index)

    def append_many(
        self, records: list[bytes], sizes: list[int], taken: int, receipts: Receipts
    ) -> int:
        """Add ``records[taken:]`` while there is room; returns the index reached."""
        self.close_lane()
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
            totals = list(accumulate(sizes[taken:limit], initial=batch.nbytes))
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

    # -- packed: many events per Firehose record -----------------------------------------------

    def _raw_cap(self, packs: int) -> int:
        """Raw event bytes a batch of `packs` packed records may hold: 4 MiB, less gzip's
        worst-case growth (`gzip_bound` per record) when compressing."""
        if not self._gzip:
            return MAX_BATCH_BYTES
        return (MAX_BATCH_BYTES - 64 * packs) * 2048 // 2049

    def _append_packed(self, record: bytes, size: int) -> Receipt:
        batch = self._open
        fill = self._fill
        if batch is not None:
            raw = batch.nbytes + size
            if fill and fill + size <= self._pack_bytes and raw <= self._raw_cap(self._packs):
                self._fill = fill + size  # joins the record being packed
            elif self._packs < MAX_RECORDS_PER_BATCH and raw <= self._raw_cap(self._packs + 1):
                self._packs += 1
                self._fill = size
            else:
                batch = None
        if batch is None:
            batch = self._start_batch()
            self._packs = 1
            self._fill = size
        records = batch.records
        index = len(records)
        records.append(record)
        batch.nbytes += size
        self.queue_records += 1
        self.queue_bytes += size
        self._counters.records_put += 1
        return Receipt(batch, index)

    def _append_many_packed(
        self, records: list[bytes], sizes: list[int], taken: int, receipts: Receipts
    ) -> int:
        total = len(records)
        pack_bytes = self._pack_bytes
        while taken < total:
            batch = self._open if self._open is not None else self._start_batch()
            limit = min(total, taken + self.max_records - self.queue_records)
            totals = list(accumulate(sizes[taken:limit], initial=0))
            # The queue's byte bound: events taken..room_end-1 fit.
            room_end = bisect_right(totals, self.max_bytes - self.queue_bytes) - 1
            if room_end == 0:
                return taken  # no room: the caller waits for space
            raw, packs, fill = batch.nbytes, self._packs, self._fill
            pos = 0  # relative to `taken`
            full = False
            while pos < room_end:
                if fill:  # extend the record being packed: by its size, the batch's bytes
                    base = totals[pos]
                    room = min(pack_bytes - fill, self._raw_cap(packs) - raw)
                    end = min(bisect_right(totals, base + room, pos) - 1, room_end)
                    if end > pos:
                        added = totals[end] - base
                        raw += added
                        fill += added
                        pos = end
                    if pos == room_end:
                        break
                    fill = 0  # the next event does not fit this record
                    continue
                size = totals[pos + 1] - totals[pos]
                if packs == MAX_RECORDS_PER_BATCH or raw + size > self._raw_cap(packs + 1):
                    full = True
                    break
                packs += 1
                fill = size
                raw += size
                pos += 1
            if pos:
                start = len(batch.records)
                batch.records.extend(records[taken : taken + pos])
                batch.nbytes = raw
                self.queue_records += pos
                self.queue_bytes += totals[pos]
                self._counters.records_put += pos
                self._packs, self._fill = packs, fill
                receipts.add(batch, start, len(batch.records))
                taken += pos
            if full:
                self.seal()
            elif taken < total:
                return taken  # stopped by the bound
        return taken

    # -- batches -------------------------------------------------------------------------------

    def _start_batch(self) -> Batch:
        self.seal()
        batch = Batch()
        self._open = batch
        self._ledger.track(batch)
        if self._linger_s > 0:
            self._linger = asyncio.get_running_loop().call_later(
                self._linger_s, self._linger_expired
            )
        else:
            self._expired = True
            self._wake(self._ready_waiter)
        return batch

    def _linger_expired(self) -> None:
        self._linger = None
        self._expired = True
        self._wake(self._ready_waiter)

    def seal(self) -> None:
        """Make the open batch ready now (full, flush or close)."""
        self.close_lane()
        batch = self._open
        if batch is None:
            return
        self._open = None
        self._expired = False
        self._packs = self._fill = 0
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if not batch.records:
            self._ledger.settle(batch)  # nothing to wait for
            return
        self._ready.append(batch)
        self._wake(self._ready_waiter)

    def poke(self) -> None:
        """The sender's requests changed (one ended): look again whether a partial batch may
        ship now."""
        if self._open is not None:
            self._wake(self._ready_waiter)

    def _partial_may_ship(self) -> bool:
        """A partial batch ships when writers are blocked on the bound (it is as full as it can
        get), or when its linger is over and no request is on the wire (Nagle's rule: while
        one is, more records for the next request arrive for free)."""
        if self._room_waiter is not None and not self._room_waiter.done():
            return True
        return self._expired and self._counters.inflight_requests == 0

    async def next_batch(self) -> Batch | None:
        """Wait for a batch to send (the caller holds a free request slot); None once closed
        and nothing is left. Cancellation-safe: a cancelled wait takes nothing."""
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._open is not None and self._open.records and self._partial_may_ship():
                self.seal()
                continue
            if self._closed:
                return None
            self._ready_waiter = asyncio.get_running_loop().create_future()
            await self._ready_waiter

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
        self.sync_lane()
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
            self._wake(self._ready_waiter)  # a blocked writer lets the open batch ship
        await asyncio.shield(self._room_waiter)

    def wake_all(self) -> None:
        """Wake everyone waiting (used on crash or fatal error, so nothing hangs)."""
        self._wake(self._ready_waiter)
        self._wake(self._room_waiter)

    @staticmethod
    def _wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
