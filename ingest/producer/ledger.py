"""The ledger: the one place where a record's fate becomes final.

Every settlement updates the counters, gives the record's queue space back and, for failures,
calls the failure handler, so ``put == delivered + failed + pending`` holds at every instant.

An async failure handler (``async def``, e.g. the dead-letter spool's, which fsyncs) is awaited
BEFORE its records count as failed: until it returns they stay pending, keep their queue space
(so a slow or full spool is backpressure on `put`) and their batch stays unsettled.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import structlog

from ingest.errors import FirehoseError, IngestError
from ingest.firehose.wire import PutBatchResult
from ingest.producer.batch import Batch
from ingest.producer.stats import Counters, FailedRecord

__all__ = ["AsyncFailureHandler", "FailureHandler", "Ledger", "log_failures"]

FailureHandler = Callable[[Sequence[FailedRecord]], None]
AsyncFailureHandler = Callable[[Sequence[FailedRecord]], Awaitable[None]]
_log = structlog.get_logger(__name__)


def log_failures(failed: Sequence[FailedRecord]) -> None:
    """The default failure handler: one log line per settlement and reason (never one per
    record)."""
    by_reason: dict[str, list[FailedRecord]] = {}
    for record in failed:
        by_reason.setdefault(record.reason, []).append(record)
    for reason, records in by_reason.items():
        first = records[0]
        _log.warning(
            "records_failed",
            count=len(records),
            reason=reason,
            message=first.message,
            attempts=first.attempts,
            maybe_stored=sum(record.maybe_stored for record in records),
        )


class Ledger:
    """Settles batches. `release(records, bytes)` returns queue space to the accumulator."""

    def __init__(
        self,
        counters: Counters,
        release: Callable[[int, int], None],
        on_failure: FailureHandler | AsyncFailureHandler | None = None,
    ) -> None:
        self.counters = counters
        self._release = release
        self._on_failure = on_failure or log_failures
        self.unsettled: dict[Batch, None] = {}  # insertion-ordered set
        # Async handler: failures handed over but not yet counted, per batch, and the tasks.
        self._async = inspect.iscoroutinefunction(on_failure)
        self._handing: dict[Batch, int] = {}
        self._deferred: list[tuple[Batch, list[FailedRecord]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.unhandled: set[Batch] = set()  # batches whose failures the async handler refused
        self.on_settle: Callable[[Batch], None] | None = None  # told of every settled batch
        self.on_handler_error: Callable[[Exception], None] | None = None

    def track(self, batch: Batch) -> None:
        self.unsettled[batch] = None

    def deliver(self, batch: Batch, result: PutBatchResult) -> list[tuple[int, FirehoseError]]:
        """Settle the entries delivered by `result` (the answer for `batch.pending_records()`)
        and return the failed ones as (index in batch, error); those stay pending."""
        if batch.done:  # already failed by a crash: a late answer changes nothing
            return []
        sent = batch.pending
        failed = [(f.index if sent is None else sent[f.index], f.error) for f in result.failures()]
        if sent is None:
            batch.answer = result
            batch.answered_at = batch.attempts
            delivered = len(batch.records) - len(failed)
        else:
            late = batch.late_ids if batch.late_ids is not None else {}
            for position, index in enumerate(sent):
                record_id = result.responses[position].get("RecordId")
                if record_id is not None:
                    late[index] = (record_id, batch.attempts)
            batch.late_ids = late
            delivered = len(sent) - len(failed)
        records = batch.records
        if not failed and sent is None:
            delivered_bytes = batch.nbytes
        else:
            sent_bytes = batch.nbytes if sent is None else sum(len(records[i]) for i in sent)
            delivered_bytes = sent_bytes - sum(len(records[i]) for i, _ in failed)
        batch.pending = [index for index, _ in failed]
        counters = self.counters
        counters.records_delivered += delivered
        counters.bytes_delivered += delivered_bytes
        counters.last_success_monotonic = time.monotonic()
        self._release(delivered, delivered_bytes)
        if not failed:
            self.settle(batch)
        return failed

    def fail_pending(
        self, batch: Batch, reason: str, message: str, *, hand_over: bool = True
    ) -> list[FailedRecord]:
        """Settle every still-pending record of `batch` as failed and return them (none if
        already settled); `hand_over` as in `fail_each`."""
        if batch.done:
            return []
        failures = [(index, reason, message) for index in batch.pending_indices()]
        return self.fail_each(batch, failures, hand_over=hand_over)

    def fail_each(
        self, batch: Batch, failures: Sequence[tuple[int, str, str]], *, hand_over: bool = True
    ) -> list[FailedRecord]:
        """Settle (index, reason, message) entries of `batch` as failed; returns them. With
        `hand_over` they go to the failure handler now, else the caller hands them over."""
        if not failures or batch.done:
            return []
        records = batch.records
        failed = [
            FailedRecord(
                records[index],
                reason,
                message,
                batch.attempts,
                batch.maybe_stored,
                batch.first_error,
                batch.first_failed_at,
            )
            for index, reason, message in failures
        ]
        table = batch.failures if batch.failures is not None else {}
        for (index, _, _), record in zip(failures, failed, strict=True):
            table[index] = record
        batch.failures = table
        gone = {index for index, _, _ in failures}
        batch.pending = [index for index in batch.pending_indices() if index not in gone]
        if self._async:  # counted once the handler returns (see the module doc)
            self._handing[batch] = self._handing.get(batch, 0) + 1
            self._deferred.append((batch, failed))
            if hand_over:
                self.hand_over(failed)
            return failed
        for record in failed:
            self.counters.count_failed(record.reason, 1)
        self._release(len(failed), sum(len(record.data) for record in failed))
        if not batch.pending:
            self.settle(batch)
        if hand_over:
            self.hand_over(failed)
        return failed

    def fail_batches(self, batches: Iterable[Batch], reason: str, message: str) -> None:
        """Fail every pending record of `batches`; one call of the failure handler for all."""
        failed: list[FailedRecord] = []
        for batch in list(batches):
            failed.extend(self.fail_pending(batch, reason, message, hand_over=False))
        if failed:
            self.hand_over(failed)

    def fail_unsettled(self, reason: str, message: str) -> None:
        """Fail every pending record of every batch not yet settled (close or crash)."""
        self.fail_batches(self.unsettled, reason, message)

    def settle(self, batch: Batch) -> None:
        """Mark `batch` final (all its records settled, or none ever added)."""
        if self._handing and batch in self._handing:
            return  # its failures are still being handed over; settled when that ends
        self.unsettled.pop(batch, None)
        batch.settle()
        if self.on_settle is not None:
            self.on_settle(batch)

    def hand_over(self, failed: list[FailedRecord]) -> None:
        """Give settled failures to the failure handler; its errors are logged, not raised."""
        if self._async:
            deferred, self._deferred = self._deferred, []
            task = asyncio.get_running_loop().create_task(self._hand_over_async(deferred))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            self._on_failure(failed)
        except Exception:  # a broken handler must not break the accounting or the producer
            _log.exception("failure_handler_error", count=len(failed))

    async def _hand_over_async(self, deferred: list[tuple[Batch, list[FailedRecord]]]) -> None:
        failed = [record for _, records in deferred for record in records]
        try:
            await self._on_failure(failed)  # type: ignore[misc]
        except Exception as exc:  # counted as failed all the same: never pending forever
            if isinstance(exc, IngestError):  # e.g. SpoolFullError: expected, said plainly
                _log.error("failure_handler_refused", count=len(failed), error=str(exc))
            else:
                _log.exception("failure_handler_error", count=len(failed))
            self.unhandled.update(batch for batch, _ in deferred)
            if self.on_handler_error is not None:
                self.on_handler_error(exc)
        finally:
            counters = self.counters
            for batch, records in deferred:
                for record in records:
                    counters.count_failed(record.reason, 1)
                self._release(len(records), sum(len(record.data) for record in records))
                left = self._handing.pop(batch) - 1
                if left:
                    self._handing[batch] = left
                elif not batch.pending:
                    self.settle(batch)

    async def handlers_done(self) -> None:
        """Wait until every failure handed to an async handler is counted."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
