"""Fixtures for the producer's tests: an in-process emulator and a moto stream with S3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aioboto3
import pytest

MOTO_BUCKET = "ingest-producer-test"
MOTO_STREAM = "producer-test"


@dataclass(frozen=True)
class MotoTarget:
    endpoint_url: str
    stream: str = MOTO_STREAM
    bucket: str = MOTO_BUCKET

    async def s3_objects(self) -> list[bytes]:
        """Every object body in the bucket, in key order."""
        session = aioboto3.Session(region_name="us-east-1")
        bodies: list[bytes] = []
        async with session.client("s3", endpoint_url=self.endpoint_url) as s3:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket):
                for item in page.get("Contents", []):
                    answer = await s3.get_object(Bucket=self.bucket, Key=item["Key"])
                    bodies.append(await answer["Body"].read())
        return bodies


@pytest.fixture
async def moto_stream(moto: str) -> MotoTarget:
    """A DirectPut stream on moto (reset first) delivering to an S3 bucket."""
    session = aioboto3.Session(region_name="us-east-1")
    async with (
        session.client("s3", endpoint_url=moto) as s3,
        session.client("firehose", endpoint_url=moto) as firehose,
    ):
        await s3.create_bucket(Bucket=MOTO_BUCKET)
        destination: dict[str, Any] = {
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{MOTO_BUCKET}",
        }
        await firehose.create_delivery_stream(
            DeliveryStreamName=MOTO_STREAM,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration=destination,
        )
    return MotoTarget(moto)
