"""Record packing: the packer's limits (property-based), per-event accounting through real
failures, gzip members that read back as one file, and billing/stats figures."""

from __future__ import annotations

import gzip
import random
import re
import subprocess
import zlib
from collections.abc import Sequence
from itertools import accumulate, pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.emulator import Emulator, FaultOptions
from ingest.errors import ConfigError, RecordFailedError
from ingest.events import EventGenerator
from ingest.firehose.limits import (
    BILLING_INCREMENT_BYTES,
    MAX_BATCH_BYTES,
    MAX_RECORD_BYTES,
    MAX_RECORDS_PER_BATCH,
)
from ingest.firehose.wire import PutBatchResult
from ingest.producer import FailedRecord, Producer, ProducerConfig, Receipts
from ingest.producer.accumulator import Accumulator
from ingest.producer.ledger import Ledger
from ingest.producer.packing import (
    MAX_GZIP_RAW_BYTES,
    PackedResult,
    Packer,
    billed_total,
    gzip_bound,
)
from ingest.producer.stats import Counters

STREAM = "aws-ml-cert"


def make_accumulator(packer: Packer, max_records: int, max_bytes: int) -> Accumulator:
    holder: list[Accumulator] = []
    ledger = Ledger(Counters(0.0), lambda n, b: holder[0].release(n, b), lambda failed: None)
    holder.append(
        Accumulator(
            ledger, max_records=max_records, max_bytes=max_bytes, linger_s=3600.0, packer=packer
        )
    )
    return holder[0]


def event(i: int, size: int, rng: random.Random) -> bytes:
    """A newline-terminated event of exactly `size` bytes (>= 1); random (incompressible)
    body so gzip's worst case is exercised."""
    head = b"%d:" % i
    body = rng.randbytes(max(0, size - len(head) - 1)).replace(b"\n", b"n")
    return (head + body)[: size - 1] + b"\n"


event_sizes = st.lists(
    st.one_of(
        st.integers(1, 400),
        st.integers(4000, 6000),
        st.integers(MAX_GZIP_RAW_BYTES - 3000, MAX_GZIP_RAW_BYTES),
    ),
    max_size=120,
).flatmap(lambda mixed: st.lists(st.integers(1, 200), max_size=2000).map(lambda s: mixed + s))


@settings(max_examples=40, deadline=None)
@given(
    sizes=event_sizes,
    pack_bytes=st.one_of(
        st.integers(1, 300), st.just(5120), st.integers(5000, 50_000), st.just(MAX_RECORD_BYTES)
    ),
    compress=st.booleans(),
    data=st.data(),
)
async def test_packed_batches_never_break_a_limit_nor_split_an_event(
    sizes: list[int], pack_bytes: int, compress: bool, data: st.DataObject
) -> None:
    rng = random.Random(len(sizes))
    events = [event(i, size, rng) for i, size in enumerate(data.draw(st.permutations(sizes)))]
    config = ProducerConfig(pack_bytes=pack_bytes, pack_compression="gzip" if compress else None)
    packer = config.packer()
    assert packer is not None
    acc = make_accumulator(packer, 10**9, 10**12)
    position = 0
    while position < len(events):  # a random mix of put and put_many
        if data.draw(st.booleans()):
            acc.append(events[position], len(events[position]))
            position += 1
        else:
            chunk = events[position : position + data.draw(st.integers(1, 3000))]
            taken = acc.append_many(chunk, [len(e) for e in chunk], 0, Receipts())
            assert taken == len(chunk)
            position += taken
    batches = acc.take_unsent()
    for batch in batches:
        records, starts = packer.pack(batch.records)
        assert 1 <= len(records) <= MAX_RECORDS_PER_BATCH
        assert sum(map(len, records)) <= MAX_BATCH_BYTES
        assert max(map(len, records)) <= MAX_RECORD_BYTES
        for record, (a, b) in zip(records, pairwise(starts), strict=True):
            raw = gzip.decompress(record) if compress else record
            assert raw == b"".join(batch.records[a:b])  # whole events, in order
            assert b - a == 1 or len(raw) <= packer.pack_bytes  # only a lone event is larger
    assert [e for batch in batches for e in batch.records] == events
    assert acc.queue_records == len(events)
    assert acc.queue_bytes == sum(sizes)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3000), max_size=600),
    max_records=st.integers(1, 700),
    max_bytes=st.integers(3000, 200_000),
    pack_bytes=st.integers(1, 20_000),
)
async def test_packing_keeps_the_queue_bound_in_events_and_bytes(
    sizes: list[int], max_records: int, max_bytes: int, pack_bytes: int
) -> None:
    acc = make_accumulator(Packer(pack_bytes), max_records, max_bytes)
    events = [b"x" * (size - 1) + b"\n" for size in sizes]
    taken = acc.append_many(events, sizes, 0, Receipts())
    assert acc.queue_records == taken <= max_records
    assert acc.queue_bytes == sum(sizes[:taken]) <= max_bytes
    if taken < len(events):  # it stopped only because the next event did not fit
        assert not acc.has_room(sizes[taken])


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 300_000), seed=st.integers(0, 2**32), text=st.booleans())
def test_gzip_member_never_exceeds_its_bound(size: int, seed: int, text: bool) -> None:
    rng = random.Random(seed)
    data = b"a" * size if text else rng.randbytes(size)
    assert len(zlib.compress(data, 6, wbits=31)) <= gzip_bound(size)


def test_gzip_bound_of_the_largest_event_fits_a_record() -> None:
    assert gzip_bound(MAX_GZIP_RAW_BYTES) <= MAX_RECORD_BYTES < gzip_bound(MAX_GZIP_RAW_BYTES + 1)
    worst = random.Random(7).randbytes(MAX_GZIP_RAW_BYTES)
    assert len(zlib.compress(worst, 6, wbits=31)) <= MAX_RECORD_BYTES


def test_billing_rounds_each_record_up_to_5_kb() -> None:
    unit = BILLING_INCREMENT_BYTES
    assert billed_total([]) == 0
    assert billed_total([150] * 3) == 3 * unit
    assert billed_total([unit, unit + 1, 0]) == 4 * unit


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pack_bytes": 0}, "pack_bytes: expected None (no packing) or an int from 1 to 1,024,000"),
        ({"pack_bytes": MAX_RECORD_BYTES + 1}, "got 1024001"),
        ({"pack_bytes": "5k"}, "got '5k'"),
        ({"pack_compression": "zstd"}, "pack_compression: expected None, 'none' or 'gzip'"),
    ],
)
def test_bad_packing_options_name_the_option(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ProducerConfig.from_options(options)


def test_gzip_alone_turns_packing_on_at_one_billing_unit() -> None:
    assert ProducerConfig(pack_compression="gzip").pack_bytes == 5120
    assert ProducerConfig(pack_compression="none").packer() is None
    assert ProducerConfig().packer() is None


async def test_a_packed_event_must_end_with_a_newline(emulator: Emulator) -> None:
    async with Producer(STREAM, endpoint_url=emulator.endpoint_url, pack_bytes=5120) as producer:
        with pytest.raises(ValueError, match=r"record: expected a newline-terminated event"):
            await producer.put(b'{"a":1}')
        with pytest.raises(ValueError, match=r"records\[1\]: expected a newline-terminated"):
            await producer.put_many([b"{}\n", b"{}"])
        assert producer.stats().records_put == 0


async def test_packing_delivers_every_event_once_in_few_billed_records(tmp_path: Path) -> None:
    events = EventGenerator("pack", event_size=150).batch(20_000)
    async with (
        Emulator(data_dir=tmp_path / "e") as emulator,
        Producer(STREAM, endpoint_url=emulator.endpoint_url, pack_bytes=5120) as producer,
    ):
        first = await producer.put(events[0])
        receipts = await producer.put_many(events[1:])
        assert await receipts.wait() == []
        record_id = await first
        await emulator.flush()
        stored = b"".join(emulator.stored_records(STREAM))
    stats = producer.stats()
    assert stored == b"".join(events)  # whole events, in order, none split or lost
    assert record_id
    assert stats.records_put == stats.records_delivered == len(events)
    assert stats.events_per_record > 33.9  # 5,120 // 150 = 34 events in all records but one
    assert stats.firehose_records_delivered == -(-len(events) // 34)
    assert stats.bytes_billed == stats.firehose_records_delivered * 5120
    assert stats.bytes_billed <= 1.05 * stats.bytes_sent  # billed ~ sent, not ~34x
    assert stats.bytes_sent == sum(map(len, events))
    assert sum(stats.requests.values()) <= -(-stats.firehose_records_delivered // 500) + 1


async def test_a_failed_packed_record_fails_every_event_in_it(tmp_path: Path) -> None:
    """Per-record failures in a 200 (injected), no resends allowed: every event of a failed
    record is handed to the failure handler and its receipt raises; the ledger closes."""
    handed: list[FailedRecord] = []

    def on_failure(failed: Sequence[FailedRecord]) -> None:
        handed.extend(failed)

    events = EventGenerator("packfail").batch(6_000)
    faults = FaultOptions(seed=3, record_failure_rate=0.3)
    async with (
        Emulator(data_dir=tmp_path / "e", faults=faults) as emulator,
        Producer(
            STREAM,
            endpoint_url=emulator.endpoint_url,
            pack_bytes=2000,
            max_attempts=1,
            on_failure=on_failure,
        ) as producer,
    ):
        receipts = await producer.put_many(events)
        singles = EventGenerator("packfail-1").batch(300)
        single = [await producer.put(e) for e in singles]
        failures = await receipts.wait()
        await producer.flush()
        await emulator.flush()
        stored = emulator.stored_records(STREAM)
    stats = producer.stats()
    stored_events = [line for record in stored for line in record.splitlines(keepends=True)]
    failed_data = [f.data for f in handed]
    assert failed_data, "the fault rate should fail some records"
    assert stats.records_put == len(events) + len(single)
    assert stats.records_put == stats.records_delivered + stats.records_failed_total
    assert stats.records_pending == 0
    assert stats.records_failed_total == len(handed)
    # Delivered and failed events partition what was put, one event per FailedRecord.
    assert sorted(stored_events + failed_data) == sorted(events + singles)
    failed_set = set(failed_data)
    assert [f.data for f in failures] == [e for e in events if e in failed_set]
    for receipt, data in zip(single, singles, strict=True):
        if data in failed_set:
            assert receipt.failure is not None
            assert receipt.failure.data == data
            with pytest.raises(RecordFailedError):
                await receipt
        else:
            assert receipt.failure is None
            assert receipt.record_id


def zcat(path: Path) -> bytes:
    return subprocess.run(["zcat", str(path)], check=True, capture_output=True).stdout


async def test_gzip_packed_objects_are_multi_member_gzip_files(tmp_path: Path) -> None:
    events = EventGenerator("gz", event_size=200).batch(12_000)
    async with (
        Emulator(data_dir=tmp_path / "e") as emulator,
        Producer(STREAM, endpoint_url=emulator.endpoint_url, pack_compression="gzip") as producer,
    ):
        assert await (await producer.put_many(events)).wait() == []
        await emulator.flush()
        objects = emulator.delivered_objects(STREAM)
    stats = producer.stats()
    assert objects
    assert stats.bytes_sent * 3 < sum(map(len, events))  # compressed well over 3x
    unzipped = b"".join(zcat(path) for path in sorted(objects))
    assert sorted(unzipped.splitlines(keepends=True)) == sorted(events)
    assert b"".join(gzip.decompress(path.read_bytes()) for path in objects).count(b"\n") == len(
        events
    )


async def test_a_failed_packed_record_is_resent_for_every_event_in_it(tmp_path: Path) -> None:
    events = EventGenerator("packretry").batch(5_000)
    faults = FaultOptions(seed=5, record_failure_rate=0.3)
    async with (
        Emulator(data_dir=tmp_path / "e", faults=faults) as emulator,
        Producer(
            STREAM, endpoint_url=emulator.endpoint_url, pack_bytes=3000, backoff_base_s=0.001
        ) as producer,
    ):
        assert await (await producer.put_many(events)).wait() == []
        await emulator.flush()
        stored = emulator.stored_records(STREAM)
    stats = producer.stats()
    assert stats.records_retried > 0
    assert stats.records_delivered == len(events)
    # Failed entries of a 200 were not stored: each event is stored exactly once.
    assert sorted(line for r in stored for line in r.splitlines(keepends=True)) == sorted(events)


@settings(max_examples=80, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    data=st.data(),
)
def test_a_packed_answer_maps_every_record_onto_each_of_its_events(
    counts: list[int], data: st.DataObject
) -> None:
    """Per-event view of a per-record answer: a failed record fails every event in it, a
    delivered one gives each of its events its RecordId."""
    failed = data.draw(st.sets(st.integers(0, len(counts) - 1)))
    starts = [0, *accumulate(counts)]
    responses = [
        {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
        if i in failed
        else {"RecordId": f"id-{i}"}
        for i in range(len(counts))
    ]
    inner = PutBatchResult(len(failed), responses, "req")
    packed = PackedResult(inner, starts)
    events_of = [i for i, n in enumerate(counts) for _ in range(n)]  # record of each event
    assert packed.failed_put_count == sum(counts[i] for i in failed)
    assert [f.index for f in packed.failures()] == [
        e for e, record in enumerate(events_of) if record in failed
    ]
    assert all(f.error.retriable for f in packed.failures())
    for event, record in enumerate(events_of):
        expected = None if record in failed else f"id-{record}"
        assert packed.record_id(event) == expected
        assert packed.responses[event] == responses[record]
    assert packed.failed_records() == sorted(failed)
