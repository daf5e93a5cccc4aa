"""The bounded HTTP server over real sockets: connection cap with eviction of slow clients, header
and body timeouts, the buffered-bytes budget, one log line per kind of refusal per interval.

The floods at scale (1,500 slow clients against both real processes under ``ulimit -n 1024``)
are in tests/reliability/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from ingest.bounded_http import BoundedServer, ServerLimits
from ingest.emulator import Emulator
from ingest.emulator.describe import describe_bounds

Serve = Callable[[ServerLimits], Awaitable[tuple[BoundedServer, int]]]
RELEASE = asyncio.Event()  # set by the test that parks requests on /hold


async def _ok(request: web.BaseRequest) -> web.StreamResponse:
    if request.path == "/hold":
        await RELEASE.wait()
    return web.Response(text="ok\n")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[tuple[web.ServerRunner, BoundedServer]] = []

    async def start(limits: ServerLimits) -> tuple[BoundedServer, int]:
        server = BoundedServer(_ok, name="test", limits=limits, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append((runner, server))
        return server, runner.addresses[0][1]

    yield start
    for runner, server in runners:
        await runner.cleanup()
        server.close()


async def _slow_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that started its request head and will never finish it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def _get(port: int, path: str = "/healthz") -> tuple[int, float]:
    """One complete request on a new connection: (status, seconds)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return int(status_line.split()[1]), time.monotonic() - started


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except (TimeoutError, ConnectionError):
        return False


def test_the_cap_stays_below_the_fd_limit() -> None:
    # The cap plus one accept burst (the backlog) stays within the share of the fd limit.
    limits = ServerLimits(max_connections=5000, fd_share=0.25, backlog=64)
    assert limits.connection_cap(soft_limit=1024) == 256 - 64
    assert ServerLimits(default_max_connections=100, fd_share=0.5).connection_cap(1024) == 100
    assert ServerLimits(fd_share=0.5).connection_cap(soft_limit=4) >= 1
    with pytest.raises(ValueError, match="max_connections"):
        ServerLimits(max_connections=0)
    with pytest.raises(ValueError, match="header_timeout_s"):
        ServerLimits(header_timeout_s=0)
    line = describe_bounds(ServerLimits(max_connections=100, fd_share=1.0))
    assert line.startswith("emulator server bounds: 100 connections (open-file limit ")


async def test_when_every_connection_is_busy_a_new_one_is_refused(serve: Serve) -> None:
    RELEASE.clear()
    server, port = await serve(ServerLimits(max_connections=2, fd_share=1.0))
    busy = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for _, writer in busy:
        writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_within(reader, 1.0)
    assert server.refusals.totals == {"connection_cap": 1}
    RELEASE.set()
    for busy_reader, busy_writer in busy:  # the requests in progress were not disturbed
        assert (await busy_reader.readuntil(b"ok\n")).startswith(b"HTTP/1.1 200")
        busy_writer.close()
    writer.close()


async def test_at_the_cap_a_probe_evicts_the_oldest_slow_client(serve: Serve) -> None:
    server, port = await serve(ServerLimits(max_connections=4, fd_share=1.0))
    slow = [await _slow_client(port) for _ in range(12)]
    try:
        await asyncio.sleep(0.2)
        assert server.open_connections <= 4
        for _ in range(5):
            status, seconds = await _get(port)
            assert status == 200
            assert seconds < 1.0
        # The first slow clients were the ones evicted.
        assert await _closed_within(slow[0][0], 1.0)
        assert not await _closed_within(slow[-1][0], 0.2)
    finally:
        for _, writer in slow:
            writer.close()
    assert server.refusals.totals["slow_client_evicted"] >= 8  # 12 slow clients, cap 4
    # Many evictions, one log line (per kind per interval), carrying the count of the first.
    assert server.refusals.lines == {"slow_client_evicted": 1}


async def test_a_head_that_does_not_arrive_in_time_is_closed(serve: Serve) -> None:
    server, port = await serve(ServerLimits(header_timeout_s=0.3))
    reader, writer = await _slow_client(port)
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_within(reader, 2.0)
    assert await _closed_within(silent_reader, 2.0)
    assert server.refusals.totals["header_timeout"] == 2
    assert (await _get(port))[0] == 200
    writer.close()
    silent_writer.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(
    serve: Serve,
) -> None:
    server, port = await serve(ServerLimits(idle_timeout_s=0.3, header_timeout_s=30))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"ok\n")).startswith(b"HTTP/1.1 200")
    assert await _closed_within(reader, 2.0)
    assert "header_timeout" not in server.refusals.totals  # an expiry, not a refusal
    writer.close()


def _put_head(length: int) -> bytes:
    return (
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 test\r\n"
        "X-Amz-Target: Firehose_20150804.PutRecordBatch\r\n"
        f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def test_the_emulator_refuses_bodies_past_its_budget_and_frees_aborted_ones() -> None:
    limits = ServerLimits(max_buffered_bytes=700_000, body_timeout_s=30)
    async with Emulator(server_limits=limits) as emulator:
        port = int(emulator.endpoint_url.rsplit(":", 1)[1])
        server = emulator._handler.server if emulator._handler else None
        assert server is not None
        # An upload that stalls after its first bytes holds its declared 600,000 bytes.
        _, stalled = await asyncio.open_connection("127.0.0.1", port)
        stalled.write(_put_head(600_000) + b'{"DeliveryStreamName": "aws-ml-cert", "Rec')
        await stalled.drain()
        await asyncio.sleep(0.2)
        assert server.buffered_bytes == 600_000
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_put_head(200_000))
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"ServiceUnavailableException" in answer
        writer.close()
        # The client gives up mid-body: its reservation is given back at once.
        stalled.close()
        for _ in range(50):
            if server.buffered_bytes == 0:
                break
            await asyncio.sleep(0.02)
        assert server.buffered_bytes == 0
        assert server.refusals.totals == {"buffer_budget": 1}


async def test_the_emulator_answers_408_to_a_body_that_does_not_arrive_in_time() -> None:
    async with Emulator(server_limits=ServerLimits(body_timeout_s=0.3)) as emulator:
        port = int(emulator.endpoint_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_put_head(1000) + b"{")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()
