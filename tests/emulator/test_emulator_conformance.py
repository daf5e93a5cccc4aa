"""The same aioboto3 calls against moto_server and the emulator, and their results compared.

Each test runs one scenario on both targets and asserts that the emulator answers what moto
answers (same data, same error code, HTTP status and message), wherever moto implements the
behaviour: create/describe/list/delete, put and read back, unknown stream. Values that are
random by nature (RecordIds, timestamps) are checked for shape, then masked before comparing.
Where AWS returns more than moto (DescribeDeliveryStream's compression and encryption fields),
moto's answer must be contained in the emulator's. moto writes one S3 object per call, the
emulator buffers: stored content is compared as the multiset of lines, keys by their layout.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ingest.emulator import Emulator

BUCKET = "conformance-bucket"
ROLE_ARN = "arn:aws:iam::123456789012:role/firehose"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
KEY = re.compile(
    r"(?P<prefix>.*?)(?P<hour>\d{4}/\d\d/\d\d/\d\d)/(?P<stream>.+)-1-"
    r"(?P<time>\d{4}(-\d\d){5})-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
MASKED = "<masked>"


@dataclass
class Target:
    name: str
    client: Any
    s3: Any | None
    emulator: Emulator | None

    async def create(self, stream: str, prefix: str = "", extended: bool = True) -> Any:
        config: dict[str, Any] = {"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{BUCKET}"}
        if extended:
            config["BufferingHints"] = {"SizeInMBs": 1, "IntervalInSeconds": 60}
        if prefix:
            config["Prefix"] = prefix
        kind = "ExtendedS3DestinationConfiguration" if extended else "S3DestinationConfiguration"
        return await outcome(
            self.client.create_delivery_stream(
                DeliveryStreamName=stream, DeliveryStreamType="DirectPut", **{kind: config}
            )
        )

    async def objects(self) -> dict[str, bytes]:
        """Every delivered object: key -> content."""
        if self.emulator is not None:
            await self.emulator.flush()
            root = self.emulator.data_dir
            return {
                p.relative_to(root).as_posix(): p.read_bytes()
                for p in self.emulator.delivered_objects()
            }
        assert self.s3 is not None
        listing = await self.s3.list_objects_v2(Bucket=BUCKET)
        found = {}
        for entry in listing.get("Contents", []):
            obj = await self.s3.get_object(Bucket=BUCKET, Key=entry["Key"])
            found[entry["Key"]] = await obj["Body"].read()
        return found


async def outcome(call: Awaitable[dict[str, Any]]) -> Any:
    """("ok", response without metadata and random values) or ("error", status, code, message)."""
    try:
        response = await call
    except ClientError as error:
        meta, err = error.response["ResponseMetadata"], error.response["Error"]
        return ("error", meta["HTTPStatusCode"], err["Code"], err["Message"])
    assert response.pop("ResponseMetadata")["HTTPStatusCode"] == 200
    return ("ok", _mask(response))


def _mask(value: Any) -> Any:
    """RecordIds (non-empty, unique per batch) and timestamps replaced by a placeholder."""
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if key == "RecordId":
                assert isinstance(item, str)
                assert item
                masked[key] = MASKED
            elif key in ("CreateTimestamp", "LastUpdateTimestamp"):
                assert isinstance(item, datetime)
            else:
                masked[key] = _mask(item)
        return masked
    if isinstance(value, list):
        return [_mask(item) for item in value]
    return value


def _projected(value: Any, like: Any) -> Any:
    """``value`` restricted to the keys present in ``like`` (recursively), to compare subsets."""
    if isinstance(value, dict) and isinstance(like, dict):
        return {k: _projected(value[k], like[k]) for k in like if k in value}
    if isinstance(value, list | tuple) and type(value) is type(like) and len(value) == len(like):
        return type(value)(_projected(v, w) for v, w in zip(value, like, strict=True))
    return value


Scenario = Callable[[Target], Awaitable[Any]]


@pytest.fixture
async def on_both(moto: str, tmp_path: Path) -> AsyncIterator[Callable[[Scenario], Any]]:
    """``await on_both(scenario)`` -> (moto's result, the emulator's result)."""
    session = aioboto3.Session()
    region = {"region_name": "us-east-1", "config": NO_RETRIES}
    async with (
        Emulator(data_dir=tmp_path / "data", streams=()) as emulator,
        session.client("firehose", endpoint_url=moto, **region) as moto_client,
        session.client("s3", endpoint_url=moto, **region) as s3,
        session.client("firehose", endpoint_url=emulator.endpoint_url, **region) as emu_client,
    ):
        await s3.create_bucket(Bucket=BUCKET)
        targets = (
            Target("moto", moto_client, s3, None),
            Target("emulator", emu_client, None, emulator),
        )

        async def run(scenario: Scenario) -> tuple[Any, Any]:
            return await scenario(targets[0]), await scenario(targets[1])

        yield run


@pytest.mark.parametrize("extended", [True, False])
async def test_create_answers_the_same_arn(on_both: Any, extended: bool) -> None:
    async def scenario(target: Target) -> Any:
        return await target.create("orders", extended=extended)

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto == (
        "ok",
        {"DeliveryStreamARN": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders"},
    )


@pytest.mark.parametrize("extended", [True, False])
async def test_describe_contains_everything_moto_answers(on_both: Any, extended: bool) -> None:
    async def scenario(target: Target) -> Any:
        await target.create("orders", prefix="raw/", extended=extended)
        return await outcome(target.client.describe_delivery_stream(DeliveryStreamName="orders"))

    moto, emulator = await on_both(scenario)
    assert moto[0] == emulator[0] == "ok"
    assert _projected(emulator, moto) == moto
    description = moto[1]["DeliveryStreamDescription"]
    assert (description["DeliveryStreamStatus"], description["DeliveryStreamType"]) == (
        "ACTIVE",
        "DirectPut",
    )
    # What AWS also answers and moto leaves out, filled in with the hints in force.
    [destination] = emulator[1]["DeliveryStreamDescription"]["Destinations"]
    for kind in ("S3DestinationDescription", "ExtendedS3DestinationDescription"):
        s3 = destination[kind]
        assert s3["Prefix"] == "raw/"
        assert s3["CompressionFormat"] == "UNCOMPRESSED"
        assert s3["EncryptionConfiguration"] == {"NoEncryptionConfig": "NoEncryption"}
        assert set(s3["BufferingHints"]) == {"SizeInMBs", "IntervalInSeconds"}


async def test_list_sorts_paginates_and_filters_alike(on_both: Any) -> None:
    async def scenario(target: Target) -> Any:
        for name in ("charlie", "alpha", "bravo"):
            await target.create(name)
        list_streams = target.client.list_delivery_streams
        return [
            await outcome(list_streams()),
            await outcome(list_streams(Limit=2)),
            await outcome(list_streams(Limit=2, ExclusiveStartDeliveryStreamName="bravo")),
            await outcome(list_streams(DeliveryStreamType="KinesisStreamAsSource")),
        ]

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto[1] == (
        "ok",
        {"DeliveryStreamNames": ["alpha", "bravo"], "HasMoreDeliveryStreams": True},
    )
    assert moto[2][1]["DeliveryStreamNames"] == ["charlie"]


async def test_delete_removes_the_stream_alike(on_both: Any) -> None:
    async def scenario(target: Target) -> Any:
        await target.create("orders")
        return [
            await outcome(target.client.delete_delivery_stream(DeliveryStreamName="orders")),
            await outcome(target.client.list_delivery_streams()),
            await outcome(target.client.describe_delivery_stream(DeliveryStreamName="orders")),
        ]

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto[0] == ("ok", {})
    assert moto[2][:3] == ("error", 400, "ResourceNotFoundException")


async def test_creating_an_existing_stream_fails_alike(on_both: Any) -> None:
    async def scenario(target: Target) -> Any:
        await target.create("orders")
        return await target.create("orders")

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto[:3] == ("error", 400, "ResourceInUseException")


@pytest.mark.parametrize("operation", ["put_record", "put_record_batch", "describe", "delete"])
async def test_unknown_stream_fails_alike(on_both: Any, operation: str) -> None:
    async def scenario(target: Target) -> Any:
        client = target.client
        calls = {
            "put_record": lambda: client.put_record(
                DeliveryStreamName="nope", Record={"Data": b"x"}
            ),
            "put_record_batch": lambda: client.put_record_batch(
                DeliveryStreamName="nope", Records=[{"Data": b"x"}]
            ),
            "describe": lambda: client.describe_delivery_stream(DeliveryStreamName="nope"),
            "delete": lambda: client.delete_delivery_stream(DeliveryStreamName="nope"),
        }
        return await outcome(calls[operation]())

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto[:3] == ("error", 400, "ResourceNotFoundException")
    assert "nope" in moto[3]


async def test_puts_answer_alike(on_both: Any) -> None:
    """One RecordId per record (empty records allowed), none failed, not encrypted."""
    records = [{"Data": b""}, *({"Data": b'{"seq": %d}\n' % i} for i in range(20))]

    async def scenario(target: Target) -> Any:
        await target.create("orders")
        batch = await target.client.put_record_batch(DeliveryStreamName="orders", Records=records)
        ids = {entry["RecordId"] for entry in batch["RequestResponses"]}
        assert len(ids) == len(records)  # unique within the batch, on both targets
        return [
            await outcome(
                target.client.put_record_batch(DeliveryStreamName="orders", Records=records)
            ),
            await outcome(
                target.client.put_record(DeliveryStreamName="orders", Record={"Data": b"y\n"})
            ),
        ]

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto[0] == (
        "ok",
        {
            "FailedPutCount": 0,
            "Encrypted": False,
            "RequestResponses": [{"RecordId": MASKED}] * len(records),
        },
    )
    assert moto[1] == ("ok", {"RecordId": MASKED, "Encrypted": False})


async def test_records_are_read_back_alike_under_the_firehose_key_layout(on_both: Any) -> None:
    batch = [b'{"seq": %d}\n' % i for i in range(10)]

    async def scenario(target: Target) -> Any:
        await target.create("orders", prefix="raw/")
        await target.client.put_record_batch(
            DeliveryStreamName="orders", Records=[{"Data": d} for d in batch]
        )
        await target.client.put_record(
            DeliveryStreamName="orders", Record={"Data": b'{"seq": 10}\n'}
        )
        objects = await target.objects()
        layouts = set()
        for key in objects:
            match = KEY.fullmatch(key)
            assert match is not None, (target.name, key)
            # The folder and the name agree on the UTC hour of the object's oldest record.
            assert match["hour"].replace("/", "-") == match["time"][:13], key
            layouts.add((match["prefix"], match["stream"]))
        lines = sorted(line for content in objects.values() for line in content.splitlines(True))
        return layouts, lines

    moto, emulator = await on_both(scenario)
    assert emulator == moto
    assert moto == ({("raw/", "orders")}, sorted([*batch, b'{"seq": 10}\n']))


LAYOUT_FIELDS = {
    "Prefix": "events/!{timestamp:yyyy/MM}/!{firehose:random-string}/",
    "ErrorOutputPrefix": "failed/!{firehose:error-output-type}/!{timestamp:yyyy}/",
    "CompressionFormat": "GZIP",
    "FileExtension": ".ndjson.gz",
    "CustomTimeZone": "Asia/Tokyo",
}


@pytest.mark.parametrize("extended", [True, False])
async def test_layout_settings_are_described_alike(on_both: Any, extended: bool) -> None:
    """Every layout field as boto3 sends it: moto echoes them, the emulator answers the same
    (FileExtension and CustomTimeZone exist in the extended configuration only)."""
    kind = "ExtendedS3DestinationConfiguration" if extended else "S3DestinationConfiguration"
    fields = dict(LAYOUT_FIELDS)
    if not extended:
        del fields["FileExtension"], fields["CustomTimeZone"]

    async def scenario(target: Target) -> Any:
        config = {"RoleARN": ROLE_ARN, "BucketARN": f"arn:aws:s3:::{BUCKET}", **fields}
        created = await outcome(
            target.client.create_delivery_stream(DeliveryStreamName="laid-out", **{kind: config})
        )
        described = await outcome(
            target.client.describe_delivery_stream(DeliveryStreamName="laid-out")
        )
        return created, described

    moto, emulator = await on_both(scenario)
    assert emulator[0] == moto[0]
    assert _projected(emulator[1], moto[1]) == moto[1]
    [destination] = moto[1][1]["DeliveryStreamDescription"]["Destinations"]
    described = destination[
        "ExtendedS3DestinationDescription" if extended else "S3DestinationDescription"
    ]
    assert {k: described[k] for k in fields} == fields


async def test_objects_read_back_alike_from_s3_when_the_emulator_writes_to_s3(
    moto: str, tmp_path: Path
) -> None:
    """The emulator's S3 destination (moto's S3) against moto's own Firehose delivery: same
    key layout for a prefix ending in '/', same records."""
    session = aioboto3.Session()
    region = {"region_name": "us-east-1", "config": NO_RETRIES}
    records = [b'{"seq": %d}\n' % i for i in range(30)]
    async with (
        Emulator(s3_bucket="emulator-out", s3_endpoint_url=moto, streams=()) as emulator,
        session.client("firehose", endpoint_url=moto, **region) as moto_client,
        session.client("s3", endpoint_url=moto, **region) as s3,
        session.client("firehose", endpoint_url=emulator.endpoint_url, **region) as emu_client,
    ):
        await s3.create_bucket(Bucket=BUCKET)
        results = []
        for client, bucket in ((moto_client, BUCKET), (emu_client, "emulator-out")):
            await client.create_delivery_stream(
                DeliveryStreamName="orders",
                ExtendedS3DestinationConfiguration={
                    "RoleARN": ROLE_ARN,
                    "BucketARN": f"arn:aws:s3:::{bucket}",
                    "Prefix": "raw/",
                },
            )
            await client.put_record_batch(
                DeliveryStreamName="orders", Records=[{"Data": r} for r in records]
            )
            await emulator.flush()
            listing = await s3.list_objects_v2(Bucket=bucket)
            layouts, lines = set(), []
            for entry in listing.get("Contents", []):
                match = KEY.fullmatch(entry["Key"])
                assert match is not None, entry["Key"]
                layouts.add((match["prefix"], match["stream"]))
                body = await (await s3.get_object(Bucket=bucket, Key=entry["Key"]))["Body"].read()
                lines.extend(body.splitlines(True))
            results.append((layouts, sorted(lines)))
    assert results[0] == results[1] == ({("raw/", "orders")}, sorted(records))
