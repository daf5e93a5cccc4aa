"""Delivery to an S3-compatible store (moto_server's S3): Firehose's key layout, one PutObject
per object, the bucket created if missing, a failing bucket that loses nothing, and the CLI."""

from __future__ import annotations

import asyncio
import gzip
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ingest.emulator import Emulator
from ingest.emulator.destinations import DestinationError
from ingest.emulator.testing import run_emulator_process
from tests.conftest import free_port

BUCKET = "emulator-objects"
# One attempt: the tests look at what the emulator answered, not at botocore's retries.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
KEY = re.compile(
    r"(?P<prefix>.*?)\d{4}/\d\d/\d\d/\d\d/(?P<stream>[\w.-]+)-1-\d{4}(-\d\d){5}-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}(?P<ext>\.[\w.]+)?"
)


@pytest.fixture
async def s3(moto: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client("s3", region_name="us-east-1", endpoint_url=moto) as c:
        yield c


async def objects(s3: Any, bucket: str = BUCKET) -> dict[str, bytes]:
    """key -> content of every object in ``bucket``."""
    listing = await s3.list_objects_v2(Bucket=bucket)
    found = {}
    for entry in listing.get("Contents", []):
        response = await s3.get_object(Bucket=bucket, Key=entry["Key"])
        found[entry["Key"]] = await response["Body"].read()
    return found


async def put(emulator: Emulator, records: list[bytes], stream: str = "aws-ml-cert") -> Any:
    async with aioboto3.Session().client(
        "firehose", region_name="us-east-1", endpoint_url=emulator.endpoint_url, config=NO_RETRIES
    ) as firehose:
        return await firehose.put_record_batch(
            DeliveryStreamName=stream, Records=[{"Data": r} for r in records]
        )


async def test_objects_land_in_the_bucket_under_the_firehose_layout(moto: str, s3: Any) -> None:
    """The bucket does not exist yet: the emulator creates it, then writes one object per flush."""
    records = [b'{"seq": %d}\n' % i for i in range(200)]
    async with Emulator(
        s3_bucket=BUCKET, s3_endpoint_url=moto, prefix="raw/", buffer_interval_s=600
    ) as emulator:
        assert emulator.destination == f"s3://{BUCKET} at {moto}"
        with pytest.raises(RuntimeError, match="s3://"):
            emulator.delivered_objects()
        await put(emulator, records[:120])
        await put(emulator, records[120:])
        assert await objects(s3) == {}  # buffered, not yet written
        await emulator.flush()
        [(key, content)] = (await objects(s3)).items()
        assert emulator.stats.objects_written == 1
    match = KEY.fullmatch(key)
    assert match is not None, key
    assert (match["prefix"], match["stream"], match["ext"]) == ("raw/", "aws-ml-cert", None)
    assert content == b"".join(records)


async def test_gzip_objects_in_s3(moto: str, s3: Any) -> None:
    records = [b"line %d\n" % i for i in range(50)]
    async with Emulator(
        s3_bucket=BUCKET, s3_endpoint_url=moto, compression="GZIP", prefix="legacy"
    ) as emulator:
        await put(emulator, records)
    [(key, content)] = (await objects(s3)).items()  # stop() flushed it
    assert key.startswith("legacy2")  # the date path glued on, as Firehose does
    assert key.endswith(".gz")
    assert gzip.decompress(content) == b"".join(records)


async def test_a_failing_bucket_keeps_the_records_and_refuses_past_the_bound(
    moto: str, s3: Any
) -> None:
    """NoSuchBucket: the write fails, nothing is lost, calls past 2x the size hint get a
    retriable 503, and once the bucket is back every accepted record is written once."""
    await s3.create_bucket(Bucket=BUCKET)
    async with Emulator(
        s3_bucket=BUCKET, s3_endpoint_url=moto, buffer_size_bytes=1000, buffer_interval_s=600
    ) as emulator:
        await s3.delete_bucket(Bucket=BUCKET)
        first = [b"a" * 99 + b"\n"] * 10  # 1000 bytes: due, and the write fails
        await put(emulator, first)
        assert emulator.stats.write_failures >= 1
        assert emulator.buffered_bytes("aws-ml-cert") == 1000
        with pytest.raises(DestinationError, match="NoSuchBucket"):
            await emulator.flush()
        second = [b"b" * 99 + b"\n"] * 10  # fits under the 2000-byte hold limit: kept
        await put(emulator, second)
        with pytest.raises(ClientError) as refused:
            await put(emulator, [b"c\n"])
        error = refused.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert error["Error"]["Code"] == "ServiceUnavailableException"
        assert "cannot write to its destination" in error["Error"]["Message"]
        assert emulator.stats.calls_destination_unavailable >= 1
        await s3.create_bucket(Bucket=BUCKET)
        for _ in range(100):  # the retry timer writes it (backoff at most 1 s)
            if emulator.buffered_bytes("aws-ml-cert") == 0:
                break
            await asyncio.sleep(0.1)
        assert emulator.buffered_bytes("aws-ml-cert") == 0
        assert b"".join(emulator.stored_records("aws-ml-cert")) == b"".join(first + second)
    stored = b"".join((await objects(s3)).values())
    assert sorted(stored.splitlines(True)) == sorted(first + second)


async def test_an_unreachable_store_fails_start_with_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    emulator = Emulator(s3_bucket=BUCKET, s3_endpoint_url=url)
    with pytest.raises(DestinationError, match=re.escape(f"s3://{BUCKET} at {url}")):
        await emulator.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = emulator.endpoint_url


async def test_cli_delivers_to_s3_and_flushes_on_sigterm(moto: str, s3: Any) -> None:
    args = ("--s3-endpoint-url", moto, "--s3-bucket", BUCKET, "--buffer-interval", "600")
    async with run_emulator_process(None, *args) as process:
        async with aioboto3.Session().client(
            "firehose", region_name="us-east-1", endpoint_url=process.endpoint_url
        ) as firehose:
            await firehose.put_record_batch(
                DeliveryStreamName="aws-ml-cert", Records=[{"Data": b"x\n"}] * 25
            )
        assert await objects(s3) == {}
        assert await process.stop() == 0
    [(key, content)] = (await objects(s3)).items()
    assert KEY.fullmatch(key) is not None, key
    assert content == b"x\n" * 25


def test_cli_with_an_unreachable_store_exits_1_without_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "emulator", "--port", "0",
         "--s3-endpoint-url", url, "--s3-bucket", BUCKET],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot start" in result.stderr
    assert url in result.stderr
