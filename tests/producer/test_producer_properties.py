"""Property-based: batches never break a limit, the bound holds, every record is settled exactly
once, and records that never failed keep their order."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.emulator import Emulator, FaultOptions
from ingest.firehose.limits import MAX_BATCH_BYTES, MAX_RECORD_BYTES, MAX_RECORDS_PER_BATCH
from ingest.producer import FailedRecord, Producer, Receipts
from ingest.producer.accumulator import Accumulator
from ingest.producer.ledger import Ledger
from ingest.producer.stats import Counters

_BIG = b"x" * MAX_RECORD_BYTES
sizes = st.lists(
    st.one_of(st.integers(0, 300), st.integers(MAX_RECORD_BYTES - 5000, MAX_RECORD_BYTES)),
    max_size=40,
).flatmap(lambda big: st.lists(st.integers(0, 300), max_size=1200).map(lambda small: big + small))


def make_accumulator(max_records: int, max_bytes: int) -> Accumulator:
    holder: list[Accumulator] = []
    ledger = Ledger(Counters(0.0), lambda n, b: holder[0].release(n, b), lambda failed: None)
    holder.append(
        Accumulator(ledger, max_records=max_records, max_bytes=max_bytes, linger_s=3600.0)
    )
    return holder[0]


@settings(max_examples=60, deadline=None)
@given(sizes=sizes, data=st.data())
async def test_no_batch_breaks_a_limit_and_order_is_kept(
    sizes: list[int], data: st.DataObject
) -> None:
    records = [
        b"%d:" % i + _BIG[: max(0, size - 8)]
        for i, size in enumerate(data.draw(st.permutations(sizes)))
    ]
    acc = make_accumulator(10**9, 10**12)
    position = 0
    while position < len(records):  # a random mix of put and put_many
        if data.draw(st.booleans()):
            acc.append(records[position], len(records[position]))
            position += 1
        else:
            chunk = records[position : position + data.draw(st.integers(1, 700))]
            taken = acc.append_many(chunk, [len(r) for r in chunk], 0, Receipts())
            assert taken == len(chunk)
            position += taken
    batches = acc.take_unsent()
    for batch in batches:
        assert 1 <= len(batch.records) <= MAX_RECORDS_PER_BATCH
        assert batch.nbytes == sum(map(len, batch.records)) <= MAX_BATCH_BYTES
    assert [r for batch in batches for r in batch.records] == records
    assert acc.queue_records == len(records)
    assert acc.queue_bytes == sum(map(len, records))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 5000), max_size=800),
    max_records=st.integers(1, 1000),
    max_bytes=st.integers(5000, 200_000),
)
async def test_the_queue_never_holds_more_than_its_bound(
    sizes: list[int], max_records: int, max_bytes: int
) -> None:
    acc = make_accumulator(max_records, max_bytes)
    records = [_BIG[:size] for size in sizes]
    taken = acc.append_many(records, sizes, 0, Receipts())
    assert acc.queue_records <= max_records
    assert acc.queue_bytes <= max_bytes
    assert acc.queue_bytes == sum(sizes[:taken])
    if taken < len(records):  # it stopped only because the next record did not fit
        assert not acc.has_room(sizes[taken])


faults = st.builds(
    FaultOptions,
    seed=st.integers(0, 2**16),
    record_failure_rate=st.sampled_from([0.0, 0.1, 0.5]),
    call_error_rate=st.sampled_from([0.0, 0.2]),
    reset_rate=st.sampled_from([0.0, 0.2]),
    accepted_error_rate=st.sampled_from([0.0, 0.2]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    faults=faults,
    count=st.integers(1, 1200),
    max_attempts=st.integers(1, 4),
    max_inflight=st.integers(1, 3),
    linger_s=st.sampled_from([0.0, 0.005]),
)
async def test_every_record_is_settled_exactly_once_and_never_failed_ones_keep_order(
    faults: FaultOptions, count: int, max_attempts: int, max_inflight: int, linger_s: float
) -> None:
    records = [b"%d\n" % i for i in range(count)]
    handed: list[FailedRecord] = []
    async with Emulator(faults=faults) as emulator:
        producer = Producer(
            endpoint_url=emulator.endpoint_url, on_failure=handed.extend, max_attempts=max_attempts,
            max_inflight=max_inflight, linger_s=linger_s, backoff_base_s=0.001,
            backoff_cap_s=0.01,
        )  # fmt: skip
        async with producer:
            receipts = [await producer.put(record) for record in records[: count // 2]]
            receipts += list(await producer.put_many(records[count // 2 :]))
        await emulator.flush()
        stored = emulator.stored_records("aws-ml-cert")
    stats = producer.stats()
    assert stats.records_put == count
    assert stats.records_pending == 0
    assert stats.records_delivered + stats.records_failed_total == count
    delivered = [r for r, receipt in zip(records, receipts, strict=True) if receipt.record_id]
    failed = [r for r, receipt in zip(records, receipts, strict=True) if receipt.failure]
    assert len(delivered) + len(failed) == count  # each settled exactly one way
    assert sorted(record.data for record in handed) == sorted(failed)
    assert set(delivered) <= set(stored)
    assert len(stored) - len(set(stored)) <= stats.duplicates_possible
    if max_inflight == 1:
        never_failed = {
            r
            for r, receipt in zip(records, receipts, strict=True)
            if receipt.record_id and receipt.attempts == 1
        }
        seen: dict[bytes, None] = dict.fromkeys(r for r in stored if r in never_failed)
        assert list(seen) == [r for r in records if r in never_failed]
