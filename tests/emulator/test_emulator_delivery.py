"""S3-style delivery: key layout, atomic objects, buffering hints, flush on stop and delete."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.emulator import Emulator
from ingest.emulator.delivery import ObjectWriter, check_prefix, object_key

STREAM = "aws-ml-cert"
DESTINATION = {"RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::b"}
Batch = Callable[..., dict[str, Any]]
KEY = re.compile(
    r"(\d{4})/(\d\d)/(\d\d)/(\d\d)/aws-ml-cert-1-(\d{4})-(\d\d)-(\d\d)-(\d\d)-\d\d-\d\d-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)


def test_object_key_is_firehose_layout_in_utc_of_the_oldest_record() -> None:
    when = datetime(2026, 3, 7, 5, 9, 2, tzinfo=UTC).timestamp()
    key = object_key("logs/", "orders", "1", when)
    assert re.fullmatch(r"logs/2026/03/07/05/orders-1-2026-03-07-05-09-02-[0-9a-f-]{36}", key)


@pytest.mark.parametrize(
    "prefix", ["../x/", "/abs/", "a/../../b/", "a\\b", "x" * 300 + "/", ".tmp/", ".tmp/x/"]
)
def test_prefixes_that_escape_the_data_dir_are_refused(prefix: str) -> None:
    assert check_prefix(prefix) is not None


@pytest.mark.parametrize("prefix", ["", "raw/", "a/b/c-", "year=2026/", ".tmpx/", "a/.tmp/"])
def test_ordinary_prefixes_are_accepted(prefix: str) -> None:
    assert check_prefix(prefix) is None


def test_objects_appear_atomically(tmp_path: Path) -> None:
    """The object's final path does not exist while its content is still being written."""
    writer = ObjectWriter(tmp_path)
    writer.prepare(tmp_path)
    key = "2026/01/01/00/s-1-2026-01-01-00-00-00-0f0f0f0f-0000-4000-8000-000000000000"

    def chunks() -> Iterator[bytes]:
        for i in range(5):
            assert not (tmp_path / key).exists()
            yield b"%d\n" % i

    assert writer.write(key, chunks()) == 10
    assert (tmp_path / key).read_bytes() == b"0\n1\n2\n3\n4\n"
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert writer.objects() == [tmp_path / key]


async def test_flush_writes_records_concatenated_under_the_key_layout(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    datas = [b'{"seq": %d}\n' % i for i in range(100)]
    await call(emulator.endpoint_url, "PutRecordBatch", batch(datas[:60]))
    await call(emulator.endpoint_url, "PutRecordBatch", batch(datas[60:]))
    assert emulator.delivered_objects(STREAM) == []
    await emulator.flush()
    [path] = emulator.delivered_objects(STREAM)
    assert path.read_bytes() == b"".join(datas)
    key = path.relative_to(emulator.data_dir).as_posix()
    match = KEY.fullmatch(key)
    assert match is not None, key
    assert match.groups()[:4] == match.groups()[4:]  # folder and name agree on the hour


async def test_buffer_size_hint_flushes_without_a_flush_call(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    async with Emulator(data_dir=tmp_path, buffer_size_bytes=1000, buffer_interval_s=600) as emu:
        for _ in range(10):
            await call(emu.endpoint_url, "PutRecordBatch", batch([b"x" * 149 + b"\n"] * 3))
            assert emu.buffered_bytes(STREAM) < 1000
        # 450 bytes a call: every third call fills the buffer past 1000 bytes.
        objects = emu.delivered_objects(STREAM)
        assert [p.stat().st_size for p in objects] == [1350] * 3
        assert emu.buffered_bytes(STREAM) == 450


async def test_buffer_interval_hint_flushes_on_a_timer(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    async with Emulator(data_dir=tmp_path, buffer_interval_s=0.1) as emu:
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"a\n"]))
        for _ in range(200):  # up to 10 s: only a lower bound on speed
            if emu.delivered_objects(STREAM):
                break
            await asyncio.sleep(0.05)
        [path] = emu.delivered_objects(STREAM)
        assert path.read_bytes() == b"a\n"


async def test_stream_buffering_hints_from_create(emulator: Emulator, firehose: Any) -> None:
    """IntervalInSeconds=0 writes an object per call."""
    await firehose.create_delivery_stream(
        DeliveryStreamName="eager",
        ExtendedS3DestinationConfiguration={
            **DESTINATION,
            "Prefix": "eager/",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        },
    )
    for i in range(3):
        await firehose.put_record(DeliveryStreamName="eager", Record={"Data": b"%d\n" % i})
    objects = emulator.delivered_objects("eager")
    assert len(objects) == 3
    assert all(p.relative_to(emulator.data_dir).as_posix().startswith("eager/") for p in objects)


async def test_stop_flushes_everything_buffered(tmp_path: Path, call: Any, batch: Batch) -> None:
    emu = Emulator(data_dir=tmp_path, buffer_interval_s=600)
    await emu.start()
    await call(emu.endpoint_url, "PutRecordBatch", batch([b"r%d\n" % i for i in range(500)]))
    await emu.stop()
    [path] = emu.delivered_objects(STREAM)
    assert path.read_bytes() == b"".join(b"r%d\n" % i for i in range(500))


async def test_delete_delivers_what_the_stream_buffered(
    emulator: Emulator, firehose: Any, call: Any, batch: Batch
) -> None:
    await call(emulator.endpoint_url, "PutRecordBatch", batch([b"last\n"]))
    await firehose.delete_delivery_stream(DeliveryStreamName=STREAM)
    [path] = emulator.delivered_objects(STREAM)
    assert path.read_bytes() == b"last\n"


async def test_an_unnamed_data_dir_is_temporary(call: Any, batch: Batch) -> None:
    async with Emulator() as emu:
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"x\n"]))
        await emu.flush()
        data_dir = emu.data_dir
        assert len(emu.delivered_objects()) == 1
    assert not data_dir.exists()


async def test_without_the_record_log_only_counters_remain(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    async with Emulator(data_dir=tmp_path, record_log=False) as emu:
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"x\n"] * 7))
        assert emu.stats.records_accepted == 7
        with pytest.raises(RuntimeError, match="record_log"):
            emu.stored_records(STREAM)


async def test_record_ids_are_unique_across_calls(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    ids: set[str] = set()
    for _ in range(5):
        _, body = await call(emulator.endpoint_url, "PutRecordBatch", batch([b"x"] * 500))
        ids.update(e["RecordId"] for e in body["RequestResponses"])
    assert len(ids) == 2500


def test_create_stream_helper_validates_names() -> None:
    emu = Emulator(streams=())
    emu.create_stream("ok.name_1-x")
    with pytest.raises(ValueError, match="already exists"):
        emu.create_stream("ok.name_1-x")
    with pytest.raises(ValueError, match="bad name"):
        emu.create_stream("bad name")
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.endpoint_url


async def test_create_with_an_escaping_prefix_is_invalid_argument(
    emulator: Emulator, call: Any
) -> None:
    status, body = await call(
        emulator.endpoint_url,
        "CreateDeliveryStream",
        {
            "DeliveryStreamName": "evil",
            "S3DestinationConfiguration": {
                **DESTINATION,
                "Prefix": "../../etc/",
            },
        },
    )
    assert (status, body["__type"]) == (400, "InvalidArgumentException")
    assert "../../etc/" in body["message"]


async def test_describe_shows_the_hints_in_force_when_only_some_were_given(
    tmp_path: Path, firehose_for: Any
) -> None:
    """SizeInMBs given, IntervalInSeconds from the emulator's default: both are described."""
    async with Emulator(data_dir=tmp_path, buffer_interval_s=7) as emu:
        async with firehose_for(emu) as firehose:
            await firehose.create_delivery_stream(
                DeliveryStreamName="sized",
                ExtendedS3DestinationConfiguration={
                    **DESTINATION,
                    "BufferingHints": {"SizeInMBs": 2},
                },
            )
            described = await firehose.describe_delivery_stream(DeliveryStreamName="sized")
        [destination] = described["DeliveryStreamDescription"]["Destinations"]
        hints = destination["ExtendedS3DestinationDescription"]["BufferingHints"]
        assert hints == {"SizeInMBs": 2, "IntervalInSeconds": 7}
        stream = emu._backend.streams["sized"]
        assert (stream.buffer_size_bytes, stream.buffer_interval_s) == (2 * 1024 * 1024, 7)


async def test_the_key_is_timed_by_the_oldest_record_not_by_the_flush(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    """Two calls more than a second apart, one object: its key carries the first call's second."""
    async with Emulator(data_dir=tmp_path, buffer_interval_s=600) as emu:
        started = int(time.time())
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"first\n"]))
        first_done = time.time()
        await asyncio.sleep(1.1)
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"second\n"]))
        await emu.flush()
        [path] = emu.delivered_objects(STREAM)
    assert path.read_bytes() == b"first\nsecond\n"
    stamp = re.search(r"-1-(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)-", path.name)
    assert stamp is not None
    keyed = datetime.strptime(stamp.group(1), "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    assert started <= keyed.timestamp() <= first_done  # UTC, and the oldest record's second
    hour_dir = path.relative_to(tmp_path).parent.as_posix()
    assert hour_dir == keyed.strftime("%Y/%m/%d/%H")


async def test_only_the_top_level_staging_dir_is_hidden_from_readers(
    emulator: Emulator, firehose: Any
) -> None:
    await firehose.create_delivery_stream(
        DeliveryStreamName="nested",
        ExtendedS3DestinationConfiguration={
            **DESTINATION,
            "Prefix": "a/.tmp/",
        },
    )
    await firehose.put_record(DeliveryStreamName="nested", Record={"Data": b"kept\n"})
    await emulator.flush("nested")
    [path] = emulator.delivered_objects("nested")
    assert path.relative_to(emulator.data_dir).parts[:2] == ("a", ".tmp")
    assert path.read_bytes() == b"kept\n"


def test_a_staging_dir_removed_while_running_is_recreated(tmp_path: Path) -> None:
    writer = ObjectWriter(tmp_path)
    writer.prepare(tmp_path)
    (tmp_path / ".tmp").rmdir()
    key = "2026/01/01/00/s-1-2026-01-01-00-00-00-0f0f0f0f-0000-4000-8000-000000000000"
    assert writer.write(key, [b"a\n", b"b\n"]) == 4
    assert writer.objects() == [tmp_path / key]
