"""What a load test measures, cut into 1-second slices.

Three sources, none of them per event: the producer's ledger (`stats()`: delivered, failed by
reason, retried, throttled records, bytes, queue depth), one observation per finished
PutRecordBatch (`on_request`: latency, outcome, records and bytes sent, records throttled), and
one completion per chunk of events put together (put-to-acknowledged latency: the chunk's
`Receipts` settle when Firehose has answered for every record in it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.loadtest.histogram import LogHistogram
from ingest.loadtest.progress import Sample
from ingest.producer import ProducerStats, Receipts, RequestObservation


@dataclass
class Window:
    """Counts of one interval (a slice), or of the whole test."""

    requests: int = 0
    requests_by_outcome: dict[str, int] = field(default_factory=dict)
    throttled_requests: int = 0  # whole calls answered throttling (503)
    records_in_throttled_requests: int = 0
    records_sent: int = 0  # records carried by requests, resends included
    bytes_sent: int = 0
    request_latency: LogHistogram = field(default_factory=LogHistogram)
    ack_latency: LogHistogram = field(default_factory=LogHistogram)

    def observe(self, obs: RequestObservation) -> None:
        self.requests += 1
        self.requests_by_outcome[obs.outcome] = self.requests_by_outcome.get(obs.outcome, 0) + 1
        if obs.outcome == "throttled":
            self.throttled_requests += 1
            self.records_in_throttled_requests += obs.records
        self.records_sent += obs.records
        self.bytes_sent += obs.nbytes
        self.request_latency.add(obs.seconds)


@dataclass(frozen=True, kw_only=True)
class Slice:
    """One interval of the test (normally 1 s), with everything the report shows per second."""

    start_s: float  # since the start of generation
    duration_s: float
    phase: str
    target_rate: float  # events/s asked for at the end of the slice
    target: float  # events due in the slice
    generated: int
    delivered: int
    failed_by_reason: dict[str, int]
    retried: int
    throttled_records: int  # records answered throttling (in a 200, or in a throttled call)
    bytes_delivered: int
    bytes_sent: int  # on the wire, resends included (after packing/compression, if any)
    bytes_billed: int  # every Firehose record accepted, rounded up to 5 KB
    firehose_records: int  # Firehose records accepted (fewer than events when packing)
    queue_records: int
    inflight_requests: int
    window: Window

    @property
    def failed(self) -> int:
        return sum(self.failed_by_reason.values())


class Recorder:
    """Collects observations; the generator keeps `generated`, `target_due` and `target_rate`
    current. `cut()` closes a slice. Everything runs on the event-loop thread."""

    def __init__(self, stats: Callable[[], ProducerStats], clock: Callable[[], float]) -> None:
        self._stats = stats
        self._clock = clock
        self.started = clock()
        self.generated = 0
        self.target_due = 0.0
        self.target_rate = 0.0
        self.phase = "generation"
        self.total = Window()
        self.slices: list[Slice] = []
        self._window = Window()
        self._last_cut = self.started
        self._last_due = 0.0
        self._last_generated = 0
        self._last_stats = stats()
        self._acks: set[asyncio.Task[object]] = set()
        # Latency since the last progress line, and since the start of a --find-max step.
        self.progress_latency = LogHistogram()
        self.step_latency = LogHistogram()
        self.remaining: Callable[[], float | None] = lambda: None
        # Every request while --find-max measures a ceiling; None otherwise.
        self.sent: list[RequestObservation] | None = None

    def restart(self) -> None:
        """Begin the clock now (generation starts): start-up is not part of the test."""
        self.started = self._last_cut = self._clock()
        self._last_stats = self._stats()
        self._window = Window()
        self.total = Window()

    # -- observations (hot-ish paths: once per request, once per chunk) ------------------------

    def observe(self, obs: RequestObservation) -> None:
        """The producer's `on_request` hook."""
        self._window.observe(obs)
        self.total.observe(obs)
        self.progress_latency.add(obs.seconds)
        self.step_latency.add(obs.seconds)
        if self.sent is not None:
            self.sent.append(obs)

    def track(self, put_at: float, receipts: Receipts, n: int) -> None:
        """Measure put-to-acknowledged latency of a chunk of `n` events put at `put_at`."""
        task: asyncio.Task[object] = asyncio.ensure_future(receipts.wait())
        self._acks.add(task)
        task.add_done_callback(lambda done: self._acked(done, put_at, n))

    def _acked(self, task: asyncio.Task[object], put_at: float, n: int) -> None:
        self._acks.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        failed = task.result()
        delivered = n - len(failed) if isinstance(failed, list) else n
        latency = self._clock() - put_at
        self._window.ack_latency.add(latency, delivered)
        self.total.ack_latency.add(latency, delivered)

    async def settle(self) -> None:
        """Wait for the acknowledgements still outstanding (after the producer closed)."""
        if self._acks:
            await asyncio.wait(set(self._acks))

    # -- slices --------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self._clock() - self.started

    def cut(self) -> Slice:
        """Close the current slice at this instant and start the next one."""
        now = self._clock()
        stats = self._stats()
        last = self._last_stats
        failed = {
            reason: n - last.records_failed.get(reason, 0)
            for reason, n in stats.records_failed.items()
            if n - last.records_failed.get(reason, 0)
        }
        piece = Slice(
            start_s=self._last_cut - self.started,
            duration_s=now - self._last_cut,
            phase=self.phase,
            target_rate=self.target_rate,
            target=self.target_due - self._last_due,
            generated=self.generated - self._last_generated,
            delivered=stats.records_delivered - last.records_delivered,
            failed_by_reason=failed,
            retried=stats.records_retried - last.records_retried,
            throttled_records=stats.throttled - last.throttled,
            bytes_delivered=stats.bytes_delivered - last.bytes_delivered,
            bytes_sent=stats.bytes_sent - last.bytes_sent,
            bytes_billed=stats.bytes_billed - last.bytes_billed,
            firehose_records=stats.firehose_records_delivered - last.firehose_records_delivered,
            queue_records=stats.queue_records,
            inflight_requests=stats.inflight_requests,
            window=self._window,
        )
        self.slices.append(piece)
        self._window = Window()
        self._last_cut = now
        self._last_due = self.target_due
        self._last_generated = self.generated
        self._last_stats = stats
        return piece

    def stats(self) -> ProducerStats:
        return self._stats()

    # -- progress (ingest.loadtest.progress.Source) --------------------------------------------

    def sample(self) -> Sample:
        now = self._clock()
        paced = self.phase != "unpaced"
        return Sample(
            at=now,
            elapsed_s=now - self.started,
            remaining_s=self.remaining(),
            target_rate=self.target_rate if paced else None,
            target_due=self.target_due if paced else None,
            generated=self.generated,
            stats=self._stats(),
            phase=self.phase,
        )

    def take_latency(self) -> LogHistogram:
        taken, self.progress_latency = self.progress_latency, LogHistogram()
        return taken


async def slice_every_second(recorder: Recorder, stop: asyncio.Event) -> None:
    """Cut a slice at every whole second since the start until `stop` is set (the caller
    cuts the last, partial one)."""
    index = 1
    while not stop.is_set():
        delay = recorder.started + index - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
        recorder.cut()
        index += 1
