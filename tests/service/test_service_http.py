"""Probes and /metrics over real HTTP, fed by an in-process fake of the producer's stats()."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest.errors import ConfigError
from ingest.producer.stats import Counters, HistogramSnapshot, ProducerStats
from ingest.service.config import ServiceConfig
from ingest.service.health import Health, RunState
from ingest.service.http import HttpServer, build_app
from ingest.service.metrics import ProducerCollector, build_registry
from ingest.service.server import start_server

REQUIRED = {
    "ingest_records_put": "counter",
    "ingest_records_delivered": "counter",
    "ingest_records_failed": "counter",
    "ingest_records_retried": "counter",
    "ingest_requests": "counter",
    "ingest_records_throttled": "counter",
    "ingest_delivered_bytes": "counter",
    "ingest_throttled": "counter",  # deprecated, kept one release
    "ingest_bytes_delivered": "counter",  # deprecated, kept one release
    "ingest_queue_records": "gauge",
    "ingest_inflight_requests": "gauge",
    "ingest_request_duration_seconds": "histogram",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProducer:
    """Stands in for the Producer's stats() only (the network path is not involved)."""

    def __init__(self, clock: FakeClock) -> None:
        empty = ProducerStats.capture(
            Counters(clock.now), queue_records=0, queue_bytes=0, now=clock.now,
            closing=False, closed=False,
        )  # fmt: skip
        self.snapshot = empty

    def set(self, **changes: Any) -> None:
        self.snapshot = dataclasses.replace(self.snapshot, **changes)

    def stats(self) -> ProducerStats:
        return self.snapshot


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def producer(clock: FakeClock) -> FakeProducer:
    return FakeProducer(clock)


@pytest.fixture
def state() -> RunState:
    return RunState()


@pytest.fixture
async def base_url(producer: FakeProducer, state: RunState, clock: FakeClock) -> AsyncIterator[str]:
    health = Health(producer, state, stall_timeout_s=30, unreachable_after_s=10, clock=clock)
    info = {"version": "0", "target": "emulator", "stream": "s", "region": "us-east-1"}
    registry = build_registry(ProducerCollector(producer, state, health, info))
    server = HttpServer(build_app(health, registry), "127.0.0.1", 0)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


async def get(url: str, method: str = "GET") -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        return response.status, await response.text()


async def test_healthz_is_200_while_idle_and_503_when_the_sender_is_wedged(
    base_url: str, producer: FakeProducer, clock: FakeClock
) -> None:
    assert (await get(base_url + "/healthz"))[0] == 200
    producer.set(inflight_requests=1, queue_records=500, last_progress_monotonic=clock.now)
    clock.now += 29
    assert (await get(base_url + "/healthz"))[0] == 200
    clock.now += 2
    status, body = await get(base_url + "/healthz")
    assert status == 503
    assert "wedged" in body


async def test_healthz_is_503_when_the_producer_stopped_on_its_own(
    base_url: str, producer: FakeProducer
) -> None:
    producer.set(closed=True)
    assert (await get(base_url + "/healthz"))[0] == 503


async def test_readyz_follows_the_target_and_the_drain(
    base_url: str, producer: FakeProducer, state: RunState, clock: FakeClock
) -> None:
    status, body = await get(base_url + "/readyz")
    assert (status, body.strip()) == (503, "target has not answered yet")
    state.target_confirmed_monotonic = clock.now
    assert (await get(base_url + "/readyz"))[0] == 200
    # Work pending and nothing succeeded for longer than unreachable_after_s: not ready.
    producer.set(queue_records=10, inflight_requests=1)
    clock.now += 11
    status, body = await get(base_url + "/readyz")
    assert status == 503
    assert "unreachable" in body
    producer.set(last_success_monotonic=clock.now)
    assert (await get(base_url + "/readyz"))[0] == 200
    state.draining = True
    assert await get(base_url + "/readyz") == (503, "draining\n")


async def test_first_delivered_batch_makes_ready_without_describe(
    base_url: str, producer: FakeProducer, clock: FakeClock
) -> None:
    producer.set(last_success_monotonic=clock.now, records_delivered=500)
    assert (await get(base_url + "/readyz"))[0] == 200


async def test_unknown_paths_404_and_other_methods_405(base_url: str) -> None:
    assert (await get(base_url + "/nope"))[0] == 404
    for method in ("POST", "PUT", "DELETE"):
        assert (await get(base_url + "/metrics", method))[0] == 405


async def test_head_answers_like_get_without_a_body(
    base_url: str, producer: FakeProducer, state: RunState, clock: FakeClock
) -> None:
    """Load balancers and some probes use HEAD: same status as GET, no body."""
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz", "/metrics"):
            async with session.get(base_url + path) as got, session.head(base_url + path) as head:
                assert head.status == got.status, path
                assert await head.read() == b""
        state.target_confirmed_monotonic = clock.now
        async with session.head(base_url + "/readyz") as head:
            assert head.status == 200


async def test_metric_names_follow_the_prometheus_guide(
    base_url: str, producer: FakeProducer
) -> None:
    """Counters end in _total, units in names; renamed metrics are emitted under the old name
    too (HELP says deprecated); labelled counters have a 0 series for every known label value
    before anything happened; process_* and python_* collectors are on the service's registry;
    HELP text speaks of records and requests, not of Python calls."""
    producer.set(throttled=7, bytes_delivered=1234)
    text = (await get(base_url + "/metrics"))[1]
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("ingest_records_throttled_total", ())] == 7
    assert samples[("ingest_throttled_total", ())] == 7
    assert samples[("ingest_delivered_bytes_total", ())] == 1234
    assert samples[("ingest_bytes_delivered_total", ())] == 1234
    assert (
        "DEPRECATED: use ingest_records_throttled_total"
        in families["ingest_throttled"].documentation
    )
    assert "DEPRECATED" not in families["ingest_records_throttled"].documentation
    for reason in ("throttled", "connection_error", "timeout", "server_error", "close_timeout",
                   "stream_not_found", "credentials"):  # fmt: skip
        assert samples[("ingest_records_failed_total", (("reason", reason),))] == 0, reason
    for outcome in ("ok", "partial", "throttled", "server_error", "connection_error", "timeout",
                    "client_error"):  # fmt: skip
        assert samples[("ingest_requests_total", (("outcome", outcome),))] == 0, outcome
    for standard in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info",
                     "python_gc_objects_collected"):  # fmt: skip
        assert standard in families, standard
    counters = [line.split()[2] for line in text.splitlines() if line.endswith(" counter")]
    assert counters
    assert all(name.endswith("_total") for name in counters), counters
    assert all("put()" not in family.documentation for family in families.values())


async def test_metrics_parse_with_exact_names_and_values(
    base_url: str, producer: FakeProducer, state: RunState
) -> None:
    producer.set(
        records_put=1000, records_delivered=900, records_failed={"throttled": 40, "timeout": 10},
        records_retried=70, requests={"ok": 2, "partial": 1}, throttled=60, bytes_delivered=9000,
        queue_records=50, queue_bytes=500, inflight_requests=1, duplicates_possible=3,
        request_duration=HistogramSnapshot((0.1, 1.0), (1, 3, 3), 0.9, 3),
    )  # fmt: skip
    state.events_generated = 1000
    status, text = await get(base_url + "/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name, kind in REQUIRED.items():
        assert families[name].type == kind, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("ingest_records_put_total", ())] == 1000
    assert samples[("ingest_records_delivered_total", ())] == 900
    assert samples[("ingest_records_failed_total", (("reason", "throttled"),))] == 40
    assert samples[("ingest_requests_total", (("outcome", "partial"),))] == 1
    assert samples[("ingest_throttled_total", ())] == 60
    assert samples[("ingest_queue_records", ())] == 50
    assert samples[("ingest_events_generated_total", ())] == 1000
    assert samples[("ingest_records_duplicates_possible_total", ())] == 3
    assert samples[("ingest_request_duration_seconds_bucket", (("le", "1.0"),))] == 3
    assert samples[("ingest_request_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert samples[("ingest_request_duration_seconds_count", ())] == 3
    assert "ingest_info" in families


async def test_metrics_are_read_at_scrape_time(base_url: str, producer: FakeProducer) -> None:
    producer.set(records_delivered=1)
    first = (await get(base_url + "/metrics"))[1]
    producer.set(records_delivered=2)
    second = (await get(base_url + "/metrics"))[1]
    assert "ingest_records_delivered_total 1.0" in first
    assert "ingest_records_delivered_total 2.0" in second


async def test_unknown_http_host_is_a_config_error_naming_http_host(
    producer: FakeProducer, state: RunState, clock: FakeClock
) -> None:
    health = Health(producer, state, stall_timeout_s=30, unreachable_after_s=10, clock=clock)
    config = ServiceConfig(http_host="no-such-host.invalid", http_port=0)
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match=r"^http_host: cannot listen on no-such-host\.inv"):
            await start_server(stack, config, producer, state, health, {})
