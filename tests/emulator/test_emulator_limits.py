"""Hard limits and bad input: the exact 4xx AWS answers, never a 500; nothing stored on error."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.emulator import Emulator
from ingest.emulator.protocol import MAX_BODY_BYTES
from ingest.emulator.streams import Stream
from ingest.firehose.limits import MAX_BATCH_BYTES, MAX_RECORD_BYTES, MAX_RECORDS_PER_BATCH

STREAM = "aws-ml-cert"
# The emulator fixture lives across examples; every example cleans up after itself.
REUSE = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
Batch = Callable[..., dict[str, Any]]


@REUSE
@given(count=st.integers(1, MAX_RECORDS_PER_BATCH + 100))
async def test_record_count_limit(emulator: Emulator, call: Any, batch: Batch, count: int) -> None:
    before = len(emulator.stored_records(STREAM))
    status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch([b"r\n"] * count))
    if count <= MAX_RECORDS_PER_BATCH:
        assert (status, body["FailedPutCount"], len(body["RequestResponses"])) == (200, 0, count)
        assert len(emulator.stored_records(STREAM)) == before + count
    else:
        assert (status, body["__type"]) == (400, "ValidationException")
        assert "500" in body["message"]
        assert len(emulator.stored_records(STREAM)) == before


async def test_empty_batch_is_a_validation_error(emulator: Emulator, call: Any) -> None:
    status, body = await call(
        emulator.endpoint_url, "PutRecordBatch", {"DeliveryStreamName": STREAM, "Records": []}
    )
    assert (status, body["__type"]) == (400, "ValidationException")


@REUSE
@given(size=st.integers(MAX_RECORD_BYTES - 2, MAX_RECORD_BYTES + 2), where=st.integers(0, 2))
async def test_record_size_limit_counts_raw_bytes(
    emulator: Emulator, call: Any, batch: Batch, size: int, where: int
) -> None:
    datas = [b"a", b"b", b"c"]
    datas[where] = b"x" * size
    status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch(datas))
    if size <= MAX_RECORD_BYTES:
        assert status == 200
        assert body["FailedPutCount"] == 0
    else:
        assert (status, body["__type"]) == (400, "ValidationException")
        assert f"records.{where + 1}.member.data" in body["message"]


async def test_empty_record_is_allowed(emulator: Emulator, call: Any, batch: Batch) -> None:
    status, _ = await call(emulator.endpoint_url, "PutRecordBatch", batch([b"", b"x"]))
    assert status == 200
    assert emulator.stored_records(STREAM) == [b"", b"x"]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(extra=st.integers(-2, 2))
async def test_batch_size_limit_is_4_mib_of_raw_bytes(
    emulator: Emulator, call: Any, batch: Batch, extra: int
) -> None:
    """Four full-size records plus a remainder that lands exactly on (or around) 4 MiB."""
    remainder = MAX_BATCH_BYTES - 4 * MAX_RECORD_BYTES + extra
    datas = [b"x" * MAX_RECORD_BYTES] * 4 + [b"y" * remainder]
    status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch(datas))
    if extra <= 0:
        assert status == 200
        assert body["FailedPutCount"] == 0
    else:
        assert (status, body["__type"]) == (400, "InvalidArgumentException")
        assert body["message"] == "Records size exceeds 4 MB limit"


async def test_put_record_over_the_size_limit(emulator: Emulator, call: Any) -> None:
    import base64

    for size, expected in ((MAX_RECORD_BYTES, 200), (MAX_RECORD_BYTES + 1, 400)):
        data = base64.b64encode(b"x" * size).decode()
        status, body = await call(
            emulator.endpoint_url,
            "PutRecord",
            {"DeliveryStreamName": STREAM, "Record": {"Data": data}},
        )
        assert status == expected
        if expected == 400:
            assert body["__type"] == "ValidationException"


BAD_BODIES: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("PutRecordBatch", b"{not json", "SerializationException"),
    ("PutRecordBatch", b"[1, 2]", "SerializationException"),
    ("PutRecordBatch", {"Records": [{"Data": "eA=="}]}, "ValidationException"),
    ("PutRecordBatch", {"DeliveryStreamName": STREAM}, "ValidationException"),
    (
        "PutRecordBatch",
        {"DeliveryStreamName": 5, "Records": [{"Data": ""}]},
        "SerializationException",
    ),
    ("PutRecordBatch", {"DeliveryStreamName": STREAM, "Records": "x"}, "SerializationException"),
    ("PutRecordBatch", {"DeliveryStreamName": STREAM, "Records": [5]}, "SerializationException"),
    ("PutRecordBatch", {"DeliveryStreamName": STREAM, "Records": [{}]}, "ValidationException"),
    (
        "PutRecordBatch",
        {"DeliveryStreamName": STREAM, "Records": [{"Data": "eA=="}, {"Data": "!!"}]},
        "SerializationException",
    ),
    (
        "PutRecordBatch",
        {"DeliveryStreamName": STREAM, "Records": [{"Data": "eA"}]},
        "SerializationException",
    ),
    ("PutRecordBatch", {"DeliveryStreamName": "bad name!", "Records": []}, "ValidationException"),
    ("PutRecord", {"DeliveryStreamName": STREAM}, "ValidationException"),
    ("PutRecord", {"DeliveryStreamName": STREAM, "Record": {"Data": 7}}, "SerializationException"),
    ("CreateDeliveryStream", {"DeliveryStreamName": "s"}, "InvalidArgumentException"),
    ("ListDeliveryStreams", {"Limit": 0}, "ValidationException"),
    ("DescribeDeliveryStream", b"", "ValidationException"),
]


@pytest.mark.parametrize(("operation", "body", "code"), BAD_BODIES)
async def test_bad_input_gets_the_aws_4xx(
    emulator: Emulator, call: Any, operation: str, body: bytes | dict[str, Any], code: str
) -> None:
    status, answer = await call(emulator.endpoint_url, operation, body)
    assert (status, answer["__type"]) == (400, code)
    assert answer["message"]
    assert emulator.stored_records(STREAM) == []


@REUSE
@given(
    operation=st.sampled_from(
        [
            "PutRecordBatch",
            "PutRecord",
            "CreateDeliveryStream",
            "DescribeDeliveryStream",
            "ListDeliveryStreams",
            "DeleteDeliveryStream",
        ]
    ),
    body=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            # Unbounded integers and floats: JSON allows them, orjson cannot encode them all.
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "DeliveryStreamName",
                            "Records",
                            "Record",
                            "Data",
                            "Limit",
                            "ExtendedS3DestinationConfiguration",
                            "BufferingHints",
                            "x",
                        ]
                    ),
                    inner,
                )
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
    ),
)
async def test_arbitrary_bodies_never_get_a_500(
    emulator: Emulator, call: Any, operation: str, body: bytes
) -> None:
    status, answer = await call(emulator.endpoint_url, operation, body)
    assert status < 500, answer
    if status >= 400:
        assert set(answer) == {"__type", "message"}


async def test_missing_authorization_is_rejected_like_aws(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    status, body = await call(
        emulator.endpoint_url, "PutRecordBatch", batch([b"x"]), headers={"Authorization": ""}
    )
    assert (status, body["__type"]) == (400, "MissingAuthenticationTokenException")
    assert emulator.stored_records(STREAM) == []


@pytest.mark.parametrize(
    "target", ["Firehose_20150804.TagDeliveryStream", "Kinesis_20131202.PutRecord", ""]
)
async def test_unknown_operation(emulator: Emulator, call: Any, target: str) -> None:
    status, body = await call(emulator.endpoint_url, "", {}, headers={"X-Amz-Target": target or ""})
    assert (status, body["__type"]) == (400, "UnknownOperationException")


async def _raw_exchange(endpoint: str, head: bytes, body_part: bytes) -> bytes:
    host, port = endpoint.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + body_part)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()


def _head(extra: str) -> bytes:
    return (
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: x\r\n"
        "X-Amz-Target: Firehose_20150804.PutRecordBatch\r\n" + extra + "\r\n"
    ).encode()


async def test_oversized_content_length_is_refused_before_the_body_is_read(
    emulator: Emulator,
) -> None:
    """The server answers 413 and closes while most of the announced body was never sent."""
    head = _head(f"Content-Length: {MAX_BODY_BYTES * 10}\r\n")
    answer = await _raw_exchange(emulator.endpoint_url, head, b"{" * 1000)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"InvalidArgumentException" in answer


async def test_oversized_chunked_body_is_refused_by_a_bounded_read(emulator: Emulator) -> None:
    """No Content-Length to check: the read stops at the bound. The client may see the 413 or,
    as the server closes with unread data, a reset; either way the server refused it."""
    chunk = b"x" * (1024 * 1024)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(9))
    try:
        answer = await _raw_exchange(
            emulator.endpoint_url, _head("Transfer-Encoding: chunked\r\n"), chunks
        )
    except ConnectionResetError:
        answer = b"HTTP/1.1 413 (reset before the client read it)"
    assert answer.startswith(b"HTTP/1.1 413")
    assert emulator.stats.client_errors == 1
    assert emulator.stored_records(STREAM) == []


@pytest.mark.parametrize(
    ("hints", "code"),
    [
        ({"SizeInMBs": True}, "SerializationException"),
        ({"IntervalInSeconds": "60"}, "SerializationException"),
        ({"SizeInMBs": 129}, "ValidationException"),
        ({"SizeInMBs": 0}, "ValidationException"),
        ({"IntervalInSeconds": 901}, "ValidationException"),
        ({"IntervalInSeconds": -1}, "ValidationException"),
    ],
)
async def test_buffering_hints_outside_the_aws_ranges_are_refused(
    emulator: Emulator, call: Any, hints: dict[str, Any], code: str
) -> None:
    destination = {"RoleARN": "arn:aws:iam::1:role/r", "BucketARN": "arn:aws:s3:::b"}
    status, body = await call(
        emulator.endpoint_url,
        "CreateDeliveryStream",
        {
            "DeliveryStreamName": "hinted",
            "ExtendedS3DestinationConfiguration": {**destination, "BufferingHints": hints},
        },
    )
    assert (status, body["__type"]) == (400, code)
    [field] = hints
    assert field[0].lower() + field[1:] in body["message"] or field in body["message"]
    assert "hinted" not in emulator._backend.streams


async def test_an_unexpected_bug_is_answered_as_an_aws_internal_failure(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not aiohttp's bare text 500: the JSON error and request id a client can parse."""

    def broken(self: Stream) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Stream, "describe", broken)
    request = urllib.request.Request(
        emulator.endpoint_url + "/",
        data=b'{"DeliveryStreamName": "aws-ml-cert"}',
        headers={"X-Amz-Target": "Firehose_20150804.DescribeDeliveryStream", "Authorization": "x"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=30)
    answer = raised.value
    assert answer.code == 500
    assert answer.headers["x-amzn-RequestId"]
    assert answer.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert json.loads(answer.read()) == {
        "__type": "InternalFailure",
        "message": "Internal service failure.",
    }
    answer.close()
