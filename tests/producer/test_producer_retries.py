"""Retries last until the record deadline (not a small count), and "may have been stored" follows a
record through all its attempts; over real HTTP from a scripted Firehose."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from ingest.producer import FailedRecord, Producer
from ingest.producer.config import ProducerConfig

FAST: dict[str, float] = {"backoff_base_s": 0.001, "backoff_cap_s": 0.005, "linger_s": 0.0}
THROTTLED = (503, "ServiceUnavailableException")  # not ambiguous: nothing was stored
BAD_GATEWAY = (502, "")  # ambiguous: the request may have reached Firehose


class Script:
    """Answers PutRecordBatch call n with `answers[n]` (status, code), then 200 once exhausted."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        self.answers = answers
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.calls += 1
        if self.calls <= len(self.answers):
            status, code = self.answers[self.calls - 1]
            error = {"__type": code, "message": f"scripted {code}"} if code else {}
            return web.Response(status=status, body=orjson.dumps(error))
        for entry in body["Records"]:
            base64.b64decode(entry["Data"])
        answer = {
            "FailedPutCount": 0,
            "RequestResponses": [{"RecordId": "r"}] * len(body["Records"]),
        }
        return web.Response(body=orjson.dumps(answer))


def test_by_default_retries_are_bounded_by_the_deadline_not_a_count() -> None:
    defaults = ProducerConfig()
    assert defaults.max_attempts is None
    # A 60 s outage must fit inside the retry window of a record sent when it began.
    assert defaults.record_deadline_s >= 60 + defaults.backoff_cap_s


async def test_transient_errors_are_retried_past_eight_attempts_until_delivered(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    script = Script([THROTTLED] * 20)
    endpoint = await serve_post(script.handle)
    failed: list[FailedRecord] = []
    async with Producer(endpoint_url=endpoint, on_failure=failed.extend, **FAST) as producer:
        receipt = await producer.put(b"x\n")
        assert await receipt == "r"
    assert failed == []
    assert receipt.attempts == 21
    assert script.calls == 21


async def test_the_record_deadline_ends_the_retries(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    script = Script([THROTTLED] * 10_000)
    endpoint = await serve_post(script.handle)
    failed: list[FailedRecord] = []
    started = time.monotonic()
    async with Producer(
        endpoint_url=endpoint, on_failure=failed.extend, record_deadline_s=0.3, **FAST
    ) as producer:
        await producer.put(b"x\n")
    assert time.monotonic() - started < 5
    assert [record.reason for record in failed] == ["throttled"]
    assert failed[0].attempts == script.calls > 1
    assert not failed[0].maybe_stored


async def test_an_ambiguous_early_attempt_marks_the_final_failure_may_have_been_stored(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    # 502 (may be stored), then 503 (not stored) twice: the last answer alone would say "safe".
    script = Script([BAD_GATEWAY, THROTTLED, THROTTLED])
    endpoint = await serve_post(script.handle)
    failed: list[FailedRecord] = []
    async with Producer(
        endpoint_url=endpoint, on_failure=failed.extend, max_attempts=3, **FAST
    ) as producer:
        await producer.put(b"x\n")
    assert [record.reason for record in failed] == ["throttled"]
    assert failed[0].maybe_stored
    assert "may have been stored" in failed[0].message
    stats = producer.stats()
    assert stats.duplicates_possible == 1  # only the resend right after the 502 may duplicate


async def test_unambiguous_attempts_only_leave_the_failure_unmarked(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    script = Script([THROTTLED, THROTTLED])
    endpoint = await serve_post(script.handle)
    failed: list[FailedRecord] = []
    async with Producer(
        endpoint_url=endpoint, on_failure=failed.extend, max_attempts=2, **FAST
    ) as producer:
        await producer.put(b"x\n")
    assert [(r.reason, r.attempts, r.maybe_stored) for r in failed] == [("throttled", 2, False)]
    assert "may have been stored" not in failed[0].message
    assert producer.stats().duplicates_possible == 0


async def test_max_attempts_one_sends_once_after_a_retriable_failure(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    # The first attempt runs before the retry loop: the loop still decides there is no resend.
    script = Script([THROTTLED])
    endpoint = await serve_post(script.handle)
    failed: list[FailedRecord] = []
    async with Producer(
        endpoint_url=endpoint, on_failure=failed.extend, max_attempts=1, **FAST
    ) as producer:
        await producer.put(b"x\n")
    assert script.calls == 1
    assert [(r.reason, r.attempts) for r in failed] == [("throttled", 1)]
    assert "gave up after 1 attempt(s)" in failed[0].message
    assert producer.stats().records_retried == 0


async def test_the_deadline_counts_from_the_first_attempt_even_a_slow_one(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    # A first answer slower than the whole deadline leaves no time for a resend.
    script = Script([THROTTLED] * 10)

    async def slow_first(request: web.Request) -> web.Response:
        if script.calls == 0:
            await asyncio.sleep(0.4)
        return await script.handle(request)

    endpoint = await serve_post(slow_first)
    failed: list[FailedRecord] = []
    async with Producer(
        endpoint_url=endpoint, on_failure=failed.extend, record_deadline_s=0.3, **FAST
    ) as producer:
        await producer.put(b"x\n")
    assert script.calls == 1
    assert [(r.reason, r.attempts) for r in failed] == [("throttled", 1)]


async def test_resends_are_counted_as_before_when_the_first_attempt_fails(
    serve_post: Callable[..., Awaitable[str]],
) -> None:
    script = Script([BAD_GATEWAY, THROTTLED])
    endpoint = await serve_post(script.handle)
    async with Producer(endpoint_url=endpoint, **FAST) as producer:
        receipts = await producer.put_many([b"a\n", b"b\n"])
        assert await receipts.wait() == []
    stats = producer.stats()
    assert [receipt.attempts for receipt in receipts] == [3, 3]
    assert stats.records_retried == 4  # two records, resent twice
    assert stats.duplicates_possible == 2  # only the resend right after the 502
    assert sum(stats.requests.values()) == script.calls == 3
    assert stats.records_delivered == 2
