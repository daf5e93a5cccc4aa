"""Error answers end to end, over real HTTP from a scripted Firehose: one attempt per call (no
hidden botocore retries), the contract's retry table, and a ledger that closes when the target
turns unusable mid-run."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web

from ingest.errors import AccessDeniedError, FirehoseError, ServerError, ThrottledError
from ingest.producer import FailedRecord, Producer

FAST: dict[str, float] = {"backoff_base_s": 0.001, "backoff_cap_s": 0.005, "linger_s": 0.0}


@dataclass
class ScriptedFirehose:
    """Answers every call with `status`/`code` (200: all entries delivered); after `ok_calls`
    successful PutRecordBatch calls. Counts calls per X-Amz-Target operation."""

    status: int = 200
    code: str = ""
    ok_calls: int = 0
    latency_s: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    stored: list[bytes] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        operation = request.headers["X-Amz-Target"].split(".")[-1]
        self.calls[operation] = self.calls.get(operation, 0) + 1
        puts = self.calls.get("PutRecordBatch", 0)
        await asyncio.sleep(self.latency_s)
        if self.status == 200 or (operation == "PutRecordBatch" and puts <= self.ok_calls):
            return self.delivered(body)
        error = {"__type": self.code, "message": f"scripted {self.code}"} if self.code else {}
        return web.Response(status=self.status, body=orjson.dumps(error))

    def delivered(self, body: bytes) -> web.Response:
        sent = orjson.loads(body)["Records"]
        self.stored += [base64.b64decode(entry["Data"]) for entry in sent]
        answer = {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"} for _ in sent]}
        return web.Response(body=orjson.dumps(answer))


@pytest.fixture
def firehose() -> ScriptedFirehose:
    return ScriptedFirehose()


@pytest.fixture
async def endpoint(firehose: ScriptedFirehose, serve_post: Callable[..., Awaitable[str]]) -> str:
    return await serve_post(firehose.handle)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(503, "ServiceUnavailableException", ThrottledError), (500, "", ServerError),
     (502, "", ServerError)],
)  # fmt: skip
async def test_check_target_makes_one_attempt_botocore_does_not_retry(
    firehose: ScriptedFirehose, endpoint: str, status: int, code: str, expected: type
) -> None:
    firehose.status, firehose.code = status, code
    async with Producer(endpoint_url=endpoint) as producer:
        with pytest.raises(expected):
            await producer.check_target()
    assert firehose.calls == {"DescribeDeliveryStream": 1}


async def test_a_transient_error_is_sent_exactly_max_attempts_times(
    firehose: ScriptedFirehose, endpoint: str
) -> None:
    firehose.status = 502
    failed: list[FailedRecord] = []
    async with Producer(
        endpoint_url=endpoint, max_attempts=3, on_failure=failed.extend, **FAST
    ) as producer:
        receipt = await producer.put(b"x\n")
    assert firehose.calls == {"PutRecordBatch": 3}
    assert receipt.attempts == 3
    assert [record.reason for record in failed] == ["server_error"]
    assert "may have been stored" in failed[0].message  # a 502 is ambiguous
    stats = producer.stats()
    assert stats.records_retried == 2
    assert stats.duplicates_possible == 2
    assert stats.requests == {"server_error": 3}


@pytest.mark.parametrize(
    ("status", "code", "reason", "attempts", "fatal"),
    [
        (503, "ServiceUnavailableException", "throttled", 3, False),
        (500, "InternalFailure", "server_error", 3, False),
        (504, "", "server_error", 3, False),
        (400, "ResourceNotFoundException", "stream_not_found", 1, True),
        (400, "InvalidArgumentException", "invalid_argument", 1, False),
        (400, "ValidationException", "validation", 1, False),
        (400, "InvalidKMSResourceException", "invalid_argument", 1, False),
        (400, "InvalidSourceException", "invalid_argument", 1, False),
        (400, "AccessDeniedException", "access_denied", 1, True),
        (403, "", "access_denied", 1, True),
        (400, "ExpiredTokenException", "credentials", 1, True),
        (400, "UnrecognizedClientException", "credentials", 1, True),
    ],
)
async def test_the_contract_retry_table_holds_end_to_end(
    firehose: ScriptedFirehose,
    endpoint: str,
    status: int,
    code: str,
    reason: str,
    attempts: int,
    fatal: bool,
) -> None:
    firehose.status, firehose.code = status, code
    failed: list[FailedRecord] = []
    async with Producer(
        endpoint_url=endpoint, max_attempts=3, on_failure=failed.extend, **FAST
    ) as producer:
        await producer.put(b"x\n")
        await producer.flush()
        if fatal:  # the target is unusable: later puts fail fast with the typed error
            with pytest.raises(FirehoseError, match=code or str(status)):
                await producer.put(b"y\n")
        else:
            await producer.put(b"y\n")
    assert firehose.calls["PutRecordBatch"] == attempts * (1 if fatal else 2)
    assert {record.reason for record in failed} == {reason}
    assert {record.attempts for record in failed} == {attempts}


async def test_access_denied_mid_run_settles_every_record_and_stops_intake(
    firehose: ScriptedFirehose, endpoint: str
) -> None:
    firehose.status, firehose.code, firehose.ok_calls = 400, "AccessDeniedException", 3
    firehose.latency_s = 0.01
    failed: list[FailedRecord] = []
    records = [b"%d\n" % i for i in range(10_000)]
    async with Producer(
        endpoint_url=endpoint,
        max_inflight=4,
        max_queue_records=2000,
        on_failure=failed.extend,
        **FAST,
    ) as producer:
        with pytest.raises(AccessDeniedError, match="lack firehose:PutRecordBatch"):
            await producer.put_many(records)
        with pytest.raises(AccessDeniedError):
            producer.put_nowait(b"late\n")
    stats = producer.stats()
    assert stats.records_pending == 0
    assert stats.records_put == stats.records_delivered + stats.records_failed_total
    assert stats.records_delivered == len(firehose.stored) > 0
    assert set(stats.records_failed) == {"access_denied"}
    assert sorted(r.data for r in failed) == sorted(set(records[: stats.records_put]) - set(
        firehose.stored
    ))  # fmt: skip
