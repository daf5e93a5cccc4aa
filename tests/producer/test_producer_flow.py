"""Flow control against the emulator: full batches under slow answers, adaptive concurrency
under a requests/s quota; and the AIMD rules of `ConcurrencyLimit` itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ingest.emulator import Emulator, FaultOptions, QuotaOptions
from ingest.events import EventGenerator
from ingest.producer import Producer
from ingest.producer.concurrency import ConcurrencyLimit, Signal

STREAM = "aws-ml-cert"


async def paced(producer: Producer, events: EventGenerator, rate: int, seconds: float) -> None:
    """Put `rate` events/s for `seconds`, in 10 ms chunks, as a paced application would."""
    chunk = rate // 100
    started = time.monotonic()
    for tick in range(int(seconds * 100)):
        await producer.put_many(events.batch(chunk))
        await asyncio.sleep(max(0.0, started + (tick + 1) / 100 - time.monotonic()))


async def test_slow_answers_fill_batches_instead_of_sending_small_ones(tmp_path: Path) -> None:
    """200 ms per call at 5,000 events/s: the open batch keeps filling while a request is on the
    wire, so calls carry ~500 records (before: linger shipped ~100-record batches to idle
    slots, 8 at a time)."""
    faults = FaultOptions(latency_s=0.2)
    async with (
        Emulator(data_dir=tmp_path / "e", faults=faults) as emulator,
        Producer(STREAM, endpoint_url=emulator.endpoint_url) as producer,
    ):
        await paced(producer, EventGenerator("slow"), rate=5_000, seconds=2.0)
    stats = producer.stats()
    requests = sum(stats.requests.values())
    assert stats.records_delivered == stats.records_put == 10_000
    assert stats.records_delivered / requests >= 450


async def test_a_lone_record_still_ships_after_linger_when_nothing_is_in_flight(
    tmp_path: Path,
) -> None:
    async with (
        Emulator(data_dir=tmp_path / "e") as emulator,
        Producer(STREAM, endpoint_url=emulator.endpoint_url, linger_s=0.05) as producer,
    ):
        receipt = await producer.put(b"{}\n")
        record_id = await asyncio.wait_for(receipt.result(), timeout=5)
        assert record_id
        assert sum(producer.stats().requests.values()) == 1


async def test_throttling_shrinks_the_inflight_limit_and_it_grows_back(tmp_path: Path) -> None:
    faults = FaultOptions(latency_s=0.05)
    async with (
        Emulator(
            data_dir=tmp_path / "e", faults=faults, quotas=QuotaOptions(requests_per_s=20)
        ) as emulator,
        Producer(
            STREAM,
            endpoint_url=emulator.endpoint_url,
            max_inflight=8,
            backoff_base_s=0.01,
            backoff_cap_s=0.1,
        ) as producer,
    ):
        assert producer.stats().inflight_limit == 8
        seen: list[int] = []

        async def watch() -> None:
            while True:
                seen.append(producer.stats().inflight_limit)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        # 40 full batches at once: ~160 calls/s wanted against a quota of 20/s.
        receipts = await producer.put_many(EventGenerator("aimd").batch(20_000))
        assert await receipts.wait() == []
        throttled_limit = min(seen)
        emulator.set_quotas(QuotaOptions())  # the quota is gone: answers are fast and clean
        events = EventGenerator("aimd-2")
        for _ in range(60):
            if producer.stats().inflight_limit == 8:
                break
            await (await producer.put_many(events.batch(500))).wait()
        watcher.cancel()
        grown_back = producer.stats().inflight_limit
    assert producer.stats().throttled > 0
    assert throttled_limit <= 4  # halved at least once
    assert grown_back == 8


def test_aimd_halves_once_per_window_and_never_below_one() -> None:
    limit = ConcurrencyLimit(8)
    stale = limit.epoch()
    limit.observe(Signal.CONGESTED, 0.01, stale)
    assert limit.limit == 4
    limit.observe(Signal.CONGESTED, 0.01, stale)  # started before the decrease: old news
    assert limit.limit == 4
    for _ in range(10):
        limit.observe(Signal.CONGESTED, 0.01, limit.epoch())
    assert limit.limit == 1
    limit.observe(Signal.NEUTRAL, 0.01, limit.epoch())  # a 4xx says nothing about capacity
    assert limit.limit == 1


def test_aimd_grows_by_about_one_per_window_while_fast_and_holds_when_slow() -> None:
    limit = ConcurrencyLimit(4)
    limit.observe(Signal.CONGESTED, 0.01, limit.epoch())
    assert limit.limit == 2
    for _ in range(2):
        limit.observe(Signal.OK, 0.01, limit.epoch())
    assert limit.limit == 2  # +1/limit per answer: 2.5, then 2.9
    limit.observe(Signal.OK, 0.01, limit.epoch())
    assert limit.limit == 3  # about +1 per window of `limit` answers
    for _ in range(5):
        limit.observe(Signal.OK, 1.0, limit.epoch())  # 100x the fastest: queueing, hold
    assert limit.limit == 3
    for _ in range(20):
        limit.observe(Signal.OK, 0.01, limit.epoch())
    assert limit.limit == 4  # never above max_inflight


async def test_acquire_waits_while_the_limit_is_used_up() -> None:
    limit = ConcurrencyLimit(2)
    await limit.acquire()
    await limit.acquire()
    assert not limit.may_start()
    third = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0.01)
    assert not third.done()
    limit.release()
    await asyncio.wait_for(third, timeout=1)
    assert limit.inflight == 2
