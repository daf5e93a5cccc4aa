"""The same aioboto3 calls against moto_server and the emulator give the same results.

Covers what moto implements: create/describe/list/delete, put and read back, unknown stream.
moto writes objects to its S3 (read back through S3), the emulator to files under data_dir.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import ClientError

from ingest.emulator import Emulator

BUCKET = "conformance-bucket"
ROLE_ARN = "arn:aws:iam::123456789012:role/firehose"
KEY = re.compile(
    r"(?P<prefix>.*?)\d{4}/\d\d/\d\d/\d\d/(?P<stream>.+)-1-\d{4}(-\d\d){5}-[0-9a-f-]{36}"
)


@dataclass
class Target:
    name: str
    client: Any
    s3: Any | None
    emulator: Emulator | None

    async def create(self, stream: str, prefix: str = "") -> dict[str, Any]:
        config: dict[str, Any] = {
            "RoleARN": ROLE_ARN,
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        }
        if prefix:
            config["Prefix"] = prefix
        response: dict[str, Any] = await self.client.create_delivery_stream(
            DeliveryStreamName=stream,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration=config,
        )
        return response

    async def objects(self) -> dict[str, bytes]:
        """Every delivered object: key -> content."""
        if self.emulator is not None:
            await self.emulator.flush()
            root = self.emulator.data_dir
            return {p.relative_to(root).as_posix(): p.read_bytes() for p in _files(root)}
        assert self.s3 is not None
        listing = await self.s3.list_objects_v2(Bucket=BUCKET)
        found = {}
        for entry in listing.get("Contents", []):
            obj = await self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])
            found[entry["Key"]] = await obj["Body"].read()
        return found


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


@pytest.fixture(params=["moto", "emulator"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    session = aioboto3.Session()
    if request.param == "moto":
        endpoint = request.getfixturevalue("moto")
        async with (
            session.client("firehose", region_name="us-east-1", endpoint_url=endpoint) as client,
            session.client("s3", region_name="us-east-1", endpoint_url=endpoint) as s3,
        ):
            await s3.create_bucket(Bucket=BUCKET)
            yield Target("moto", client, s3, None)
        return
    async with (
        Emulator(data_dir=tmp_path / "data", streams=()) as emulator,
        session.client(
            "firehose", region_name="us-east-1", endpoint_url=emulator.endpoint_url
        ) as client,
    ):
        yield Target("emulator", client, None, emulator)


async def test_create_returns_the_stream_arn(target: Target) -> None:
    response = await target.create("orders")
    assert response["DeliveryStreamARN"] == (
        "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders"
    )


async def test_describe_shows_an_active_direct_put_stream_with_its_s3_destination(
    target: Target,
) -> None:
    await target.create("orders", prefix="raw/")
    response = await target.client.describe_delivery_stream(DeliveryStreamName="orders")
    description = response["DeliveryStreamDescription"]
    assert description["DeliveryStreamName"] == "orders"
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["DeliveryStreamType"] == "DirectPut"
    assert description["VersionId"] == "1"
    assert description["HasMoreDestinations"] is False
    [destination] = description["Destinations"]
    assert destination["DestinationId"] == "destinationId-000000000001"
    extended = destination["ExtendedS3DestinationDescription"]
    assert extended["BucketARN"] == f"arn:aws:s3:::{BUCKET}"
    assert extended["RoleARN"] == ROLE_ARN
    assert extended["Prefix"] == "raw/"
    assert extended["BufferingHints"] == {"SizeInMBs": 1, "IntervalInSeconds": 60}


async def test_list_is_sorted_and_paginates(target: Target) -> None:
    for name in ("charlie", "alpha", "bravo"):
        await target.create(name)
    first = await target.client.list_delivery_streams(Limit=2)
    assert first["DeliveryStreamNames"] == ["alpha", "bravo"]
    assert first["HasMoreDeliveryStreams"] is True
    rest = await target.client.list_delivery_streams(
        Limit=2, ExclusiveStartDeliveryStreamName="bravo"
    )
    assert rest["DeliveryStreamNames"] == ["charlie"]
    assert rest["HasMoreDeliveryStreams"] is False


async def test_delete_removes_the_stream(target: Target) -> None:
    await target.create("orders")
    await target.client.delete_delivery_stream(DeliveryStreamName="orders")
    listed = await target.client.list_delivery_streams()
    assert listed["DeliveryStreamNames"] == []
    with pytest.raises(ClientError) as raised:
        await target.client.describe_delivery_stream(DeliveryStreamName="orders")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


async def test_creating_an_existing_stream_is_resource_in_use(target: Target) -> None:
    await target.create("orders")
    with pytest.raises(ClientError) as raised:
        await target.create("orders")
    assert raised.value.response["Error"]["Code"] == "ResourceInUseException"


@pytest.mark.parametrize("operation", ["put_record", "put_record_batch", "describe", "delete"])
async def test_unknown_stream_is_resource_not_found(target: Target, operation: str) -> None:
    client = target.client
    calls = {
        "put_record": lambda: client.put_record(DeliveryStreamName="nope", Record={"Data": b"x"}),
        "put_record_batch": lambda: client.put_record_batch(
            DeliveryStreamName="nope", Records=[{"Data": b"x"}]
        ),
        "describe": lambda: client.describe_delivery_stream(DeliveryStreamName="nope"),
        "delete": lambda: client.delete_delivery_stream(DeliveryStreamName="nope"),
    }
    with pytest.raises(ClientError) as raised:
        await calls[operation]()
    error = raised.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "nope" in error["Message"]


async def test_put_record_batch_answers_one_record_id_per_record(target: Target) -> None:
    await target.create("orders")
    records = [{"Data": f'{{"seq": {i}}}\n'.encode()} for i in range(20)]
    response = await target.client.put_record_batch(DeliveryStreamName="orders", Records=records)
    assert response["FailedPutCount"] == 0
    assert response["Encrypted"] is False
    entries = response["RequestResponses"]
    assert len(entries) == 20
    assert all(set(entry) == {"RecordId"} for entry in entries)
    assert len({entry["RecordId"] for entry in entries}) == 20


async def test_records_are_read_back_concatenated_under_the_firehose_key_layout(
    target: Target,
) -> None:
    await target.create("orders", prefix="raw/")
    batch = [f'{{"seq": {i}}}\n'.encode() for i in range(10)]
    await target.client.put_record_batch(
        DeliveryStreamName="orders", Records=[{"Data": d} for d in batch]
    )
    single = await target.client.put_record(
        DeliveryStreamName="orders", Record={"Data": b'{"seq": 10}\n'}
    )
    assert single["RecordId"]
    objects = await target.objects()
    # moto writes one object per call, the emulator buffers: compare the multiset of lines.
    lines = sorted(line for content in objects.values() for line in content.splitlines(True))
    assert lines == sorted([*batch, b'{"seq": 10}\n'])
    for key in objects:
        match = KEY.fullmatch(key)
        assert match is not None, key
        assert match["prefix"] == "raw/"
        assert match["stream"] == "orders"
