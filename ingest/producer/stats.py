"""The producer's counters, its snapshot type `ProducerStats`, and `FailedRecord`.

Counters are plain integers mutated by the accumulator, sender and ledger on the event-loop
thread; `ProducerStats` is a frozen copy taken at one instant, cheap enough to build on every
Prometheus scrape.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from types import MappingProxyType
from typing import Final, NamedTuple

__all__ = [
    "DEFAULT_LATENCY_BOUNDS_S",
    "Counters",
    "FailedRecord",
    "HistogramSnapshot",
    "LatencyHistogram",
    "ProducerStats",
    "RequestObservation",
    "RequestObserver",
]

DEFAULT_LATENCY_BOUNDS_S: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


class FailedRecord(NamedTuple):
    """A record whose fate is final and not delivered, as handed to the failure handler.

    `reason` is a stable slug (e.g. ``throttled``, ``stream_not_found``, ``close_timeout``);
    `message` is for humans; `attempts` counts the PutRecordBatch calls that carried it;
    `maybe_stored` is True when any of those calls had an ambiguous outcome (a timeout or reset
    after sending), so Firehose may hold the record already: resending it may duplicate it.
    `first_error` and `first_failed_at` (``time.time()``) are the first error any attempt of its
    request met and when; None when its first failure was also its last (e.g. a close timeout).
    """

    data: bytes
    reason: str
    message: str
    attempts: int
    maybe_stored: bool = False
    first_error: str | None = None
    first_failed_at: float | None = None


class RequestObservation(NamedTuple):
    """One finished PutRecordBatch attempt, as told to an ``on_request`` observer.

    `started` is ``time.monotonic()`` when the call was sent and `seconds` its duration;
    `outcome` is the label of ``requests`` in `ProducerStats` (``ok``, ``partial``,
    ``throttled``, ``client_error``, ...); `records` and `nbytes` (raw bytes) are what the call
    carried; `delivered` of them were stored; `throttled` were answered throttling (all of
    them when the whole call was throttled).
    """

    started: float
    seconds: float
    outcome: str
    records: int
    nbytes: int
    delivered: int
    throttled: int


#: Called once per finished request (never per record), synchronously on the event loop:
#: keep it quick, and it must not raise.
RequestObserver = Callable[[RequestObservation], None]


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Request latency at one instant.

    `bounds` are the finite bucket upper bounds in seconds; `counts` are CUMULATIVE
    (Prometheus style) with one extra final entry for +Inf, so ``counts[-1] == count``.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum_s: float
    count: int


class LatencyHistogram:
    """A fixed-bucket histogram of durations in seconds (one `observe` per request)."""

    __slots__ = ("_bounds", "_buckets", "_count", "_sum")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_LATENCY_BOUNDS_S) -> None:
        self._bounds = bounds
        self._buckets = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._count = 0

    def observe(self, seconds: float) -> None:
        self._buckets[bisect.bisect_left(self._bounds, seconds)] += 1
        self._sum += seconds
        self._count += 1

    def snapshot(self) -> HistogramSnapshot:
        cumulative = tuple(accumulate(self._buckets))
        return HistogramSnapshot(self._bounds, cumulative, self._sum, self._count)


class Counters:
    """Mutable counters shared by the producer's parts (event-loop thread only)."""

    __slots__ = (
        "bytes_billed",
        "bytes_delivered",
        "bytes_sent",
        "duplicates_possible",
        "firehose_records_delivered",
        "inflight_limit",
        "inflight_requests",
        "last_progress_monotonic",
        "last_success_monotonic",
        "latency",
        "records_delivered",
        "records_failed",
        "records_put",
        "records_recovered",
        "records_retried",
        "requests",
        "throttled",
    )

    def __init__(self, now: float) -> None:
        self.records_put = 0
        self.records_delivered = 0
        self.records_failed: dict[str, int] = {}
        self.records_retried = 0
        self.requests: dict[str, int] = {}
        self.throttled = 0
        self.bytes_delivered = 0
        self.inflight_requests = 0
        self.inflight_limit = 0
        self.bytes_sent = 0
        self.bytes_billed = 0
        self.firehose_records_delivered = 0
        self.duplicates_possible = 0
        self.records_recovered = 0
        self.latency = LatencyHistogram()
        self.last_progress_monotonic = now
        self.last_success_monotonic: float | None = None

    def count_request(self, outcome: str) -> None:
        self.requests[outcome] = self.requests.get(outcome, 0) + 1

    def count_failed(self, reason: str, n: int) -> None:
        self.records_failed[reason] = self.records_failed.get(reason, 0) + n


@dataclass(frozen=True, slots=True)
class ProducerStats:
    """A snapshot of the producer's ledger and gauges.

    Invariant: ``records_put == records_delivered + sum(records_failed.values()) +
    records_pending`` (pending is 0 once closed). `throttled` counts RECORDS answered with
    throttling (whole throttled calls count all their records). `duplicates_possible` counts
    records resent after an ambiguous outcome (500/502/504, connection lost, timeout).
    `last_progress_monotonic` is ``time.monotonic()`` of the last completed request, or now if
    the producer holds nothing (idle is progress).

    Cost: `bytes_sent` counts the Firehose records' bytes of every attempt (before base64; packed
    and compressed records at their sent size), `bytes_billed` the accepted Firehose records
    rounded up to 5 KB (5,120 bytes) each, as Firehose bills ingestion, and
    `firehose_records_delivered` those records (with packing, fewer than the events:
    `events_per_record`). `inflight_limit` is the adaptive concurrency limit now.
    """

    records_put: int
    records_delivered: int
    records_failed: Mapping[str, int]
    records_retried: int
    requests: Mapping[str, int]
    throttled: int
    bytes_delivered: int
    queue_records: int
    queue_bytes: int
    inflight_requests: int
    duplicates_possible: int
    request_duration: HistogramSnapshot
    last_progress_monotonic: float
    last_success_monotonic: float | None
    closing: bool
    closed: bool
    inflight_limit: int = 0
    bytes_sent: int = 0
    bytes_billed: int = 0
    firehose_records_delivered: int = 0
    # With durable_dir: records found in the log at start and resent (counted in records_put
    # and in duplicates_possible: some may have been delivered before the crash).
    records_recovered: int = 0

    @property
    def events_per_record(self) -> float:
        """Events delivered per Firehose record delivered (1.0 without packing; 0.0 before
        the first delivery)."""
        if not self.firehose_records_delivered:
            return 0.0
        return self.records_delivered / self.firehose_records_delivered

    @property
    def records_failed_total(self) -> int:
        return sum(self.records_failed.values())

    @property
    def records_pending(self) -> int:
        return self.records_put - self.records_delivered - self.records_failed_total

    @classmethod
    def capture(
        cls,
        counters: Counters,
        *,
        queue_records: int,
        queue_bytes: int,
        now: float,
        closing: bool,
        closed: bool,
    ) -> ProducerStats:
        idle = queue_records == 0 and counters.inflight_requests == 0
        return cls(
            records_put=counters.records_put,
            records_delivered=counters.records_delivered,
            records_failed=MappingProxyType(dict(counters.records_failed)),
            records_retried=counters.records_retried,
            requests=MappingProxyType(dict(counters.requests)),
            throttled=counters.throttled,
            bytes_delivered=counters.bytes_delivered,
            queue_records=queue_records,
            queue_bytes=queue_bytes,
            inflight_requests=counters.inflight_requests,
            duplicates_possible=counters.duplicates_possible,
            request_duration=counters.latency.snapshot(),
            last_progress_monotonic=now if idle else counters.last_progress_monotonic,
            last_success_monotonic=counters.last_success_monotonic,
            closing=closing,
            closed=closed,
            inflight_limit=counters.inflight_limit,
            bytes_sent=counters.bytes_sent,
            bytes_billed=counters.bytes_billed,
            firehose_records_delivered=counters.firehose_records_delivered,
            records_recovered=counters.records_recovered,
        )
