"""The sender: requests in flight, the retry policy, resends of failed entries, outcomes.

One dispatcher task takes ready batches from the accumulator and starts one task per request,
at most `max_inflight` at a time. Each request task owns its batch until every record in it is
settled: tenacity (the only retry authority; botocore makes one attempt) decides whether and
when to resend, with exponential backoff, full jitter and a cap, bounded by a per-record
deadline counted from the batch's first attempt (and by `max_attempts` if set). The first
attempt goes straight to the transport (most batches need no other, and tenacity's loop costs
~40 us of CPU per request); only a retriable failure enters tenacity, which replays it as its
own first attempt, dated from when that began, so every resend is decided exactly as before. After a
200 with failed entries only those entries are resent. A cancelled request is settled as failed,
never as delivered. Once any attempt of a batch had an ambiguous outcome (a timeout or reset after
the request was sent), every record of it that later fails says it may have been stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    before_nothing,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from ingest.errors import FirehoseError, RequestTimeoutError, ServerError, ThrottledError
from ingest.firehose.limits import BILLING_INCREMENT_BYTES
from ingest.firehose.wire import PutBatchResult
from ingest.producer.accumulator import Accumulator
from ingest.producer.batch import Batch
from ingest.producer.concurrency import ConcurrencyLimit, Signal
from ingest.producer.ledger import Ledger
from ingest.producer.packing import PackedResult, billed_total
from ingest.producer.ratelimit import RateLimiter
from ingest.producer.stats import RequestObservation, RequestObserver

__all__ = ["BatchTransport", "RetryPolicy", "Sender"]

_log = structlog.get_logger(__name__)


class BatchTransport(Protocol):
    async def put_record_batch(
        self, records: list[bytes], on_sending: Callable[[], None] | None = None
    ) -> PutBatchResult: ...


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Attempts per record (first send included), deadline and backoff, all in seconds."""

    max_attempts: int | None  # None: no cap, the deadline alone ends the retries
    deadline_s: float
    backoff_base_s: float
    backoff_cap_s: float

    def retrying(self, first_started: float | None = None) -> AsyncRetrying:
        """The retry loop; `first_started` (``time.monotonic()``) is when its first attempt
        began, when that attempt ran before the loop (the deadline counts from it)."""
        # A time budget, not a count: a fixed count of backoffs ends long before an outage does.
        stop: stop_base = stop_before_delay(self.deadline_s)
        if self.max_attempts is not None:
            stop = stop | stop_after_attempt(self.max_attempts)
        return AsyncRetrying(
            stop=stop,
            wait=wait_random_exponential(multiplier=self.backoff_base_s, max=self.backoff_cap_s),
            retry=retry_if_exception(_is_retriable),
            reraise=True,
            before=before_nothing if first_started is None else _started_at(first_started),
        )


def _started_at(started: float) -> Callable[[RetryCallState], None]:
    """A `before` hook dating the loop's first attempt back to `started`."""

    def before(retry_state: RetryCallState) -> None:
        if retry_state.attempt_number == 1:
            retry_state.start_time = started

    return before


class _EntriesFailed(Exception):
    """Some entries of a 200 failed retriably; they are pending in the batch."""

    retriable = True

    def __init__(self, failures: list[tuple[int, FirehoseError]]) -> None:
        super().__init__(f"{len(failures)} entries failed")
        self.failures = failures


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, FirehoseError | _EntriesFailed) and exc.retriable


def _signal(exc: FirehoseError) -> Signal:
    """What a failed call says about capacity: throttling, 5xx and timeouts mean "slow down"."""
    if isinstance(exc, ThrottledError | ServerError | RequestTimeoutError):
        return Signal.CONGESTED
    return Signal.NEUTRAL


def _outcome(exc: FirehoseError) -> str:
    # A retriable error's reason names a transient outcome; every other answer is the client's.
    return exc.reason if exc.retriable else "client_error"


class Sender:
    """Sends ready batches; `on_fatal` is told when the target is unusable (e.g. not found)."""

    def __init__(
        self,
        transport: BatchTransport,
        accumulator: Accumulator,
        ledger: Ledger,
        *,
        policy: RetryPolicy,
        max_inflight: int,
        limiter: RateLimiter,
        on_fatal: Callable[[FirehoseError], None],
        on_crash: Callable[[BaseException], None],
        log_requests: bool = False,
        on_request: RequestObserver | None = None,
    ) -> None:
        self._transport = transport
        self._accumulator = accumulator
        self._ledger = ledger
        self._counters = ledger.counters
        self._policy = policy
        # Adaptive: AIMD between 1 and max_inflight, told the outcome of every attempt.
        self._slots = ConcurrencyLimit(max_inflight)
        self._counters.inflight_limit = self._slots.limit
        self._packer = accumulator.packer
        self._limiter = limiter
        self._on_fatal = on_fatal
        self._on_crash = on_crash
        self._log_requests = log_requests
        self._on_request = on_request
        self._tasks: set[asyncio.Task[None]] = set()
        self.cancel_reason = "cancelled"

    async def run(self) -> None:
        """Dispatch until the accumulator is closed and empty, then wait for the requests in
        flight. Cancelling it stops dispatching; in-flight requests are not touched."""
        while True:
            await self._slots.acquire()
            batch = await self._accumulator.next_batch()
            if batch is None:
                self._slots.release()
                break
            await self._limiter.acquire(len(batch.records), batch.nbytes)
            task = asyncio.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel_inflight(self, reason: str) -> set[asyncio.Task[None]]:
        """Cancel every request in flight; their records are failed with `reason`."""
        self.cancel_reason = reason
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        return tasks

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._on_crash(exc)

    async def _send(self, batch: Batch) -> None:
        try:
            await self._deliver(batch)
        except asyncio.CancelledError:
            # maybe_stored is True while a request is out, or after an ambiguous attempt.
            where = "in flight" if batch.maybe_stored else "before it was sent or while backing off"
            maybe = "; the records may have been stored" if batch.maybe_stored else ""
            self._ledger.fail_pending(batch, self.cancel_reason, f"cancelled {where}{maybe}")
            raise
        except BaseException as exc:
            self._ledger.fail_pending(batch, "internal_error", repr(exc))
            raise
        finally:
            self._slots.release()

    async def _deliver(self, batch: Batch) -> None:
        started = time.monotonic()
        try:
            try:
                batch.attempts += 1
                await self._attempt(batch)
                return
            except (FirehoseError, _EntriesFailed) as exc:
                if not exc.retriable:
                    raise
                resend = self._resend(batch, exc, started)
            await resend  # outside the handler: its exception is not the context of later ones
        except _EntriesFailed as exc:
            given_up = [(i, err.reason, self._gave_up(batch, err)) for i, err in exc.failures]
            self._ledger.fail_each(batch, given_up)
        except FirehoseError as exc:
            self._ledger.fail_pending(batch, exc.reason, self._gave_up(batch, exc))
            if exc.fatal:
                self._on_fatal(exc)

    async def _resend(
        self, batch: Batch, first: FirehoseError | _EntriesFailed, started: float
    ) -> None:
        """Resend after the retriable failure `first` of the attempt begun at `started`, for as
        long as the policy allows; raises the last failure once it says stop."""
        counters = self._counters
        ambiguous = isinstance(first, FirehoseError) and first.ambiguous
        replay: BaseException | None = first
        async for attempt in self._policy.retrying(started):
            with attempt:
                if replay is not None:  # the first attempt's outcome, as if it ran in here
                    failed, replay = replay, None
                    raise failed
                resent = len(batch.pending_indices())
                counters.records_retried += resent
                if ambiguous:
                    counters.duplicates_possible += resent
                ambiguous = False
                batch.attempts += 1
                try:
                    await self._attempt(batch)
                except FirehoseError as exc:
                    ambiguous = exc.ambiguous
                    raise

    async def _attempt(self, batch: Batch) -> None:
        """One PutRecordBatch for the batch's pending records; settles what it can."""
        counters = self._counters
        records = batch.pending_records()
        # Raw bytes of the events sent: the batch's own count when all of them go (no pass).
        nbytes = batch.nbytes if batch.pending is None else sum(map(len, records))
        sizes: list[int] | None  # of the Firehose records: what is sent and billed
        if self._packer is None:
            wire, starts, sizes = records, None, None  # the records themselves
            counters.bytes_sent += nbytes
        else:
            wire, starts = self._packer.pack(records)
            sizes = list(map(len, wire))
            counters.bytes_sent += sum(sizes)
        counters.inflight_requests += 1
        epoch = self._slots.epoch()
        sticky = batch.maybe_stored

        def sending() -> None:
            # Unknown from the first byte written until answered: a cancel now must say so
            # (before it, e.g. while connecting, nothing can have been stored).
            batch.maybe_stored = True

        started = time.monotonic()
        try:
            request = self._transport.put_record_batch(wire, sending)
            del wire  # with packing the body holds the packed bytes now: don't keep them twice
            result = await request
        except FirehoseError as exc:
            # Sticky: once an attempt may have stored the records, every later failure says so.
            batch.maybe_stored = sticky or exc.ambiguous
            batch.note_error(str(exc))
            outcome = _outcome(exc)
            now = self._finished(started, outcome, len(records))
            self._adapt(_signal(exc), now - started, epoch)
            throttled = len(records) if isinstance(exc, ThrottledError) else 0
            counters.throttled += throttled
            if self._on_request is not None:
                self._observe(started, now, outcome, len(records), nbytes, 0, throttled)
            raise
        finally:
            counters.inflight_requests -= 1
            if counters.inflight_requests == 0:
                self._accumulator.poke()  # a partial batch may ship now (Nagle's rule)
        batch.maybe_stored = sticky
        self._count_billed(sizes, records, result)
        if starts is not None:
            result = PackedResult(result, starts)
        outcome = "ok" if result.failed_put_count == 0 else "partial"
        now = self._finished(started, outcome, len(records))
        failed = self._ledger.deliver(batch, result)
        throttled = sum(isinstance(err, ThrottledError) for _, err in failed) if failed else 0
        self._adapt(Signal.CONGESTED if throttled else Signal.OK, now - started, epoch)
        if self._on_request is not None:
            delivered = len(records) - len(failed)
            self._observe(started, now, outcome, len(records), nbytes, delivered, throttled)
        if not failed:
            return
        batch.note_error(str(failed[0][1]))
        counters.throttled += throttled
        final = [(i, err.reason, err.message) for i, err in failed if not err.retriable]
        self._ledger.fail_each(batch, final)
        retriable = [(i, err) for i, err in failed if err.retriable]
        if retriable:
            raise _EntriesFailed(retriable)

    def _adapt(self, signal: Signal, latency_s: float, epoch: int) -> None:
        self._slots.observe(signal, latency_s, epoch)
        self._counters.inflight_limit = self._slots.limit

    def _count_billed(
        self, sizes: list[int] | None, records: list[bytes], result: PutBatchResult
    ) -> None:
        """Firehose records accepted by one 200 answer, and what they are billed: `sizes` of
        the Firehose records sent, None when those were the `records` themselves."""
        counters = self._counters
        if sizes is None:
            # One event per record, each one billing unit unless larger (max() runs in C).
            if not result.failed_put_count and max(map(len, records)) <= BILLING_INCREMENT_BYTES:
                counters.firehose_records_delivered += len(records)
                counters.bytes_billed += len(records) * BILLING_INCREMENT_BYTES
                return
            sizes = list(map(len, records))
        if result.failed_put_count:
            failed = {f.index for f in result.failures()}
            sizes = [size for i, size in enumerate(sizes) if i not in failed]
        counters.firehose_records_delivered += len(sizes)
        counters.bytes_billed += billed_total(sizes)

    def _finished(self, started: float, outcome: str, records: int) -> float:
        """Count a finished attempt; returns now (``time.monotonic()``)."""
        now = time.monotonic()
        counters = self._counters
        counters.latency.observe(now - started)
        counters.count_request(outcome)
        counters.last_progress_monotonic = now
        if self._log_requests:
            _log.debug("request_finished", outcome=outcome, records=records, seconds=now - started)
        return now

    def _observe(
        self,
        started: float,
        now: float,
        outcome: str,
        records: int,
        nbytes: int,
        delivered: int,
        throttled: int,
    ) -> None:
        """Tell the per-request observer (one call per request, never per record)."""
        assert self._on_request is not None
        observation = RequestObservation(
            started, now - started, outcome, records, nbytes, delivered, throttled
        )
        self._on_request(observation)

    @staticmethod
    def _gave_up(batch: Batch, exc: FirehoseError) -> str:
        # An ambiguous outcome of ANY attempt means "failed" may be wrong: say so before a replay.
        maybe = "; the records may have been stored (ambiguous outcome)" * batch.maybe_stored
        if not exc.retriable:
            return f"{exc}{maybe}"
        return f"gave up after {batch.attempts} attempt(s): {exc}{maybe}"
