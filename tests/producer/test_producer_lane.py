"""`put`'s per-event path (the accumulator's lane, issue 10): counts are brought up to date only
when read, so these check that every reading is exact at every moment, that the bound and the
record-size limit hold exactly as off the lane, and that a stopped producer's lane is shut."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.emulator import Emulator
from ingest.errors import ProducerClosedError, QueueFullError, RecordTooLargeError
from ingest.firehose.limits import MAX_RECORDS_PER_BATCH
from ingest.producer import Producer, Receipt

operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 1500)),
        st.tuples(st.just("put_nowait"), st.integers(0, 1500)),
        st.tuples(st.just("put_many"), st.lists(st.integers(0, 600), min_size=1, max_size=40)),
        st.tuples(st.just("put"), st.integers(4000, 9000)),  # near or past the largest record
        st.tuples(st.just("yield"), st.just(0)),  # the sender runs: batches ship and settle
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    max_records=st.integers(1, 700),
    max_bytes=st.integers(5000, 60_000),
    linger_s=st.sampled_from([0.0, 3600.0]),
)
async def test_every_reading_is_exact_and_the_bounds_hold_between_puts(
    ops: list[tuple[str, object]], max_records: int, max_bytes: int, linger_s: float
) -> None:
    accepted: list[bytes] = []
    receipts: list[Receipt] = []
    async with Emulator() as emulator:
        producer = Producer(
            endpoint_url=emulator.endpoint_url, max_queue_records=max_records,
            max_queue_bytes=max_bytes, linger_s=linger_s, max_inflight=1,
        )  # fmt: skip
        largest = producer.config.largest_record_bytes
        async with producer:
            for name, arg in ops:
                if name == "yield":
                    await asyncio.sleep(0.002)
                    continue
                sizes = arg if isinstance(arg, list) else [arg]
                records = [b"%d:" % (len(accepted) + i) + b"x" * s for i, s in enumerate(sizes)]
                try:
                    if name == "put":
                        receipts.append(await producer.put(records[0]))
                    elif name == "put_nowait":
                        receipts.append(producer.put_nowait(records[0]))
                    else:
                        receipts += list(await producer.put_many(records))
                except RecordTooLargeError:
                    assert max(map(len, records)) > largest
                    records = []
                except QueueFullError:
                    assert name == "put_nowait"
                    records = []
                accepted += records
                stats = producer.stats()
                assert stats.records_put == len(accepted)
                assert stats.queue_records <= max_records
                assert stats.queue_bytes <= max_bytes
                settled = stats.records_delivered + stats.records_failed_total
                assert stats.queue_records == len(accepted) - settled
        await emulator.flush()
        stored = emulator.stored_records("aws-ml-cert")
    stats = producer.stats()
    assert stats.records_put == stats.records_delivered == len(accepted)
    assert stats.bytes_delivered == sum(map(len, accepted))
    assert stored == accepted  # one request at a time, no faults: in put order, each once
    assert [receipt.attempts for receipt in receipts] == [1] * len(accepted)
    assert all(receipt.record_id for receipt in receipts)


async def test_full_batches_come_from_the_lane_and_each_receipt_finds_its_record(
    emulator: Emulator,
) -> None:
    observed: list[int] = []
    count = 3 * MAX_RECORDS_PER_BATCH + 7
    producer = Producer(
        endpoint_url=emulator.endpoint_url,
        on_request=lambda observation: observed.append(observation.records),
    )
    async with producer:
        receipts = [await producer.put(b"%d\n" % i) for i in range(count)]
        # Counted at once, with no batch shipped yet (nothing has yielded to the sender).
        assert producer.stats().records_put == count
        assert producer.stats().queue_bytes == sum(len(b"%d\n" % i) for i in range(count))
    assert observed == [MAX_RECORDS_PER_BATCH] * 3 + [7]
    ids = await asyncio.gather(*(receipt.result() for receipt in receipts))
    assert len(set(ids)) == count
    await emulator.flush()
    assert emulator.stored_records("aws-ml-cert") == [b"%d\n" % i for i in range(count)]


async def test_a_closed_producer_refuses_put_even_mid_batch(emulator: Emulator) -> None:
    producer = Producer(endpoint_url=emulator.endpoint_url, linger_s=3600.0)
    async with producer:
        await producer.put(b"a\n")
        await producer.put(b"b\n")  # the lane is open on a partial batch now
        closing = asyncio.create_task(producer.close())
        await asyncio.sleep(0)
        with pytest.raises(ProducerClosedError):
            await producer.put(b"c\n")
        await closing
    stats = producer.stats()
    assert (stats.records_put, stats.records_delivered, stats.records_pending) == (2, 2, 0)
