"""`ingest emulator` says which quotas and faults are in effect at start, and its stats count
throttled records and throttled requests apart, with injected failures by kind."""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import sys
from pathlib import Path

import aiohttp
import orjson

from ingest.emulator.stats import INJECTED_KINDS

AUTH = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/firehose/aws4_request, Signature=0"
READY = re.compile(r"emulator listening on (http://127\.0\.0\.1:\d+)")


async def _put_batch(session: aiohttp.ClientSession, url: str, count: int) -> int:
    records = [{"Data": base64.b64encode(b"x\n").decode()} for _ in range(count)]
    body = orjson.dumps({"DeliveryStreamName": "aws-ml-cert", "Records": records})
    headers = {
        "Authorization": AUTH,
        "X-Amz-Target": "Firehose_20150804.PutRecordBatch",
        "Content-Type": "application/x-amz-json-1.1",
    }
    async with session.post(url + "/", data=body, headers=headers) as response:
        await response.read()
        return response.status


async def test_start_lines_and_throttled_records_vs_requests(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "emulator", "--port", "0", "--data-dir", str(tmp_path),
        "--quota-records-per-s", "5", "--quota-requests-per-s", "1",
        "--fault-record-failure-rate", "0.5", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        ready = READY.match((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
        assert ready is not None
        quotas = (await asyncio.wait_for(process.stderr.readline(), 10)).decode().strip()
        faults = (await asyncio.wait_for(process.stderr.readline(), 10)).decode().strip()
        assert quotas == "emulator quotas per stream: 5 records/s, 1 requests/s"
        assert faults == "emulator faults: record failures 50%; seed 3"
        url = ready.group(1)
        async with aiohttp.ClientSession() as session:
            # 20 records: the records quota takes 5, the rest are "Slow down." per record.
            assert await _put_batch(session, url, 20) == 200
            # The requests quota (1/s) is spent: the whole call is a 503.
            assert await _put_batch(session, url, 3) == 503
            async with session.get(url + "/_emulator/stats") as response:
                stats = orjson.loads(await response.read())
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    injected = stats["injected_failures"]
    assert set(injected) == set(INJECTED_KINDS)
    # Records under the records quota and calls under the requests quota are counted apart.
    assert stats["records_throttled"] == 15  # by the quota
    assert stats["calls_throttled"] == 1
    assert stats["throttled_requests"] == 1
    # Injected failures hit only the 5 records the quota let through; the injected
    # ServiceUnavailableException ones are throttling for the client, so they count there too.
    assert (
        injected["record_slow_down"] + injected["record_internal_failure"]
        == (stats["records_failed"])
    )
    assert 0 < stats["records_failed"] <= 5
    assert injected["record_slow_down"] > 0  # seed 3 draws at least one
    assert stats["throttled_records"] == 15 + injected["record_slow_down"]
    assert stats["records_accepted"] == 5 - stats["records_failed"]
    assert injected["call_slow_down"] == injected["connection_reset"] == 0
