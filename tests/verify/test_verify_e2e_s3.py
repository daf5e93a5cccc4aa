"""End to end: producer -> emulator (GZIP, prefix, CustomTimeZone) -> moto_server's S3 ->
`ingest verify --s3`."""

from __future__ import annotations

import asyncio
import json

import aioboto3
import pytest

from ingest.cli import main
from ingest.emulator import Emulator, EmulatorOptions
from ingest.events import EventGenerator
from ingest.producer import Producer
from ingest.verify import verify_destination


async def test_emulator_to_s3_to_verify(moto: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with aioboto3.Session().client("s3", endpoint_url=moto, region_name="us-east-1") as s3:
        await s3.create_bucket(Bucket="e2e")
    options = EmulatorOptions(
        s3_bucket="e2e", s3_endpoint_url=moto, compression="GZIP", prefix="events/",
        custom_time_zone="Asia/Tokyo", buffer_size_bytes=64 * 1024,
    )  # fmt: skip
    events = EventGenerator(run_id="e2e").batch(4000)
    async with Emulator(options) as emulator:
        async with Producer(endpoint_url=emulator.endpoint_url) as producer:
            receipts = await producer.put_many(events[:3000] + events[3500:])  # 3000-3499 lost
            assert await receipts.wait() == []
            again = await producer.put_many(events[10:20])  # sent twice
            assert await again.wait() == []
        await emulator.flush()

    result = await verify_destination(
        s3_url="s3://e2e/events/", s3_endpoint_url=moto, expected=4000
    )
    (run,) = result.runs
    assert (run.delivered_unique, run.missing, run.missing_ranges) == (3500, 500, [(3000, 3499)])
    assert (run.duplicated_events, run.worst_multiplicity) == (10, 2)
    assert result.objects > 1
    assert result.objects_timed_by_name == result.objects
    # The names carry Tokyo time (UTC+9): read as UTC the objects seem 9 hours late.
    assert run.latency_max_s is not None
    assert run.latency_max_s > 8 * 3600

    argv = ["verify", "--s3", "s3://e2e/events/", "--s3-endpoint-url", moto, "--expect", "4000",
            "--time-zone", "Asia/Tokyo", "--json"]  # fmt: skip
    code = await asyncio.to_thread(main, argv)
    found = json.loads(capsys.readouterr().out)
    assert code == 1
    assert found["runs"][0]["missing_ranges"] == [[3000, 3499]]
    assert found["runs"][0]["duplicated_events"] == 10
    assert found["runs"][0]["latency_max_s"] < 60  # with the stream's zone, seconds at most
