"""Backpressure, close/drain, cancellation, crash and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from ingest.emulator import Emulator, FaultOptions
from ingest.errors import (
    ConfigError,
    ProducerClosedError,
    ProducerCrashedError,
    ProducerError,
    PutTimeoutError,
    QueueFullError,
    RecordFailedError,
    RecordTooLargeError,
)
from ingest.firehose.limits import MAX_RECORD_BYTES
from ingest.producer import FailedRecord, Producer

STALLED = FaultOptions(latency_s=5.0)  # the sink does not answer within these tests


async def wait_until_in_flight(producer: Producer) -> None:
    async with asyncio.timeout(10):
        # Polling on purpose: the test watches the public stats, as a user would.
        while producer.stats().inflight_requests == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_close_ships_a_partial_batch_at_once(emulator: Emulator) -> None:
    producer = Producer(endpoint_url=emulator.endpoint_url, linger_s=3600.0)
    async with asyncio.timeout(30), producer:
        receipt = await producer.put(b"only\n")
    assert receipt.done()
    assert receipt.record_id
    assert producer.stats().records_delivered == 1


async def test_linger_timer_ships_a_partial_batch_without_flush(emulator: Emulator) -> None:
    async with Producer(endpoint_url=emulator.endpoint_url, linger_s=0.05) as producer:
        receipt = await producer.put(b"lonely\n")
        assert await asyncio.wait_for(receipt.result(), timeout=30)
        assert producer.stats().requests == {"ok": 1}


async def test_put_waits_for_room_and_resumes_when_records_settle(emulator: Emulator) -> None:
    emulator.set_faults(FaultOptions(latency_s=0.05))
    records = [b"%d\n" % i for i in range(1500)]
    producer = Producer(endpoint_url=emulator.endpoint_url, max_queue_records=200, max_inflight=2)
    async with producer:
        for record in records:
            await producer.put(record)
            assert producer.stats().queue_records <= 200
    assert producer.stats().records_delivered == 1500
    await emulator.flush()
    assert sorted(emulator.stored_records("aws-ml-cert")) == sorted(records)


async def test_flush_settles_everything_put_so_far(emulator: Emulator) -> None:
    async with Producer(endpoint_url=emulator.endpoint_url, linger_s=3600.0) as producer:
        receipts = await producer.put_many([b"a\n", b"b\n"])
        async with asyncio.timeout(30):
            await producer.flush()
        assert receipts.done()
        assert producer.stats().records_pending == 0


async def test_full_queue_blocks_put_and_put_nowait_raises(emulator: Emulator) -> None:
    emulator.set_faults(STALLED)
    producer = Producer(endpoint_url=emulator.endpoint_url, max_queue_records=10, linger_s=0.0)
    async with producer:
        for i in range(10):
            producer.put_nowait(b"%d\n" % i)
        with pytest.raises(QueueFullError, match="10/10 records"):
            producer.put_nowait(b"x\n")
        with pytest.raises(PutTimeoutError):
            await producer.put(b"x\n", timeout=0.05)
        with pytest.raises(PutTimeoutError) as caught:
            await producer.put_many([b"y\n"] * 3, timeout=0.05)
        assert caught.value.accepted == 0
        assert producer.stats().queue_records == 10
        await producer.close(timeout=0.2)
    assert producer.stats().records_put == 10


async def test_byte_bound_counts_in_flight_records_too(emulator: Emulator) -> None:
    emulator.set_faults(STALLED)
    async with Producer(endpoint_url=emulator.endpoint_url, max_queue_bytes=1000) as producer:
        await producer.put(b"x" * 600)
        await wait_until_in_flight(producer)  # the space is still held
        with pytest.raises(QueueFullError, match="600/1000 bytes"):
            producer.put_nowait(b"y" * 500)
        await producer.close(timeout=0.2)


async def test_close_deadline_fails_in_flight_records_never_counts_them_delivered(
    emulator: Emulator,
) -> None:
    emulator.set_faults(STALLED)
    handed: list[FailedRecord] = []
    producer = Producer(endpoint_url=emulator.endpoint_url, on_failure=handed.extend, linger_s=0.0)
    async with producer:
        receipts = await producer.put_many([b"%d\n" % i for i in range(1200)])
        await wait_until_in_flight(producer)
        await producer.close(timeout=0.2)
    stats = producer.stats()
    assert stats.records_delivered == 0
    assert stats.records_failed == {"close_timeout": 1200}
    assert stats.closed
    assert stats.queue_records == 0
    assert sorted(record.data for record in handed) == sorted(b"%d\n" % i for i in range(1200))
    assert len(await receipts.wait()) == 1200
    with pytest.raises(ProducerClosedError):
        await producer.put(b"late\n")


async def test_cancelling_the_sender_fails_pending_and_the_next_put_raises(
    emulator: Emulator,
) -> None:
    emulator.set_faults(STALLED)
    async with Producer(endpoint_url=emulator.endpoint_url, linger_s=0.0) as producer:
        receipt = await producer.put(b"doomed\n")
        await wait_until_in_flight(producer)
        sender = next(t for t in asyncio.all_tasks() if t.get_name() == "ingest-producer-sender")
        sender.cancel()
        with pytest.raises(RecordFailedError, match="crashed"):
            await asyncio.wait_for(receipt.result(), timeout=10)
        with pytest.raises(ProducerCrashedError):
            await producer.put(b"next\n")
    stats = producer.stats()
    assert stats.records_failed == {"crashed": 1}
    assert stats.records_pending == 0


async def test_a_broken_failure_handler_does_not_break_the_ledger(emulator: Emulator) -> None:
    emulator.set_faults(FaultOptions(call_error_rate=1.0))

    def broken(failed: Sequence[FailedRecord]) -> None:
        raise RuntimeError("handler bug")

    producer = Producer(endpoint_url=emulator.endpoint_url, on_failure=broken, max_attempts=1)
    async with producer:
        await producer.put(b"x\n")
    assert producer.stats().records_failed_total == 1


async def test_largest_record_is_sent_and_one_byte_more_is_refused(emulator: Emulator) -> None:
    async with Producer(endpoint_url=emulator.endpoint_url) as producer:
        with pytest.raises(RecordTooLargeError, match=r"1,024,001 bytes exceeds the Firehose"):
            await producer.put(b"x" * (MAX_RECORD_BYTES + 1))
        with pytest.raises(RecordTooLargeError, match=r"records\[1\]"):
            await producer.put_many([b"a", b"x" * (MAX_RECORD_BYTES + 1)])
        records = [bytes([65 + i]) * MAX_RECORD_BYTES for i in range(9)]
        receipts = await producer.put_many(records)
    assert await receipts.wait() == []
    assert producer.stats().records_put == 9  # nothing of the refused calls was queued
    await emulator.flush()
    assert sorted(emulator.stored_records("aws-ml-cert")) == records


async def test_record_over_the_queue_byte_bound_is_refused(emulator: Emulator) -> None:
    async with Producer(endpoint_url=emulator.endpoint_url, max_queue_bytes=100) as producer:
        with pytest.raises(RecordTooLargeError, match="max_queue_bytes=100"):
            producer.put_nowait(b"x" * 101)


async def test_wrong_types_are_refused_with_the_field_name(emulator: Emulator) -> None:
    async with Producer(endpoint_url=emulator.endpoint_url) as producer:
        with pytest.raises(TypeError, match="record: expected bytes, got str"):
            await producer.put("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"records\[2\]: expected bytes, got int 3"):
            await producer.put_many([b"a", b"b", 3])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=r"expected bytes, got str 'text' \(encode text"):
            producer.put_nowait("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"records: expected an iterable of bytes records"):
            await producer.put_many(b"one record")
        with pytest.raises(ConfigError, match="timeout: expected a number, got '1'"):
            await producer.put(b"x", timeout="1")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"timeout: expected a finite value >= 0\.0"):
            await producer.flush(timeout=-1)
    assert producer.stats().records_put == 0


async def test_put_many_takes_any_iterable_of_bytes(emulator: Emulator) -> None:
    async with Producer(endpoint_url=emulator.endpoint_url) as producer:
        receipts = await producer.put_many(b"%d\n" % i for i in range(3))
    assert len(receipts) == 3
    assert await receipts.wait() == []


async def test_check_target_needs_a_started_open_producer(emulator: Emulator) -> None:
    producer = Producer(endpoint_url=emulator.endpoint_url)
    with pytest.raises(ProducerError, match="not started"):
        await producer.check_target()
    async with producer:
        assert (await producer.check_target()).status == "ACTIVE"
    with pytest.raises(ProducerClosedError):
        await producer.check_target()


async def test_cancelled_put_many_keeps_what_it_queued_and_the_ledger_closes(
    emulator: Emulator,
) -> None:
    emulator.set_faults(FaultOptions(latency_s=0.2))
    records = [b"%d\n" % i for i in range(3000)]
    producer = Producer(endpoint_url=emulator.endpoint_url, max_queue_records=1000)
    async with producer:
        task = asyncio.create_task(producer.put_many(records))
        await wait_until_in_flight(producer)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        queued = producer.stats().records_put
        assert 0 < queued < len(records)
        flush = asyncio.create_task(producer.flush())
        await asyncio.sleep(0)
        flush.cancel()  # a cancelled flush changes nothing either
        with pytest.raises(asyncio.CancelledError):
            await flush
    stats = producer.stats()
    assert stats.records_put == stats.records_delivered == queued
    await emulator.flush()
    assert emulator.stored_records("aws-ml-cert") == records[:queued]


async def test_cancelling_close_still_settles_every_record(emulator: Emulator) -> None:
    emulator.set_faults(STALLED)
    handed: list[FailedRecord] = []
    producer = Producer(
        endpoint_url=emulator.endpoint_url, on_failure=handed.extend, max_inflight=1
    )
    await producer.start()
    await producer.put_many([b"%d\n" % i for i in range(700)])
    await wait_until_in_flight(producer)
    close = asyncio.create_task(producer.close(timeout=60))
    await asyncio.sleep(0.05)
    close.cancel()
    with pytest.raises(asyncio.CancelledError):
        await close
    stats = producer.stats()
    assert stats.closed
    assert stats.records_delivered == 0
    assert stats.records_failed == {"close_timeout": 700}
    assert len(handed) == 700
    never_sent = [record for record in handed if record.attempts == 0]
    assert len(never_sent) == 200  # the second batch waited for the one request slot
    assert all("close() was cancelled" in record.message for record in never_sent)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stream": ""}, "stream: expected 1-64 characters"),
        ({"stream": 5}, "stream: expected"),
        ({"region": ""}, "region: expected an AWS region"),
        ({"endpoint_url": "localhost:4573"}, "endpoint_url: expected an http"),
        ({"max_inflight": 0}, "max_inflight: expected a finite value >= 1"),
        ({"max_inflight": "8"}, "max_inflight: expected an int, got '8'"),
        ({"linger_s": -1.0}, "linger_s: expected a finite value >= 0.0"),
        ({"request_timeout_s": 0}, "request_timeout_s: expected a finite value >= 0.001"),
        ({"max_queue_bytes": True}, "max_queue_bytes: expected an int"),
        ({"records_per_s": 0}, "records_per_s: expected a positive rate"),
        ({"request_timeout_s": float("inf")}, "request_timeout_s: expected a finite value"),
        ({"linger_s": float("nan")}, "linger_s: expected a finite value"),
        ({"lingr_s": 1.0}, r"lingr_s: unknown producer option \(value 1.0\); expected one of"),
        ({"on_failure": "log"}, "on_failure: expected a callable or None, got 'log'"),
    ],
)
def test_bad_options_raise_config_error_naming_field_and_value(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Producer(**options)  # type: ignore[arg-type]


async def test_put_before_start_and_double_start_are_refused(emulator: Emulator) -> None:
    producer = Producer(endpoint_url=emulator.endpoint_url)
    with pytest.raises(ProducerError, match="not started"):
        await producer.put(b"x")
    async with producer:
        with pytest.raises(ProducerError, match="already started"):
            await producer.start()
    await producer.close()  # idempotent
    with pytest.raises(ProducerClosedError, match="cannot restart; make a new Producer"):
        await producer.start()


async def test_a_cancelled_put_queues_nothing_and_a_cancelled_await_changes_no_fate(
    emulator: Emulator,
) -> None:
    emulator.set_faults(FaultOptions(latency_s=0.3))
    producer = Producer(endpoint_url=emulator.endpoint_url, max_queue_records=1, linger_s=0.0)
    async with producer:
        first = await producer.put(b"first\n")
        blocked = asyncio.create_task(producer.put(b"blocked\n"))
        waiting = asyncio.create_task(first.result())
        await wait_until_in_flight(producer)
        blocked.cancel()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await first  # still delivered
    assert producer.stats().records_put == producer.stats().records_delivered == 1
    await emulator.flush()
    assert emulator.stored_records("aws-ml-cert") == [b"first\n"]


async def test_log_requests_writes_one_debug_line_per_request_only_when_asked(
    emulator: Emulator,
) -> None:
    records = [b"%d\n" % i for i in range(1200)]
    for enabled, expected_lines in ((False, 0), (True, 3)):
        with capture_logs() as logs:
            async with Producer(endpoint_url=emulator.endpoint_url, log_requests=enabled) as p:
                await (await p.put_many(records)).wait()
        lines = [line for line in logs if line["event"] == "request_finished"]
        assert len(lines) == expected_lines
        assert all(line["log_level"] == "debug" and line["outcome"] == "ok" for line in lines)
        assert sum(line["records"] for line in lines) == (1200 if enabled else 0)


def test_log_requests_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="log_requests: expected True or False, got 'yes'"):
        Producer(log_requests="yes")
