"""Batches (the unit the producer sends and settles) and the receipts handed to callers.

A `Batch` holds up to 500 records, at most 4 MiB raw. It is the only per-request object on the
hot path: a record is just its ``bytes``, and its receipt is a two-slot object pointing at
(batch, index). One lazily created future per batch (not per record) wakes whoever awaits a
receipt. Records that fail inside a 200 stay in their batch (`pending` narrows to their
indices) and are resent from there, so a record's fate is always found in its own batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Iterator
from typing import Any

from ingest.errors import RecordFailedError
from ingest.firehose.wire import PutBatchResult
from ingest.producer.stats import FailedRecord

__all__ = ["Batch", "Receipt", "Receipts"]


class Batch:
    """Records sent together, and what became of each of them."""

    __slots__ = (
        "answer",
        "answered_at",
        "attempts",
        "done",
        "failures",
        "first_error",
        "first_failed_at",
        "late_ids",
        "maybe_stored",
        "nbytes",
        "pending",
        "records",
        "waiter",
    )

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.nbytes = 0
        self.attempts = 0
        # Sticky: set by any attempt whose outcome is unknown (a timeout or reset after sending),
        # so every record of the batch that later fails is marked "may have been stored".
        self.maybe_stored = False
        # The first error any attempt met, and when (time.time()): kept for the dead-letter spool.
        self.first_error: str | None = None
        self.first_failed_at: float | None = None
        # Indices still without a final fate; None means "all of them" (the common case).
        self.pending: list[int] | None = None
        self.answer: PutBatchResult | None = None  # first answer for all records (parsed lazily)
        self.answered_at = 0  # attempt number of that first answer
        # RecordId and attempt number of records delivered by a resend.
        self.late_ids: dict[int, tuple[str, int]] | None = None
        self.failures: dict[int, FailedRecord] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.done = False

    def note_error(self, message: str) -> None:
        """Remember the first error an attempt of this batch met."""
        if self.first_error is None:
            self.first_error = message
            self.first_failed_at = time.time()

    def pending_indices(self) -> list[int]:
        return list(range(len(self.records))) if self.pending is None else self.pending

    def pending_records(self) -> list[bytes]:
        if self.pending is None:
            return self.records
        records = self.records
        return [records[i] for i in self.pending]

    def record_id(self, index: int) -> str | None:
        if self.late_ids is not None and index in self.late_ids:
            return self.late_ids[index][0]
        return None if self.answer is None else self.answer.record_id(index)

    def attempts_of(self, index: int) -> int:
        """Sends it took to deliver record `index` (or that it got before failing)."""
        failed = self.failure(index)
        if failed is not None:
            return failed.attempts
        if self.late_ids is not None and index in self.late_ids:
            return self.late_ids[index][1]
        return self.answered_at

    def failure(self, index: int) -> FailedRecord | None:
        return None if self.failures is None else self.failures.get(index)

    async def wait(self) -> None:
        """Block until every record of the batch has a final fate. Cancelling the wait does
        not affect the batch."""
        if self.done:
            return
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.waiter)

    def settle(self) -> None:
        """Mark the batch final and wake its waiters (called by the ledger)."""
        self.done = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Receipt:
    """The fate of one record put: ``await receipt`` returns its RecordId once delivered, or
    raises `RecordFailedError` once failed. Resolves when its whole batch is settled."""

    # `Producer.put` makes receipts without running __init__ (it sets these two slots itself):
    # a slot added here must be set there too.
    __slots__ = ("_batch", "_index")

    def __init__(self, batch: Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.done

    @property
    def record_id(self) -> str | None:
        """The RecordId if delivered (and settled), else None."""
        return self._batch.record_id(self._index) if self._batch.done else None

    @property
    def attempts(self) -> int | None:
        """Sends the record took to its final fate (1 = delivered at the first send), or None
        until settled."""
        return self._batch.attempts_of(self._index) if self._batch.done else None

    @property
    def failure(self) -> FailedRecord | None:
        """The failure if the record failed (and is settled), else None."""
        return self._batch.failure(self._index) if self._batch.done else None

    async def result(self) -> str:
        """Wait for the record's fate; returns its RecordId, raises `RecordFailedError`."""
        await self._batch.wait()
        failed = self._batch.failure(self._index)
        if failed is not None:
            raise RecordFailedError(failed.reason, failed.message, failed.attempts)
        return self._batch.record_id(self._index) or ""

    def __await__(self) -> Generator[Any, None, str]:
        """``await receipt`` is ``await receipt.result()``: the RecordId, or
        `RecordFailedError`. Cancelling the await does not affect the record."""
        return self.result().__await__()


class Receipts:
    """The fates of the records of one `put_many` call, as (batch, start, stop) segments."""

    __slots__ = ("_segments",)

    def __init__(self) -> None:
        self._segments: list[tuple[Batch, int, int]] = []

    def add(self, batch: Batch, start: int, stop: int) -> None:
        self._segments.append((batch, start, stop))

    def __len__(self) -> int:
        return sum(stop - start for _, start, stop in self._segments)

    def segments(self) -> list[tuple[Batch, int, int]]:
        """The (batch, start, stop) runs, in put order."""
        return self._segments

    def __iter__(self) -> Iterator[Receipt]:
        for batch, start, stop in self._segments:
            for index in range(start, stop):
                yield Receipt(batch, index)

    def done(self) -> bool:
        return all(batch.done for batch, _, _ in self._segments)

    async def wait(self) -> list[FailedRecord]:
        """Wait until every record has a final fate; return the failed ones (empty: all
        delivered)."""
        for batch, _, _ in self._segments:
            await batch.wait()
        return self.failures()

    def failures(self) -> list[FailedRecord]:
        """The failed records among those already settled."""
        found: list[FailedRecord] = []
        for batch, start, stop in self._segments:
            if batch.failures:
                found.extend(f for i, f in sorted(batch.failures.items()) if start <= i < stop)
        return found
