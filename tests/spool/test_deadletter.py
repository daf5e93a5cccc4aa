"""The dead-letter spool as the producer's failure handler, and the producer's durable log,
against the in-process emulator (real HTTP on loopback) or an endpoint that refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from faultfs import FaultyFiles  # tests/spool/ is on sys.path (rootdir-less import)

from ingest import Producer
from ingest.emulator import Emulator
from ingest.errors import ProducerError, SpoolFullError, SpoolLockedError
from ingest.events import EventGenerator
from ingest.producer.stats import FailedRecord
from ingest.spool.deadletter import DeadLetterSpool, read_spool


async def kill_9(producer: Producer) -> None:
    """What kill -9 leaves of a durable producer: its log as written, nothing more (no
    checkpoint, no close); the lock goes with the process."""
    durable = producer._durable
    assert durable is not None
    assert durable._checkpointer is not None
    assert producer._dispatcher is not None
    durable._checkpointer.cancel()
    durable.writer.log.close()
    producer._dispatcher.remove_done_callback(producer._dispatcher_done)
    producer._dispatcher.cancel()
    await asyncio.gather(durable._checkpointer, producer._dispatcher, return_exceptions=True)
    await producer._client.close()
    durable.writer._executor.shutdown(wait=False)


REFUSED = "http://127.0.0.1:9"  # the discard port: connections are refused at once
FAST_FAIL = {"record_deadline_s": 0.2, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}


async def test_failed_records_are_fsynced_to_the_spool_before_they_count_as_failed(
    tmp_path: Path,
) -> None:
    events = EventGenerator(run_id="dlq").batch(50)
    spool = DeadLetterSpool(tmp_path / "spool", stream="aws-ml-cert", writer_id="dlq")
    seen_failed_during_handover: list[int] = []
    producer: Producer

    async def handler(failed: Sequence[FailedRecord]) -> None:
        await spool.handle(failed)  # written and fdatasync'd when this returns
        seen_failed_during_handover.append(producer.stats().records_failed_total)

    producer = Producer(endpoint_url=REFUSED, on_failure=handler, **FAST_FAIL)
    async with producer:
        receipts = await producer.put_many(events)
        failed = await receipts.wait()
    await spool.close()
    assert len(failed) == 50
    assert seen_failed_during_handover
    assert all(n == 0 for n in seen_failed_during_handover)
    stats = producer.stats()
    assert stats.records_failed_total == 50
    assert stats.records_pending == 0
    spooled = read_spool(tmp_path / "spool")
    assert [entry.data for entry in spooled] == events
    assert {entry.reason for entry in spooled} == {"connection_error"}
    assert all(entry.stream == "aws-ml-cert" and entry.attempts >= 1 for entry in spooled)
    assert spool.spooled == {"connection_error": 50}


async def test_spool_entries_keep_the_first_error_and_when_it_happened(tmp_path: Path) -> None:
    """The first error a record met is kept apart from the last (the give-up message)."""
    spool = DeadLetterSpool(tmp_path / "spool", stream="aws-ml-cert", writer_id="first")
    async with Producer(endpoint_url=REFUSED, on_failure=spool.handle, **FAST_FAIL) as producer:
        failed = await (await producer.put_many(EventGenerator(run_id="first").batch(5))).wait()
    await spool.close()
    assert len(failed) == 5
    assert all(record.attempts >= 2 for record in failed)
    assert all(record.first_error and record.first_failed_at for record in failed)
    assert all(record.first_error != record.message for record in failed)
    spooled = read_spool(tmp_path / "spool")
    assert len(spooled) == 5
    for entry in spooled:
        assert entry.last_error.startswith("gave up after")
        assert not entry.first_error.startswith("gave up after")
        assert "connect" in entry.first_error.lower()
        assert entry.first_failed_at < entry.spooled_at  # RFC 3339 UTC strings sort by time


async def test_a_run_where_nothing_fails_writes_no_spool(
    tmp_path: Path, emulator: Emulator
) -> None:
    spool = DeadLetterSpool(tmp_path / "spool", stream="aws-ml-cert", writer_id="quiet")
    async with Producer(endpoint_url=emulator.endpoint_url, on_failure=spool.handle) as producer:
        await (await producer.put_many(EventGenerator().batch(100))).wait()
    await spool.close()
    assert not (tmp_path / "spool").exists()


async def test_a_full_spool_holds_the_records_then_put_raises_a_typed_error(
    tmp_path: Path,
) -> None:
    spool = DeadLetterSpool(
        tmp_path / "spool", stream="aws-ml-cert", max_bytes=30_000, full_timeout_s=0.5
    )
    producer = Producer(endpoint_url=REFUSED, on_failure=spool.handle, **FAST_FAIL)
    held: list[int] = []
    events = EventGenerator()
    async with producer:
        for _ in range(5):  # five batches: the first fits the bound, the later ones do not
            await producer.put_many(events.batch(20))
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while spool.refused == 0 and loop.time() < deadline:
            held.append(producer.stats().records_pending)
            await asyncio.sleep(0.02)
        with pytest.raises(SpoolFullError, match="byte bound"):
            await producer.put(b'{"late": 1}\n')
    await spool.close()
    stats = producer.stats()
    # Backpressure first: while the spool waited, the failed records stayed pending (holding
    # their queue space); then they were counted failed (loudly: refused), never dropped.
    assert max(held) > 0
    assert stats.records_put == 100
    assert stats.records_failed_total == 100
    assert spool.spooled_total + spool.refused == 100
    assert len(read_spool(tmp_path / "spool")) == spool.spooled_total > 0


async def test_a_disk_full_spool_is_backpressure_and_resumes_when_space_frees(
    tmp_path: Path,
) -> None:
    files = FaultyFiles(space=1_500)
    spool = DeadLetterSpool("/spool", stream="s", full_timeout_s=5.0, files=files)
    spool._writer.log._use_lock = False
    async with Producer(endpoint_url=REFUSED, on_failure=spool.handle, **FAST_FAIL) as producer:
        receipts = await producer.put_many(EventGenerator().batch(40))
        await asyncio.sleep(0.6)  # failed by now, but the disk is full: still pending
        assert producer.stats().records_pending > 0
        files.space = None  # space frees: the waiting group is written
        assert len(await receipts.wait()) == 40
    assert spool.spooled_total == 40
    assert spool.refused == 0
    await spool.close()


async def test_durable_put_returns_after_the_log_write_and_a_crash_resends_it(
    tmp_path: Path, emulator: Emulator
) -> None:
    durable = tmp_path / "durable"
    events = EventGenerator(run_id="wal").batch(1_200)
    # A producer that never sends (a refused endpoint, retries for a minute): "killed" once the
    # records are accepted. Its log is closed as the kernel would on exit, nothing else.
    doomed = Producer(endpoint_url=REFUSED, durable_dir=durable, record_deadline_s=60)
    await doomed.start()
    await doomed.put_many(events[:1_000])
    await doomed.put(events[1_000])
    with pytest.raises(ProducerError, match="put_nowait"):
        doomed.put_nowait(events[1_001])
    with pytest.raises(SpoolLockedError):  # one process per log
        await Producer(endpoint_url=REFUSED, durable_dir=durable).start()
    await kill_9(doomed)

    async with Producer(endpoint_url=emulator.endpoint_url, durable_dir=durable) as producer:
        assert producer.durable_recovery is not None
        assert producer.durable_recovery.pending_records == 1_001
        await producer.put_many(events[1_001:])
        await producer.flush(timeout=30)
    stats = producer.stats()
    assert stats.records_recovered == 1_001
    assert stats.duplicates_possible >= 1_001
    assert stats.records_delivered == 1_200
    assert sorted(emulator.stored_records("aws-ml-cert")) == sorted(events)

    # Everything delivered and checkpointed: a restart resends nothing.
    async with Producer(endpoint_url=emulator.endpoint_url, durable_dir=durable) as producer:
        assert producer.durable_recovery is not None
        assert producer.durable_recovery.pending_records == 0
        assert producer.durable_recovery.last_record == events[-1]
