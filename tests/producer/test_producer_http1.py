"""The data path's HTTP/1.1 client (`ingest.firehose.http1`) against real servers on loopback.

A tiny asyncio server reads each request off the socket and answers as a test scripts it:
keep-alive, ``Connection: close``, chunked, to the end of the connection, a ``100 Continue``
first, a stall mid-answer, a reset after reading the request, or closing idle keep-alive
connections. The core cases run on uvloop and on the default loop, plain and over TLS (a
trustme CA). Nothing on the client's side is patched.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
import uvloop

from ingest.emulator import Emulator
from ingest.errors import FirehoseConnectionError, RequestTimeoutError
from ingest.firehose import http1
from ingest.firehose.client import FirehoseClient
from ingest.firehose.http1 import Http1Pool
from tests.conftest import free_port


@dataclass(frozen=True)
class Request:
    connection: int  # 1-based index of the connection it came on
    number: int  # 1-based index of the request, over all connections
    head: bytes
    body: bytes


Answerer = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]  # False: close after


@dataclass
class Scripted:
    """The server's record: connections opened, open now (and at most), requests read."""

    answer: Answerer
    connections: int = 0
    open_now: int = 0
    max_open: int = 0
    requests: list[Request] = field(default_factory=list)
    closed_by_client: int = 0  # connections that ended with EOF/reset while the server waited
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_requests(self, count: int) -> None:
        while len(self.requests) < count:
            self.arrived.clear()
            await self.arrived.wait()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = self.connections
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                request = Request(index, len(self.requests) + 1, head, body)
                self.requests.append(request)
                self.arrived.set()
                if not await self.answer(request, writer):
                    return
        except ConnectionError:
            self.closed_by_client += 1
        finally:
            self.open_now -= 1
            writer.close()


def answer_bytes(body: bytes, *extra: str, status: str = "200 OK") -> bytes:
    headers = "".join(f"{line}\r\n" for line in extra)
    return (
        f"HTTP/1.1 {status}\r\nx-amzn-RequestId: rid-1\r\n{headers}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def ok(request: Request, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer_bytes(b'{"ok":' + str(len(request.body)).encode() + b"}"))
    await writer.drain()
    return True


@dataclass(frozen=True)
class Pki:
    server: ssl.SSLContext
    client: ssl.SSLContext
    wrong_client: ssl.SSLContext  # trusts another CA


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, other = trustme.CA(), trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client, wrong = ssl.create_default_context(), ssl.create_default_context()
    ca.configure_trust(client)
    other.configure_trust(wrong)
    return Pki(server, client, wrong)


LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def run(loop: str, main: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        runner.run(asyncio.wait_for(main, 20))


@dataclass
class Served:
    scripted: Scripted
    url: str
    server: asyncio.Server


async def serve(answer: Answerer, tls: ssl.SSLContext | None = None) -> Served:
    scripted = Scripted(answer)
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    return Served(scripted, f"{'https' if tls else 'http'}://127.0.0.1:{port}/", server)


def pool_for(served: Served, pki: Pki | None = None, **options: Any) -> Http1Pool:
    context = pki.client if pki is not None and served.url.startswith("https") else None
    return Http1Pool(served.url, ssl_context=context, **options)


@pytest.fixture(params=["uvloop", "asyncio"])
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_keep_alive_carries_many_requests_on_one_connection(loop: str, tls: bool, pki: Pki) -> None:
    async def main() -> None:
        served = await serve(ok, pki.server if tls else None)
        pool = pool_for(served, pki)
        for size in (1, 300_000, 5):  # a body much larger than a socket buffer in between
            answer = await pool.post({"X-Amz-Target": "t"}, b"x" * size)
            assert answer == http1.Answer(200, "OK", "rid-1", None, b'{"ok":%d}' % size)
        await pool.close()
        served.server.close()
        assert served.scripted.connections == 1
        head = served.scripted.requests[0].head
        port = served.url.rsplit(":", 1)[1].rstrip("/")
        assert head.startswith(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\n")
        assert b"\r\nX-Amz-Target: t\r\nContent-Length: 1\r\n\r\n" in head

    run(loop, main())


def test_an_idle_connection_the_server_closed_is_replaced_before_writing(
    loop: str, tls: bool, pki: Pki
) -> None:
    """The server closes each connection after its answer (no ``Connection: close``): the next
    request must see that before writing and open a fresh connection, not fail."""

    async def answer_then_close(request: Request, writer: asyncio.StreamWriter) -> bool:
        await ok(request, writer)
        return False

    async def main() -> None:
        served = await serve(answer_then_close, pki.server if tls else None)
        pool = pool_for(served, pki)
        for _ in range(3):
            assert (await pool.post({}, b"abc")).status == 200
            await asyncio.sleep(0.05)  # the server's FIN (or close_notify) arrives meanwhile
        await pool.close()
        served.server.close()
        assert served.scripted.connections == 3
        assert len(served.scripted.requests) == 3

    run(loop, main())


def test_a_connection_idle_too_long_is_closed_not_reused(loop: str) -> None:
    async def main() -> None:
        served = await serve(ok)
        pool = pool_for(served, keepalive_idle_s=0.2)
        for pause in (0.0, 0.05, 0.3, 0.0):
            await asyncio.sleep(pause)
            assert (await pool.post({}, b"q")).status == 200
        await pool.close()
        served.server.close()
        assert [r.connection for r in served.scripted.requests] == [1, 1, 2, 2]
        assert served.scripted.closed_by_client >= 1  # the client closed the old one

    run(loop, main())


def test_connection_close_answers_chunked_to_eof_and_interim_answers(loop: str) -> None:
    """Each request gets another framing; every body is read whole, and a connection is
    reused only when the answer allows it."""
    script: list[bytes] = [
        b"HTTP/1.1 100 Continue\r\n\r\n" + answer_bytes(b"after-100"),
        answer_bytes(b"closing", "Connection: close"),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-amzn-ErrorType: E:x\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\nb\r\nworld-chunk\r\n0\r\nTrailer: yes\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: r-eof\r\n\r\nto the end",
        answer_bytes(b"extra") + b"junk",  # read, but the connection is out of step
        answer_bytes(b"last"),
    ]

    async def scripted(request: Request, writer: asyncio.StreamWriter) -> bool:
        data = script[request.number - 1]
        for i in range(0, len(data), 7):  # in small pieces: the parser resumes mid-line
            writer.write(data[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        return b"Connection: close" not in data and b"to the end" not in data

    async def main() -> None:
        served = await serve(scripted)
        pool = pool_for(served)
        answers = [await pool.post({}, b"q") for _ in script]
        await pool.close()
        served.server.close()
        assert [a.body for a in answers] == [
            b"after-100", b"closing", b"hello world-chunk", b"to the end", b"extra", b"last"
        ]  # fmt: skip
        assert answers[2].error_type == "E:x"
        assert answers[3].request_id == "r-eof"
        # 100+answer and close on #1; chunked and to-EOF on #2; junk after #3; the last on #4.
        assert [r.connection for r in served.scripted.requests] == [1, 1, 2, 2, 3, 4]

    run(loop, main())


def test_a_stall_mid_answer_times_out_and_the_connection_is_dropped(loop: str, pki: Pki) -> None:
    async def stall_first(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.number == 1:
            writer.write(answer_bytes(b"0123456789")[:-4])  # head and part of the body
            await writer.drain()
            await asyncio.sleep(5)
            return False
        return await ok(request, writer)

    async def main() -> None:
        served = await serve(stall_first, pki.server)
        pool = pool_for(served, pki, request_timeout_s=0.3)
        started = asyncio.get_running_loop().time()
        with pytest.raises(http1.AnswerTimeoutError, match=r"within 0\.3 s"):
            await pool.post({}, b"q")
        assert 0.25 < asyncio.get_running_loop().time() - started < 2
        assert (await pool.post({}, b"q")).status == 200
        await pool.close()
        served.server.close()
        assert [r.connection for r in served.scripted.requests] == [1, 2]

    run(loop, main())


def test_a_reset_after_the_request_was_read_is_connection_lost(
    loop: str, tls: bool, pki: Pki
) -> None:
    async def reset(request: Request, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST
        return False

    async def main() -> None:
        served = await serve(reset, pki.server if tls else None)
        pool = pool_for(served, pki)
        with pytest.raises(http1.ConnectionLostError):
            await pool.post({}, b"q" * 1000)
        await pool.close()
        served.server.close()
        assert len(served.scripted.requests) == 1

    run(loop, main())


def test_never_connected_is_a_connect_error(loop: str) -> None:
    """Refused, and a connect that never completes (a full listen backlog): ConnectError."""

    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # nothing listens there
        with pytest.raises(http1.ConnectError, match=r"cannot connect to 127\.0\.0\.1") as refused:
            await Http1Pool(f"http://127.0.0.1:{port}/").post({}, b"q")
        assert isinstance(refused.value.cause, ConnectionRefusedError)
        with socket.socket() as full:
            full.bind(("127.0.0.1", 0))
            full.listen(0)
            held = socket.create_connection(full.getsockname())  # fills the backlog
            pool = Http1Pool(f"http://127.0.0.1:{full.getsockname()[1]}/", connect_timeout_s=0.2)
            with pytest.raises(http1.ConnectError, match=r"within 0\.2 s"):
                await pool.post({}, b"q")
            held.close()

    run(loop, main())


def test_an_untrusted_certificate_is_a_tls_certificate_error(loop: str, pki: Pki) -> None:
    async def main() -> None:
        served = await serve(ok, pki.server)
        pool = Http1Pool(served.url, ssl_context=pki.wrong_client)
        with pytest.raises(http1.TlsCertificateError, match="certificate verify failed"):
            await pool.post({}, b"q")
        served.server.close()
        assert served.scripted.requests == []

    run(loop, main())


def test_cancellation_abandons_the_connection(loop: str) -> None:
    async def stall_first(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.number == 1:
            await asyncio.sleep(5)
        return await ok(request, writer)

    async def main() -> None:
        served = await serve(stall_first)
        pool = pool_for(served)
        first = asyncio.ensure_future(pool.post({}, b"q"))
        await served.scripted.wait_requests(1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert (await pool.post({}, b"q")).status == 200  # a new connection, not the stalled one
        await pool.close()
        served.server.close()
        assert [r.connection for r in served.scripted.requests] == [1, 2]

    run(loop, main())


def test_close_fails_requests_in_flight_and_the_pool_is_bounded(loop: str) -> None:
    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.body == b"never":
            return True  # no answer; the server reads on, so it sees the client close
        await asyncio.sleep(0.05)
        return await ok(request, writer)

    async def main() -> None:
        served = await serve(slow)
        pool = pool_for(served, max_connections=2)
        answers = await asyncio.gather(*(pool.post({}, b"fast") for _ in range(5)))
        assert [a.status for a in answers] == [200] * 5
        assert served.scripted.max_open == 2
        stuck = asyncio.ensure_future(pool.post({}, b"never"))
        await served.scripted.wait_requests(6)
        await pool.close()
        with pytest.raises(http1.ConnectionLostError, match="the client was closed"):
            await stuck
        for _ in range(100):
            if served.scripted.open_now == 0:
                break
            await asyncio.sleep(0.01)
        assert served.scripted.open_now == 0  # every connection closed, idle ones too
        served.server.close()

    run(loop, main())


# The FirehoseClient on top: its error mapping, which decides "may have been stored".

STREAM = "aws-ml-cert"


def put_answer(request: Request) -> bytes:
    count = len(orjson.loads(request.body)["Records"])
    entries = [{"RecordId": f"id-{i}"} for i in range(count)]
    return answer_bytes(orjson.dumps({"FailedPutCount": 0, "RequestResponses": entries}))


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


async def client_for(served: Served, **options: Any) -> FirehoseClient:
    client = FirehoseClient(
        STREAM, region="us-east-1", endpoint_url=served.url.rstrip("/"), **options
    )
    await client.start()
    return client


@pytest.mark.usefixtures("credentials")
async def test_the_client_maps_failures_by_how_far_the_request_got() -> None:
    """Closed idle connection: fine. Reset after the request: ConnectionLost, ambiguous.
    Stall: RequestTimeout, ambiguous. Nothing listening: ConnectFailed, not ambiguous."""
    mode = ["close-idle"]

    async def scripted(request: Request, writer: asyncio.StreamWriter) -> bool:
        if mode[0] == "reset":
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
            return False
        if mode[0] == "stall":
            await asyncio.sleep(5)
        writer.write(put_answer(request))
        await writer.drain()
        return False  # close after every answer, without saying so

    served = await serve(scripted)
    client = await client_for(served, request_timeout_s=0.3)
    try:
        for _ in range(2):
            result = await client.put_record_batch([b"a\n", b"b\n"])
            assert result.failed_put_count == 0
            await asyncio.sleep(0.05)
        mode[0] = "reset"
        with pytest.raises(FirehoseConnectionError) as lost:
            await client.put_record_batch([b"a\n"])
        assert lost.value.code == "ConnectionLost"
        assert lost.value.ambiguous
        mode[0] = "stall"
        with pytest.raises(RequestTimeoutError) as stalled:
            await client.put_record_batch([b"a\n"])
        assert stalled.value.ambiguous
        assert "no complete answer within 0.3 s" in str(stalled.value)
    finally:
        await client.close()
    served.server.close()
    await served.server.wait_closed()
    client = await client_for(served)
    try:
        with pytest.raises(FirehoseConnectionError) as refused:
            await client.put_record_batch([b"a\n"])
        assert refused.value.code == "ConnectFailed"
        assert not refused.value.ambiguous
        assert "cannot connect to 127.0.0.1" in str(refused.value)
    finally:
        await client.close()


@dataclass(frozen=True)
class TlsProxy:
    port: int
    log: Path
    ca: Path  # signed the proxy's certificate and the emulator's
    cert: Path
    key: Path


@pytest.fixture
def tls_proxy(tmp_path: Path) -> Iterator[TlsProxy]:
    """proxy.py on 127.0.0.1 serving TLS to its clients (a trustme certificate)."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    paths = TlsProxy(
        free_port(), tmp_path / "proxy.log", tmp_path / "ca.pem", tmp_path / "cert.pem",
        tmp_path / "key.pem",
    )  # fmt: skip
    ca.cert_pem.write_to_path(str(paths.ca))
    issued.private_key_pem.write_to_path(str(paths.key))
    issued.cert_chain_pems[0].write_to_path(str(paths.cert))
    with paths.log.open("wb") as sink:
        proxy = subprocess.Popen(
            [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(paths.port),
             "--num-workers", "1", "--num-acceptors", "1", "--log-level", "INFO",
             "--cert-file", str(paths.cert), "--key-file", str(paths.key)],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        for _ in range(200):  # proxy.py takes a moment to listen; nothing else to wait on
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", paths.port)) == 0:
                    break
            time.sleep(0.05)
        yield paths
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


async def test_an_https_proxy_falls_back_to_aiohttp_for_both_calls(
    credentials: None, tls_proxy: TlsProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS to the proxy, then TLS to the endpoint inside the tunnel: the one setting our
    HTTP/1.1 client leaves to aiohttp. One CA bundle trusts the proxy and the emulator."""
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls_proxy.ca))
    async with Emulator(
        data_dir=tls_proxy.log.with_name("data"), tls_cert=tls_proxy.cert, tls_key=tls_proxy.key
    ) as emulator:
        endpoint_port = port_of(emulator.endpoint_url)
        client = FirehoseClient(
            STREAM, region="us-east-1", endpoint_url=emulator.endpoint_url,
            proxies={"https": f"https://127.0.0.1:{tls_proxy.port}"},
            proxies_config={"proxy_ca_bundle": str(tls_proxy.ca)},
        )  # fmt: skip
        async with client:
            assert (await client.describe_stream()).name == STREAM
            assert (await client.put_record_batch([b'{"a":1}\n'])).failed_put_count == 0
        assert len(emulator.stored_records(STREAM)) == 1
    tunnels = f"CONNECT 127.0.0.1:{endpoint_port} "
    for _ in range(100):  # proxy.py logs a tunnel when it closes
        if tls_proxy.log.read_text("utf-8", "replace").count(tunnels) >= 2:
            break
        await asyncio.sleep(0.05)
    assert tls_proxy.log.read_text("utf-8", "replace").count(tunnels) == 2  # Describe and Put


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


def test_a_large_body_handed_over_arrives_whole_in_chunks(loop: str, tls: bool, pki: Pki) -> None:
    """A 5 MB body (packed requests are up to ~5.6 MB) goes out in chunks at the transport's
    pace and arrives byte for byte; handed over in a list, the pool keeps the only reference."""

    async def echo_digest(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer_bytes(hashlib.sha256(request.body).hexdigest().encode()))
        await writer.drain()
        return True

    async def main() -> None:
        served = await serve(echo_digest, pki.server if tls else None)
        pool = pool_for(served, pki)
        body = bytes(range(256)) * (5_000_000 // 256)
        expected = hashlib.sha256(body).hexdigest().encode()
        for _ in range(2):  # the same connection carries the next one too
            parcel = [body]
            answer = await pool.post({}, parcel)
            assert parcel == []
            assert answer.body == expected
        await pool.close()
        served.server.close()
        assert served.scripted.connections == 1

    run(loop, main())


def test_an_absurd_content_length_is_refused_not_allocated(loop: str) -> None:
    async def huge(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nabc")
        await writer.drain()
        return True

    async def main() -> None:
        served = await serve(huge)
        pool = pool_for(served)
        with pytest.raises(http1.ConnectionLostError, match="Content-Length"):
            await pool.post({}, b"q")
        await pool.close()
        served.server.close()

    run(loop, main())
