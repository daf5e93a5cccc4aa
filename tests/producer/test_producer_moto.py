"""Against moto_server, an independent Firehose: what the producer delivers lands in S3 once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ingest.errors import StreamNotFoundError
from ingest.events import EventGenerator
from ingest.producer import Producer


async def test_ten_thousand_events_land_in_s3_each_exactly_once(moto_stream: Any) -> None:
    events = EventGenerator("moto-run").batch(10_000)
    async with Producer(
        moto_stream.stream, endpoint_url=moto_stream.endpoint_url, max_inflight=4
    ) as producer:
        receipts = await producer.put_many(events)
    assert await receipts.wait() == []
    stats = producer.stats()
    assert stats.records_delivered == 10_000
    assert stats.records_pending == 0
    stored = Counter(
        line + b"\n" for body in await moto_stream.s3_objects()
        for line in body.splitlines()
    )  # fmt: skip
    assert stored == Counter(events)


async def test_record_ids_come_back_per_record(moto_stream: Any) -> None:
    async with Producer(moto_stream.stream, endpoint_url=moto_stream.endpoint_url) as producer:
        first, second = await producer.put(b"a\n"), await producer.put(b"b\n")
        ids = [await first, await second]
    assert all(ids)
    assert ids[0] != ids[1]
    assert first.record_id == ids[0]


async def test_check_target_describes_an_existing_stream(moto_stream: Any) -> None:
    async with Producer(moto_stream.stream, endpoint_url=moto_stream.endpoint_url) as producer:
        described = await producer.check_target()
    assert described.name == moto_stream.stream
    assert described.stream_type == "DirectPut"


async def test_unknown_stream_fails_fast_with_a_clear_error(moto_stream: Any) -> None:
    async with Producer(
        "no-such-stream", endpoint_url=moto_stream.endpoint_url, max_attempts=5
    ) as producer:
        with pytest.raises(
            StreamNotFoundError,
            match=r"check the stream name.*\[stream 'no-such-stream' in region 'us-east-1'\]",
        ):
            await producer.check_target()
        receipts = await producer.put_many([b"a\n", b"b\n"])
        failed = await receipts.wait()
        assert [f.reason for f in failed] == ["stream_not_found"] * 2
        assert "[stream 'no-such-stream' in region 'us-east-1']" in failed[0].message
        assert all(f.attempts == 1 for f in failed)
        with pytest.raises(StreamNotFoundError):
            await producer.put(b"c\n")
    stats = producer.stats()
    assert stats.records_put == 2
    assert stats.records_failed == {"stream_not_found": 2}
