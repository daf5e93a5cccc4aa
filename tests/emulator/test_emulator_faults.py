"""Injected faults: each kind, what is (not) stored, and reproducibility with a seed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError

from ingest.emulator import Emulator, FaultOptions

STREAM = "aws-ml-cert"
Batch = Callable[..., dict[str, Any]]
DATAS = [b"%03d\n" % i for i in range(50)]
RECORDS = [{"Data": d} for d in DATAS]


async def test_record_failures_come_back_in_a_200_and_are_never_stored(
    emulator: Emulator, firehose: Any
) -> None:
    emulator.set_faults(FaultOptions(seed=1, record_failure_rate=1.0))
    response = await firehose.put_record_batch(DeliveryStreamName=STREAM, Records=RECORDS)
    assert response["FailedPutCount"] == len(DATAS)
    codes = {e["ErrorCode"] for e in response["RequestResponses"]}
    assert codes == {"ServiceUnavailableException", "InternalFailure"}
    assert emulator.stored_records(STREAM) == []
    assert emulator.stats.records_failed == len(DATAS)


async def test_partial_record_failures_store_exactly_the_successful_entries(
    emulator: Emulator, firehose: Any
) -> None:
    emulator.set_faults(FaultOptions(seed=3, record_failure_rate=0.5))
    response = await firehose.put_record_batch(DeliveryStreamName=STREAM, Records=RECORDS)
    entries = response["RequestResponses"]
    succeeded = [d for d, e in zip(DATAS, entries, strict=True) if "RecordId" in e]
    assert 0 < len(succeeded) < len(DATAS)
    assert response["FailedPutCount"] == len(DATAS) - len(succeeded)
    assert emulator.stored_records(STREAM) == succeeded


async def test_call_errors_are_500_or_503_and_store_nothing(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    emulator.set_faults(FaultOptions(seed=5, call_error_rate=1.0))
    seen = set()
    for _ in range(20):
        status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch(DATAS))
        seen.add((status, body["__type"]))
    assert seen == {(500, "InternalFailure"), (503, "ServiceUnavailableException")}
    assert emulator.stored_records(STREAM) == []
    assert emulator.stats.calls_failed == 20


async def test_control_plane_is_never_faulted(emulator: Emulator, firehose: Any) -> None:
    emulator.set_faults(FaultOptions(call_error_rate=1.0, reset_rate=1.0))
    response = await firehose.describe_delivery_stream(DeliveryStreamName=STREAM)
    assert response["DeliveryStreamDescription"]["DeliveryStreamStatus"] == "ACTIVE"


async def test_latency_is_added_to_data_calls(emulator: Emulator, call: Any, batch: Batch) -> None:
    emulator.set_faults(FaultOptions(latency_s=0.3))
    started = time.monotonic()
    status, _ = await call(emulator.endpoint_url, "PutRecordBatch", batch(DATAS))
    assert status == 200
    assert time.monotonic() - started >= 0.3
    assert emulator.stored_records(STREAM) == DATAS


async def test_reset_connections_fail_the_client_and_store_nothing(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    emulator.set_faults(FaultOptions(reset_rate=1.0))
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(emulator.endpoint_url, "PutRecordBatch", batch(DATAS))
    assert emulator.stored_records(STREAM) == []
    assert emulator.stats.connections_reset == 1
    emulator.set_faults(FaultOptions())
    status, _ = await call(emulator.endpoint_url, "PutRecordBatch", batch(DATAS))
    assert status == 200


async def test_accepted_but_answered_with_an_error_stores_the_records(
    emulator: Emulator, firehose: Any
) -> None:
    """The duplicate source: the client sees a 500, retries, and both copies are stored."""
    emulator.set_faults(FaultOptions(accepted_error_rate=1.0))
    with pytest.raises(ClientError) as raised:
        await firehose.put_record_batch(DeliveryStreamName=STREAM, Records=RECORDS)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    emulator.set_faults(FaultOptions())
    await firehose.put_record_batch(DeliveryStreamName=STREAM, Records=RECORDS)
    counts = emulator.stored_counts(STREAM)
    assert set(counts.values()) == {2}
    assert emulator.stats.records_accepted_with_error == len(DATAS)


async def test_put_record_failure_is_a_call_error(emulator: Emulator, firehose: Any) -> None:
    emulator.set_faults(FaultOptions(seed=2, record_failure_rate=1.0))
    with pytest.raises(ClientError) as raised:
        await firehose.put_record(DeliveryStreamName=STREAM, Record={"Data": b"x"})
    error = raised.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) in {
        (503, "ServiceUnavailableException"),
        (500, "InternalFailure"),
    }
    assert emulator.stored_records(STREAM) == []


async def _run_mixed_faults(tmp_path: Path, call: Any, batch: Batch, seed: int) -> list[Any]:
    """What 15 sequential calls saw under a seeded mix of faults."""
    faults = FaultOptions(
        seed=seed, record_failure_rate=0.2, call_error_rate=0.2, accepted_error_rate=0.2
    )
    outcomes: list[Any] = []
    async with Emulator(data_dir=tmp_path / f"seed-{seed}", faults=faults) as emulator:
        for _ in range(15):
            status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch(DATAS))
            failed = [i for i, e in enumerate(body.get("RequestResponses", [])) if "ErrorCode" in e]
            outcomes.append((status, body.get("__type"), failed))
        stored = emulator.stored_records(STREAM)
        assert len(stored) == emulator.stats.records_accepted
    outcomes.append(stored)
    return outcomes


async def test_same_seed_same_faults(tmp_path: Path, call: Any, batch: Batch) -> None:
    first = await _run_mixed_faults(tmp_path / "a", call, batch, seed=42)
    second = await _run_mixed_faults(tmp_path / "b", call, batch, seed=42)
    other = await _run_mixed_faults(tmp_path / "c", call, batch, seed=43)
    assert first == second
    assert first != other
    statuses = {outcome[0] for outcome in first[:-1]}
    assert {200, 500} <= statuses


def test_fault_rates_are_validated() -> None:
    with pytest.raises(ValueError, match=r"reset_rate=1\.5"):
        FaultOptions(reset_rate=1.5)
    with pytest.raises(ValueError, match="latency_s"):
        FaultOptions(latency_s=-1)


async def test_stop_cuts_injected_latency_short(tmp_path: Path, call: Any, batch: Batch) -> None:
    """A stalled sink (latency 60 s) still stops promptly and completes the in-flight call."""
    emulator = Emulator(data_dir=tmp_path, faults=FaultOptions(latency_s=60.0))
    await emulator.start()
    pending = asyncio.ensure_future(call(emulator.endpoint_url, "PutRecordBatch", batch(DATAS)))
    for _ in range(3000):  # until the call is in flight (at most 30 s)
        if emulator.stats.calls["PutRecordBatch"]:
            break
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await emulator.stop()
    assert time.monotonic() - started < 30
    status, _ = await pending
    assert status == 200
    assert emulator.stored_records(STREAM) == DATAS
