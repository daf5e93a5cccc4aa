"""A destination that cannot take an object (real failures: the staging dir replaced by a file,
a write that dies half-way) loses no acknowledged record: the buffer is kept and retried, calls
past the hold limit get a retriable 503, nothing half-written stays, stop retries then says what
it could not write. A client that disconnects mid-body is not an internal error."""

from __future__ import annotations

import asyncio
import errno
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from ingest.emulator import Emulator
from ingest.emulator.delivery import ObjectWriter
from ingest.emulator.destinations import DestinationError

STREAM = "aws-ml-cert"
Batch = Any


def break_staging(data_dir: Path) -> None:
    """Every object write now fails (ENOTDIR): the staging dir is a file."""
    shutil.rmtree(data_dir / ".tmp")
    (data_dir / ".tmp").write_text("in the way")


def repair_staging(data_dir: Path) -> None:
    (data_dir / ".tmp").unlink()  # the writer recreates a missing staging dir


async def wait_until_written(emu: Emulator, timeout_s: float = 10.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if emu.buffered_bytes(STREAM) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still buffered: {emu.buffered_bytes(STREAM)} bytes")


async def test_a_failed_write_keeps_the_records_and_the_retry_writes_them_once(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    async with Emulator(data_dir=tmp_path, buffer_size_bytes=1000, buffer_interval_s=600) as emu:
        break_staging(tmp_path)
        first = [b"%03d" % i + b"x" * 95 + b"\n" for i in range(11)]  # 1089 bytes: due
        status, body = await call(emu.endpoint_url, "PutRecordBatch", batch(first))
        # Held in memory within the bound, so answered as stored.
        assert (status, body["FailedPutCount"]) == (200, 0)
        assert emu.stats.write_failures >= 1
        assert emu.buffered_bytes(STREAM) == 1089
        with pytest.raises(DestinationError, match="Not a directory"):
            await emu.flush()
        assert emu.delivered_objects() == []
        second = [b"second\n"] * 3
        status, _ = await call(emu.endpoint_url, "PutRecordBatch", batch(second))
        assert status == 200
        repair_staging(tmp_path)
        await wait_until_written(emu)
        [path] = emu.delivered_objects(STREAM)
        # Kept in order: the failed object's records first, then what came meanwhile.
        assert path.read_bytes() == b"".join(first + second)
        assert emu.stored_records(STREAM) == first + second


@pytest.mark.parametrize("operation", ["PutRecordBatch", "PutRecord"])
async def test_past_the_hold_limit_calls_get_a_retriable_503_and_nothing_is_stored(
    tmp_path: Path, call: Any, batch: Batch, operation: str
) -> None:
    async with Emulator(data_dir=tmp_path, buffer_size_bytes=1000, buffer_interval_s=600) as emu:
        break_staging(tmp_path)
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"y" * 999 + b"\n"] * 2))
        assert emu.buffered_bytes(STREAM) == 2000  # the bound: twice the size hint
        body = (
            batch([b"z\n"])
            if operation == "PutRecordBatch"
            else {"DeliveryStreamName": STREAM, "Record": {"Data": "ego="}}
        )
        status, answer = await call(emu.endpoint_url, operation, body)
        assert status == 503
        assert answer["__type"] == "ServiceUnavailableException"
        assert "retry later" in answer["message"]
        assert emu.stats.calls_destination_unavailable == 1
        assert b"z\n" not in emu.stored_records(STREAM)
        repair_staging(tmp_path)
        await wait_until_written(emu)
        status, _ = await call(emu.endpoint_url, operation, body)  # accepted again
        assert status == 200
        await emu.flush()
        # Two objects, maybe within one second: keys of the same second sort by their uuid.
        written = sorted(p.read_bytes() for p in emu.delivered_objects(STREAM))
        assert written == sorted([b"y" * 999 + b"\n" + b"y" * 999 + b"\n", b"z\n"])


def test_a_write_that_dies_half_way_leaves_no_part_file_and_no_object(tmp_path: Path) -> None:
    writer = ObjectWriter(tmp_path)
    writer.prepare(tmp_path)
    key = "2026/01/01/00/s-1-2026-01-01-00-00-00-0f0f0f0f-0000-4000-8000-000000000000"

    def chunks() -> Iterator[bytes]:
        yield b"first half\n"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        writer.write(key, chunks())
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert writer.objects() == []


def test_a_key_that_would_leave_the_data_dir_is_refused(tmp_path: Path) -> None:
    writer = ObjectWriter(tmp_path / "data")
    writer.prepare(tmp_path / "data")
    with pytest.raises(OSError, match="would leave the data directory"):
        writer.write("../escaped", [b"x"])
    assert not (tmp_path / "escaped").exists()


async def test_stop_retries_until_the_destination_comes_back(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    emu = Emulator(data_dir=tmp_path, buffer_interval_s=600, stop_timeout_s=20)
    await emu.start()
    await call(emu.endpoint_url, "PutRecordBatch", batch([b"kept\n"] * 4))
    break_staging(tmp_path)
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, repair_staging, tmp_path)
    await emu.stop()
    [path] = emu.delivered_objects(STREAM)
    assert path.read_bytes() == b"kept\n" * 4


async def test_stop_gives_up_after_its_timeout_naming_what_was_not_written(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    emu = Emulator(data_dir=tmp_path, buffer_interval_s=600, stop_timeout_s=0.3)
    await emu.start()
    await call(emu.endpoint_url, "PutRecordBatch", batch([b"lost\n"] * 4))
    break_staging(tmp_path)
    with pytest.raises(DestinationError, match=r"4 records \(20 bytes\) of stream 'aws-ml-cert'"):
        await emu.stop()


async def test_deleting_a_stream_whose_write_fails_drops_its_buffer_with_a_warning(
    tmp_path: Path, call: Any, batch: Batch
) -> None:
    async with Emulator(data_dir=tmp_path, buffer_interval_s=600) as emu:
        await call(emu.endpoint_url, "PutRecordBatch", batch([b"gone\n"] * 3))
        break_staging(tmp_path)
        with capture_logs() as logs:
            status, _ = await call(
                emu.endpoint_url, "DeleteDeliveryStream", {"DeliveryStreamName": STREAM}
            )
        assert status == 200
        [dropped] = [e for e in logs if e["event"] == "emulator_deleted_stream_dropped"]
        assert (dropped["records"], dropped["bytes"]) == (3, 15)
        repair_staging(tmp_path)


async def test_a_client_leaving_mid_body_is_counted_not_an_internal_error(
    emulator: Emulator,
) -> None:
    host, port = emulator.endpoint_url.removeprefix("http://").rsplit(":", 1)
    with capture_logs() as logs:
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nAuthorization: x\r\n"
            b"X-Amz-Target: Firehose_20150804.PutRecordBatch\r\n\r\n" + b'{"Records": ['
        )
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        for _ in range(100):
            if emulator.stats.client_disconnects:
                break
            await asyncio.sleep(0.05)
    assert emulator.stats.client_disconnects == 1
    assert not [e for e in logs if e["log_level"] in ("error", "critical", "exception")], logs
    assert emulator.stats.records_accepted == 0
