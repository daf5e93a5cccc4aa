"""Fixtures for the emulator's tests: an in-process emulator, aioboto3 clients, raw HTTP calls."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioboto3
import aiohttp
import orjson
import pytest
from botocore.config import Config

from ingest.emulator import Emulator

TARGET = "Firehose_20150804."
AUTH = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/firehose/aws4_request, Signature=0"
# One attempt: the tests look at what the server answered, not at botocore's retries.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def firehose_for() -> Callable[[Emulator], Any]:
    """``async with firehose_for(emulator) as client``: an aioboto3 client for that emulator."""

    def open_client(emulator: Emulator) -> Any:
        return aioboto3.Session().client(
            "firehose",
            region_name="us-east-1",
            endpoint_url=emulator.endpoint_url,
            config=NO_RETRIES,
        )

    return open_client


@pytest.fixture
async def firehose(
    emulator: Emulator, firehose_for: Callable[[Emulator], Any]
) -> AsyncIterator[Any]:
    """An aioboto3 Firehose client pointed at the emulator."""
    async with firehose_for(emulator) as client:
        yield client


class RawCall:
    """Plain HTTP calls to an endpoint, so tests can send what botocore never would."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __call__(
        self,
        endpoint: str,
        operation: str,
        body: bytes | dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": TARGET + operation,
            "Authorization": AUTH,
            **(headers or {}),
        }
        sent = {k: v for k, v in sent.items() if v}
        # BytesIO: aiohttp warns when a large body is given as raw bytes.
        payload = io.BytesIO(data)
        async with self.session.post(endpoint + "/", data=payload, headers=sent) as response:
            return response.status, orjson.loads(await response.read())


@pytest.fixture
async def call() -> AsyncIterator[RawCall]:
    async with aiohttp.ClientSession() as session:
        yield RawCall(session)


@pytest.fixture
def batch() -> Callable[..., dict[str, Any]]:
    """Build a PutRecordBatch body: batch(datas, stream="aws-ml-cert")."""

    def build(datas: list[bytes], stream: str = "aws-ml-cert") -> dict[str, Any]:
        return {
            "DeliveryStreamName": stream,
            "Records": [{"Data": base64.b64encode(d).decode()} for d in datas],
        }

    return build
