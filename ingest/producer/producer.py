"""`Producer`: the embeddable facade (start, put, flush, check_target, stats, close).

    async with Producer(stream="aws-ml-cert", region="us-east-1") as producer:
        receipt = await producer.put(b'{"k": 1}\\n')   # waits while the queue is full
        receipts = await producer.put_many(events)      # the high-rate path
    # leaving the block drains: stop intake, ship partial batches, await in-flight requests

The producer holds at most `max_queue_records` records and `max_queue_bytes` raw bytes
(retries included). Every record put ends delivered or failed (failed ones go to `on_failure`),
so ``put == delivered + failed + pending`` at all times and pending is 0 after `close`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Self

import aioboto3

from ingest.errors import (
    FirehoseError,
    ProducerClosedError,
    ProducerCrashedError,
    ProducerError,
    QueueFullError,
    SpoolError,
)
from ingest.firehose.client import FirehoseClient, StreamDescription
from ingest.producer.accumulator import Accumulator
from ingest.producer.admission import (
    check_many,
    event_sizes,
    not_newline_terminated,
    record_size,
    record_sizes,
)
from ingest.producer.batch import Receipt, Receipts
from ingest.producer.config import (
    DEFAULT_REGION,
    DEFAULT_STREAM,
    ProducerConfig,
    check_failure_handler,
    check_timeout,
)
from ingest.producer.durable import DurableBuffer
from ingest.producer.ledger import AsyncFailureHandler, FailureHandler, Ledger
from ingest.producer.ratelimit import RateLimiter
from ingest.producer.sender import RetryPolicy, Sender
from ingest.producer.stats import Counters, ProducerStats, RequestObserver
from ingest.spool.log import Recovery

__all__ = ["Producer"]

_new_receipt = object.__new__


class Producer:
    """Batches records into PutRecordBatch calls to one Firehose stream; see the module doc.

    `stream` must exist in `region`; `endpoint_url` (None: AWS) points at an emulator or
    moto. Keyword options are the fields of `ProducerConfig`, validated at once (an unknown or
    invalid one raises `ConfigError` naming it, its value and what is expected):

    - ``max_queue_records`` (100,000), ``max_queue_bytes`` (64 MiB): the one bound on what is
      held, queued + in flight + awaiting resend; `put` waits while it is reached.
    - ``linger_s`` (0.02): how long a partial batch waits for more records; after it, the
      batch ships once no request is on the wire (until then it keeps filling).
    - ``max_inflight`` (8): the most concurrent PutRecordBatch requests; the limit in force
      adapts below it (halves on throttling/5xx/timeouts, grows back while answers are clean:
      ``stats().inflight_limit``).
    - ``record_deadline_s`` (120): transient errors are retried (with backoff) until this long
      after a record's first send; ``max_attempts`` (None = no cap) optionally caps the sends.
    - ``request_timeout_s`` (10), ``connect_timeout_s`` (5): per PutRecordBatch call.
    - ``backoff_base_s`` (0.1), ``backoff_cap_s`` (5): exponential backoff, full jitter.
    - ``close_timeout_s`` (30): default drain deadline of `close` and ``async with``.
    - ``records_per_s``, ``bytes_per_s`` (None): optional client-side pacing.
    - ``pack_bytes`` (None), ``pack_compression`` (None or ``"gzip"``): pack newline-terminated
      events into Firehose records of up to that many bytes (5,120: one billing unit), each
      one gzip member with ``"gzip"``; accounting and receipts stay per event.

    `on_failure(failed: Sequence[FailedRecord])` is called (synchronously, on the event loop)
    with the records whose fate became "failed" (default: `log_failures`, one log line per
    reason); its exceptions are logged, never raised. `session` is an optional aioboto3
    session (credentials, profile). `on_request(observation: RequestObservation)` (optional)
    is called once per finished PutRecordBatch attempt (duration, outcome, records, bytes,
    delivered, throttled), synchronously on the event loop; load tests build their latency
    percentiles from it. Use `Producer.from_config` with a `ProducerConfig` for a
    fully typed construction. `verify`, `proxies` and `proxies_config` are botocore's (the
    ``verify`` argument and the ``Config`` fields of those names); by default both the Describe
    call and PutRecordBatch follow ``AWS_CA_BUNDLE``/``ca_bundle`` and
    ``HTTPS_PROXY``/``NO_PROXY`` as botocore does (see `ingest.firehose.transport`).
    """

    def __init__(
        self,
        stream: str = DEFAULT_STREAM,
        region: str = DEFAULT_REGION,
        endpoint_url: str | None = None,
        *,
        on_failure: FailureHandler | AsyncFailureHandler | None = None,
        session: aioboto3.Session | None = None,
        on_request: RequestObserver | None = None,
        verify: bool | str | None = None,
        proxies: dict[str, str] | None = None,
        proxies_config: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.config = ProducerConfig.from_options(
            {"stream": stream, "region": region, "endpoint_url": endpoint_url, **options}
        )
        check_failure_handler(on_failure)
        config = self.config
        self._client = FirehoseClient(
            config.stream,
            region=config.region,
            endpoint_url=config.endpoint_url,
            request_timeout_s=config.request_timeout_s,
            connect_timeout_s=config.connect_timeout_s,
            max_connections=config.max_inflight,
            session=session,
            verify=verify,
            proxies=proxies,
            proxies_config=proxies_config,
        )
        self._counters = Counters(time.monotonic())
        self._ledger = Ledger(self._counters, self._release, on_failure)
        self._acc = Accumulator(
            self._ledger,
            max_records=config.max_queue_records,
            max_bytes=config.max_queue_bytes,
            linger_s=config.linger_s,
            packer=config.packer(),
            largest=config.largest_record_bytes,
        )
        self._sender = Sender(
            self._client,
            self._acc,
            self._ledger,
            policy=RetryPolicy(
                max_attempts=config.max_attempts,
                deadline_s=config.record_deadline_s,
                backoff_base_s=config.backoff_base_s,
                backoff_cap_s=config.backoff_cap_s,
            ),
            max_inflight=config.max_inflight,
            limiter=RateLimiter(config.records_per_s, config.bytes_per_s),
            on_fatal=self._fatal,
            log_requests=config.log_requests,
            on_crash=self._crash,
            on_request=on_request,
        )
        self._packing = config.pack_bytes is not None  # events must then end with a newline
        self._dispatcher: asyncio.Task[None] | None = None
        self._problem: BaseException | None = None  # fatal FirehoseError or crash
        self._closing = False
        self._closed = asyncio.Event()
        self._ledger.on_handler_error = self._handler_failed
        self._durable: DurableBuffer | None = None
        if config.durable_dir is not None:
            self._use_durable_log(config)

    def _use_durable_log(self, config: ProducerConfig) -> None:
        """`durable_dir`: puts go through the write-ahead log. Chosen once, here, so the
        memory mode's put path stays exactly what it is."""
        assert config.durable_dir is not None
        self._durable = DurableBuffer(
            config.durable_dir,
            ledger=self._ledger,
            accumulator=self._acc,
            counters=self._counters,
            sync="interval" if config.durable_sync == "interval" else "group",
            sync_interval_s=config.durable_sync_interval_s,
            full_timeout_s=config.durable_full_timeout_s,
        )
        self.put = self._put_durable  # type: ignore[method-assign]
        self.put_many = self._put_many_durable  # type: ignore[method-assign]
        self.put_nowait = self._put_nowait_durable  # type: ignore[method-assign]

    @classmethod
    def from_config(
        cls,
        config: ProducerConfig,
        *,
        on_failure: FailureHandler | AsyncFailureHandler | None = None,
        session: aioboto3.Session | None = None,
    ) -> Producer:
        options = {name: getattr(config, name) for name in config.__dataclass_fields__}
        return cls(on_failure=on_failure, session=session, **options)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the Firehose client and start the sender. Raises `CredentialsError` when no
        credentials exist, `ProducerError` if already started (`ProducerClosedError` once
        closed: a producer runs once; make a new one)."""
        if self._closing:
            raise ProducerClosedError("producer is closed and cannot restart; make a new Producer")
        if self._dispatcher is not None:
            raise ProducerError("producer already started")
        if self._durable is not None:  # first: a locked or unreadable log starts nothing
            try:
                await self._durable.open()
            except BaseException:
                await self._durable.close()  # stops its writer thread; holds no lock
                raise
        try:
            await self._client.start()
        except BaseException:
            if self._durable is not None:
                await self._durable.close()  # release the log's lock
            raise
        self._dispatcher = asyncio.create_task(self._sender.run(), name="ingest-producer-sender")
        self._dispatcher.add_done_callback(self._dispatcher_done)
        self._update_lanes()
        if self._durable is not None:
            self._durable.start_resending(self._check_open)

    # -- intake -------------------------------------------------------------------------------

    async def put(self, record: bytes, timeout: float | None = None) -> Receipt:
        """Queue one record; waits (at most `timeout` seconds, None = forever) while the
        queue is full. Raises `PutTimeoutError`, `RecordTooLargeError`, `TypeError`,
        `ProducerClosedError`, `ProducerCrashedError` or the fatal `FirehoseError` that stopped
        the producer. Cancelling the wait queues nothing."""
        # The per-event path: the accumulator's lane (see its module doc). An open lane means
        # the producer runs and accepts plain records, and `lane_room` already holds the
        # record-size limit and the bounds, so a fitting record needs no other check.
        acc = self._acc
        if type(record) is bytes and timeout is None:
            room = acc.lane_room - len(record)
            if room >= 0:
                records = acc.lane_records
                records.append(record)
                acc.lane_room = room
                index = len(records) - 1
                # Receipt(batch, index) without running a Python __init__ (about 40 ns less).
                receipt = _new_receipt(Receipt)
                receipt._batch = acc.lane_batch  # type: ignore[assignment]
                receipt._index = index
                if index + 1 == acc.lane_end:
                    acc.lane_filled()
                return receipt
        return await self._put(record, timeout)

    async def _put(self, record: bytes, timeout: float | None) -> Receipt:
        """`put` off the lane: every check, a wait for room if needed; reopens the lane."""
        if timeout is not None:
            check_timeout("timeout", timeout)
        size = self._admit(record)
        acc = self._acc
        if not acc.has_room(size):
            await acc.wait_for_room(size, timeout, self._check_open, accepted=0)
        return acc.append(record, size)

    def _update_lanes(self) -> None:
        """Let plain puts use the accumulator's lane only while nothing else must be checked:
        started, not closing, no fatal problem, no packing, no durable log."""
        allowed = (
            self._dispatcher is not None
            and not self._closing
            and self._problem is None
            and not self._packing
            and self._durable is None
        )
        self._acc.lanes_allowed = allowed
        if not allowed:
            self._acc.close_lane()

    def put_nowait(self, record: bytes) -> Receipt:
        """Queue one record or raise `QueueFullError` at once (plus the errors of `put`)."""
        size = self._admit(record)
        if not self._acc.has_room(size):
            raise QueueFullError(f"queue full: {self._acc.describe_fill()}")
        return self._acc.append(record, size)

    async def put_many(self, records: Iterable[bytes], timeout: float | None = None) -> Receipts:
        """Queue many records in order (the fast path: no per-record receipt object).

        All records are checked before any is queued. Waits for room like `put`; if the wait
        times out, `PutTimeoutError.accepted` says how many of the first records were queued.
        Cancelling the wait keeps the records already queued (they are counted in
        ``stats().records_put`` and settle like any other) and queues no more.
        """
        check_timeout("timeout", timeout)
        if not isinstance(records, list):
            check_many(records)
            records = list(records)
        sizes = self._admit_many(records)
        receipts = Receipts()
        taken = self._acc.append_many(records, sizes, 0, receipts)
        while taken < len(records):
            await self._acc.wait_for_room(sizes[taken], timeout, self._check_open, accepted=taken)
            taken = self._acc.append_many(records, sizes, taken, receipts)
        return receipts

    async def _put_durable(self, record: bytes, timeout: float | None = None) -> Receipt:
        """`put` with `durable_dir`: returns once the record is in the log (and queued)."""
        receipts = await self._put_many_durable([record], timeout)
        return next(iter(receipts))

    async def _put_many_durable(
        self, records: Iterable[bytes], timeout: float | None = None
    ) -> Receipts:
        """`put_many` with `durable_dir`: returns once every record is in the log (and
        queued). Also raises `SpoolFullError` (the log's disk stayed full; `records_put` says
        how many were taken) and `SpoolIOError`."""
        check_timeout("timeout", timeout)
        if not isinstance(records, list):
            check_many(records)
            records = list(records)
        sizes = self._admit_many(records)
        assert self._durable is not None
        return await self._durable.put_many(records, sizes, timeout, self._check_open)

    def _put_nowait_durable(self, record: bytes) -> Receipt:
        raise ProducerError(
            "put_nowait cannot wait for the durable log (durable_dir is set); use await put()"
        )

    def _admit(self, record: object) -> int:
        self._check_open()
        size = record_size(record, self._acc.largest)
        if self._packing and not record.endswith(b"\n"):  # type: ignore[attr-defined]
            raise not_newline_terminated("record", record)  # type: ignore[arg-type]
        return size

    def _admit_many(self, records: list[bytes]) -> list[int]:
        self._check_open()
        if self._packing:
            return event_sizes(records, self._acc.largest)
        return record_sizes(records, self._acc.largest)

    def _check_open(self) -> None:
        if self._problem is not None:
            if isinstance(self._problem, FirehoseError | SpoolError):
                raise self._problem.with_traceback(None)
            raise ProducerCrashedError(
                f"producer background task crashed: {self._problem!r}"
            ) from self._problem
        if self._closing:
            raise ProducerClosedError("producer is closed; no more records are accepted")
        if self._dispatcher is None:
            raise ProducerError("producer not started: use `async with Producer(...)`")

    def _release(self, records: int, nbytes: int) -> None:
        self._acc.release(records, nbytes)

    # -- outcome, control plane and stats ------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> None:
        """Send partial batches now and wait until every record put so far is settled
        (delivered or failed). Raises `TimeoutError` after `timeout` seconds; cancelling or
        timing out the wait changes nothing about the records."""
        check_timeout("timeout", timeout)
        self._acc.seal()
        async with asyncio.timeout(timeout):
            for batch in list(self._ledger.unsettled):
                await batch.wait()

    async def check_target(self) -> StreamDescription:
        """DescribeDeliveryStream (control plane, ~5 calls/s per account: do not poll fast).
        Raises `StreamNotFoundError`, `AccessDeniedError`, `CredentialsError`,
        `InvalidArgumentError` or a transport `FirehoseError` (one attempt: botocore's own
        retries are off), and `ProducerError` before `start` or after `close`."""
        if self._closing:
            raise ProducerClosedError("producer is closed; check_target needs an open producer")
        if self._dispatcher is None:
            raise ProducerError("producer not started: use `async with Producer(...)`")
        return await self._client.check_target()

    @property
    def durable_recovery(self) -> Recovery | None:
        """With `durable_dir`, once started: what the log held at start (its `last_record` is
        the newest record accepted before a crash). None without `durable_dir`."""
        return None if self._durable is None else self._durable.recovery

    def stats(self) -> ProducerStats:
        """A consistent snapshot of counters and gauges (no I/O, no await)."""
        self._acc.sync_lane()
        return ProducerStats.capture(
            self._counters,
            queue_records=self._acc.queue_records,
            queue_bytes=self._acc.queue_bytes,
            now=time.monotonic(),
            closing=self._closing,
            closed=self._closed.is_set(),
        )

    # -- shutdown and failure ------------------------------------------------------------------

    async def close(self, timeout: float | None = None) -> None:
        """Drain and stop: refuse new records, ship partial batches now, wait for in-flight
        requests and resends up to `timeout` seconds (default `close_timeout_s`), then cancel
        what is left and fail it to `on_failure` with reason ``close_timeout``. Idempotent. If
        close itself is cancelled, the remaining records are still failed before it returns."""
        check_timeout("timeout", timeout)
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        self._update_lanes()
        self._acc.close()
        timeout = self.config.close_timeout_s if timeout is None else timeout
        message = f"not delivered within the close deadline ({timeout} s)"
        try:
            if self._dispatcher is not None:
                await asyncio.wait({self._dispatcher}, timeout=timeout)
        except asyncio.CancelledError:
            message = "not delivered: close() was cancelled before the drain ended"
            raise
        finally:
            await self._stop_everything("close_timeout", message)
            if self._durable is not None:
                await self._durable.close()
            await self._client.close()
            self._closed.set()

    async def _stop_everything(self, reason: str, message: str) -> None:
        tasks = self._sender.cancel_inflight(reason)
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
            tasks.add(self._dispatcher)
        if tasks:
            await asyncio.wait(tasks)
        self._acc.take_unsent()
        self._ledger.fail_unsettled(reason, message)
        await self._ledger.handlers_done()

    def _handler_failed(self, exc: Exception) -> None:
        """An async failure handler refused records (e.g. the dead-letter spool is full): put
        raises its error from now on, so new records are not accepted only to fail unstored."""
        if isinstance(exc, SpoolError) and self._problem is None:
            self._problem = exc
            self._update_lanes()
            self._acc.wake_all()

    def _fatal(self, error: FirehoseError) -> None:
        """The target is unusable: fail what is not in flight, refuse further records."""
        if self._problem is None:
            self._problem = error
            self._update_lanes()
        self._ledger.fail_batches(self._acc.take_unsent(), error.reason, str(error))
        self._acc.wake_all()

    def _crash(self, exc: BaseException) -> None:
        if self._problem is None or isinstance(self._problem, FirehoseError):
            self._problem = exc
            self._update_lanes()
        # Cancelled requests cannot deliver; settling their batches now is therefore final.
        self._sender.cancel_inflight("crashed")
        self._acc.take_unsent()
        self._ledger.fail_unsettled("crashed", f"producer crashed: {exc!r}")
        self._acc.wake_all()

    def _dispatcher_done(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        if task.cancelled():
            self._crash(asyncio.CancelledError("the producer's sender task was cancelled"))
        elif (exc := task.exception()) is not None:
            self._crash(exc)
