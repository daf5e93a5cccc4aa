"""A connection that was never made cannot have stored anything (issue 11): records that only
ever met "connection refused" are not reported as "may have been stored", whether their retries
ran out or the close deadline cut them off while backing off."""

from __future__ import annotations

import asyncio

import aioboto3
import pytest

from ingest.producer import FailedRecord, Producer
from tests.conftest import free_port

DUMMY = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


async def test_refused_connections_are_not_ambiguous_at_the_close_deadline() -> None:
    failed: list[FailedRecord] = []
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connect is refused
    producer = Producer(
        stream="aws-ml-cert",
        region="us-east-1",
        endpoint_url=endpoint,
        on_failure=failed.extend,
        session=aioboto3.Session(**DUMMY, region_name="us-east-1"),
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
        linger_s=0.0,
    )
    async with producer:
        await producer.put_many([b"x\n"] * 50)
        await producer.close(timeout=0.5)  # cut off while backing off between refused connects
    assert failed
    assert {record.reason for record in failed} == {"close_timeout"}
    assert not any(record.maybe_stored for record in failed)
    assert all("may have been stored" not in record.message for record in failed)
    assert producer.stats().duplicates_possible == 0


@pytest.mark.parametrize(
    ("scheme", "maybe_stored"),
    [
        ("https", False),  # cut off in the TLS handshake: no byte of the request went out
        ("http", True),  # cut off waiting for the answer: the request was written
    ],
)
async def test_a_request_cut_off_is_ambiguous_only_once_written(
    scheme: str, maybe_stored: bool
) -> None:
    received: list[bytes] = []
    arrived, done = asyncio.Event(), asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(65536))  # a TLS hello, or the POST
        arrived.set()
        await done.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    failed: list[FailedRecord] = []
    producer = Producer(
        endpoint_url=f"{scheme}://127.0.0.1:{port}",
        on_failure=failed.extend,
        session=aioboto3.Session(**DUMMY, region_name="us-east-1"),
        linger_s=0.0,
    )
    async with server, producer:
        await producer.put_many([b"x\n"] * 5)
        await asyncio.wait_for(arrived.wait(), 10)
        await producer.close(timeout=0.3)
        done.set()
    assert (b"POST" in received[0]) is (scheme == "http")
    assert [record.reason for record in failed] == ["close_timeout"] * 5
    assert all(record.maybe_stored is maybe_stored for record in failed)
