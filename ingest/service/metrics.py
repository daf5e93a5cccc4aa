"""Prometheus metrics: a custom collector that reads the producer's counters at scrape time.

Nothing is counted twice: the producer keeps the ledger, this module only renames it. The registry
is private (not prometheus-client's global one), so an embedding process keeps its own metrics.
Labels carry no secrets: only version, stream, region, the target kind and the endpoint's host.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ingest.producer.stats import HistogramSnapshot, ProducerStats
from ingest.service.health import Health, RunState, StatsSource


class ProducerCollector(Collector):
    """Maps one `stats()` snapshot 1:1 onto the `ingest_*` metric families."""

    def __init__(
        self, source: StatsSource, state: RunState, health: Health, info: Mapping[str, str]
    ) -> None:
        self._source = source
        self._state = state
        self._health = health
        self._info = dict(info)

    def collect(self) -> Iterable[Metric]:
        stats = self._source.stats()
        yield from _counters(stats)
        yield from _labelled(stats)
        yield from _gauges(stats)
        yield _histogram(stats.request_duration)
        yield from self._service_metrics()

    def _service_metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "ingest_events_generated", "Events made by the run loop.", self._state.events_generated
        )
        yield GaugeMetricFamily(
            "ingest_ready", "1 when /readyz answers 200.", int(self._health.ready().ok)
        )
        yield GaugeMetricFamily("ingest_draining", "1 during the drain.", int(self._state.draining))
        info = InfoMetricFamily("ingest", "Build and target of this process.")
        info.add_metric([], self._info)
        yield info


def _counters(stats: ProducerStats) -> Iterator[Metric]:
    plain = (
        ("ingest_records_put", "Records accepted by put().", stats.records_put),
        ("ingest_records_delivered", "Records Firehose accepted.", stats.records_delivered),
        ("ingest_records_retried", "Record resends after a failure.", stats.records_retried),
        ("ingest_throttled", "Records answered with throttling.", stats.throttled),
        ("ingest_bytes_delivered", "Bytes of delivered records.", stats.bytes_delivered),
        (
            "ingest_records_duplicates_possible",
            "Records resent after an ambiguous outcome (may be stored twice).",
            stats.duplicates_possible,
        ),
    )
    for name, doc, value in plain:
        yield CounterMetricFamily(name, doc, value)


def _labelled(stats: ProducerStats) -> Iterator[Metric]:
    failed = CounterMetricFamily(
        "ingest_records_failed", "Records given up, by reason.", labels=["reason"]
    )
    for reason, count in sorted(stats.records_failed.items()):
        failed.add_metric([reason], count)
    requests = CounterMetricFamily(
        "ingest_requests", "PutRecordBatch calls, by outcome.", labels=["outcome"]
    )
    for outcome, count in sorted(stats.requests.items()):
        requests.add_metric([outcome], count)
    return iter((failed, requests))


def _gauges(stats: ProducerStats) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "ingest_queue_records", "Records held by the producer.", stats.queue_records
    )
    yield GaugeMetricFamily("ingest_queue_bytes", "Bytes held by the producer.", stats.queue_bytes)
    yield GaugeMetricFamily(
        "ingest_inflight_requests", "PutRecordBatch calls in flight.", stats.inflight_requests
    )


def _histogram(snapshot: HistogramSnapshot) -> Metric:
    return HistogramMetricFamily(
        "ingest_request_duration_seconds",
        "PutRecordBatch call duration.",
        buckets=cumulative_buckets(snapshot.bounds, snapshot.counts, snapshot.count),
        sum_value=snapshot.sum_s,
    )


def cumulative_buckets(
    bounds: Sequence[float], counts: Sequence[int], total: int
) -> list[tuple[str, float]]:
    """Prometheus buckets from the producer's snapshot.

    The snapshot's `counts` are already cumulative, one per bound plus a final +Inf entry.
    """
    buckets = [(_le(bound), float(count)) for bound, count in zip(bounds, counts, strict=False)]
    buckets.append(("+Inf", float(total)))
    return buckets


def _le(bound: float) -> str:
    return repr(float(bound))


def build_registry(collector: ProducerCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
