"""A minimal keep-alive HTTP/1.1 client for one endpoint: POST one body, read one answer.

Why not aiohttp: PutRecordBatch needs none of a general client's features (cookies, redirects,
compression, multipart, tracing, header multidicts, a streamed body), and their per-request cost
was a third of a request's CPU on one core. Here a request is one ``writelines`` of a prebuilt
head and the body, and the answer is parsed from one growing buffer by a `BufferedProtocol`.

The buffered protocol matters over TLS: with a plain `Protocol`, asyncio's and uvloop's SSL
transports decrypt every read into a fresh 256 KiB ``bytes`` (``SSLObject.read(256 KiB)``), an
allocation above malloc's mmap threshold that costs ~20 us per read even for a 200-byte answer;
with a buffered protocol they decrypt straight into our buffer.

Plain asyncio APIs only (``create_connection``, ``start_tls``, transports), so it runs on uvloop
and on the default loop alike. What it does:

- a pool of at most `max_connections` keep-alive connections; a connection goes back to the pool
  only after its answer was read in full, and is dropped when the answer said
  ``Connection: close``, when the server closed it while idle (seen before anything is written,
  so a stale keep-alive connection never turns a request into an ambiguous failure), or when the
  request failed or was cancelled (the connection is aborted, never reused);
- answers framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
  connection; ``1xx`` interim answers are skipped;
- TLS with the caller's `ssl.SSLContext` (SNI and host-name check are the context's);
- an ``http://`` proxy: a CONNECT tunnel then TLS (``loop.start_tls``) for an ``https://``
  endpoint, the proxy headers on the CONNECT only; absolute-URI requests with the proxy headers
  on each request for an ``http://`` endpoint. An ``https://`` proxy is not supported here
  (`supports_proxy`); the caller uses another client for it.

Errors say how far a request got, which decides whether it may have been stored:
`ConnectError` / `ProxyConnectError` / `ProxyRefusedError` / `TlsCertificateError` /
`TlsHandshakeError` before any byte of the request was written, `AnswerTimeoutError` and
`ConnectionLostError` after.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final, NamedTuple, cast
from urllib.parse import urlsplit

__all__ = [
    "Answer",
    "AnswerTimeoutError",
    "ConnectError",
    "ConnectionLostError",
    "Http1Error",
    "Http1Pool",
    "PoolTimeoutError",
    "ProxyConnectError",
    "ProxyRefusedError",
    "TlsCertificateError",
    "TlsHandshakeError",
    "supports_proxy",
]

_INITIAL_BUFFER: Final = 64 * 1024  # one read of a typical answer (a 500-entry one is ~20 KiB)
#: A buffer grown for larger answers is kept up to this size (AWS's RecordIds make a 500-entry
#: answer ~120 KiB: growing it again for every answer would cost an allocation each time).
_KEEP_BUFFER: Final = 256 * 1024
_MAX_HEAD: Final = 64 * 1024  # an answer head larger than this is not HTTP we can use
#: An answer body larger than this is refused rather than buffered (a PutRecordBatch answer is
#: at most ~120 KiB): a wrong Content-Length must not make us allocate gigabytes.
_MAX_ANSWER: Final = 64 * 1024 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class Answer(NamedTuple):
    """One HTTP answer: status, reason phrase, the two AWS headers we read, the body."""

    status: int
    reason: str
    request_id: str | None
    error_type: str | None
    body: bytes


class Http1Error(Exception):
    """A request failed; subclasses say how far it got. `cause` is the underlying error."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class ConnectError(Http1Error):
    """The endpoint could not be reached (DNS, refused, connect timeout): nothing was sent."""


class ProxyConnectError(ConnectError):
    """The proxy could not be reached, or dropped the CONNECT: nothing reached the endpoint."""


class ProxyRefusedError(ConnectError):
    """The proxy answered the CONNECT with a non-2xx status (e.g. 407)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"proxy answered {status} {reason} to CONNECT")
        self.status = status
        self.reason = reason


class TlsCertificateError(ConnectError):
    """The endpoint's certificate is not trusted (chain or host name)."""


class TlsHandshakeError(ConnectError):
    """The TLS handshake failed for another reason (protocol, cipher, a reset mid-handshake)."""


class PoolTimeoutError(Http1Error, TimeoutError):
    """No connection of the pool became free before the request's deadline: nothing was sent."""


class AnswerTimeoutError(Http1Error, TimeoutError):
    """The request was (at least partly) written but no complete answer came in time."""


class ConnectionLostError(Http1Error):
    """The connection broke (or the answer was not HTTP) after the request was (partly) written."""


def supports_proxy(proxy: str | None) -> bool:
    """Whether `Http1Pool` can use `proxy` (None, or an ``http://`` proxy)."""
    return proxy is None or urlsplit(proxy).scheme == "http"


def _host_port(url: str) -> tuple[str, int, str]:
    """(host to connect to, port, Host header value) of `url`: the header as botocore's signer
    derives it (lowercase, the port only when not the scheme's default, IPv6 in brackets)."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    header = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != _DEFAULT_PORTS[parts.scheme]:
        header = f"{header}:{parts.port}"
    return host, port, header


#: Requests larger than this are written in chunks of this size, at the transport's pace.
_WRITE_CHUNK = 256 * 1024


def _chunks(pieces: list[bytes]) -> Iterator[bytes | memoryview]:
    for piece in pieces:
        if len(piece) <= _WRITE_CHUNK:
            yield piece
            continue
        view = memoryview(piece)
        for start in range(0, len(view), _WRITE_CHUNK):
            yield view[start : start + _WRITE_CHUNK]


class _Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection: writes a request, parses the answer into one buffer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        #: The connection cannot carry another request (closed, EOF, stray bytes, close asked).
        self.done = False
        self._buf = bytearray(_INITIAL_BUFFER)
        self._view = memoryview(self._buf)
        self._used = 0
        self._waiter: asyncio.Future[Answer] | None = None
        self._tunnel = False  # the answer awaited is a proxy's to CONNECT: no body follows
        # What of the request is still to be written (a large body goes in chunks, each once
        # the transport has room), and whether the transport asked us to pause.
        self._unsent: Iterator[bytes | memoryview] | None = None
        self._paused = False
        self._reset_answer()

    def _reset_answer(self) -> None:
        self._scanned = 0  # where the search for the head's end resumes
        self._head_end = -1  # index just past the head's blank line, once found
        self._status = 0
        self._reason = ""
        self._request_id: str | None = None
        self._error_type: str | None = None
        self._length = -1  # body bytes by Content-Length; -1 chunked or to EOF
        self._chunked = False
        self._chunk_pos = 0  # chunked: where the next chunk-size line starts
        self._chunks: list[bytes] = []
        self._keep_alive = True

    # asyncio protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._used == len(self._buf):
            if self._used >= _MAX_ANSWER + _MAX_HEAD:  # an answer read to EOF that never ends
                raise ValueError(f"an answer over {_MAX_ANSWER} bytes")
            self._grow(2 * len(self._buf))
        return self._view[self._used :]

    def buffer_updated(self, nbytes: int) -> None:
        self._used += nbytes
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for (an idle keep-alive connection): it is out of step.
            self._discard()
            return
        try:
            self._parse()
        except ValueError as exc:
            self._fail(ConnectionLostError(f"the answer is not HTTP/1.1 we can read: {exc}"))

    def eof_received(self) -> bool:
        self.done = True
        if self._head_end >= 0 and self._length < 0 and not self._chunked:
            self._finish(bytes(self._view[self._head_end : self._used]))  # framed by the EOF
        return False  # let the transport close

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._write_more()

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        self._unsent = None
        if self._waiter is not None and not self._waiter.done():
            if exc is None and self._head_end >= 0 and self._length < 0 and not self._chunked:
                self._finish(bytes(self._view[self._head_end : self._used]))
                return
            what = f"{type(exc).__name__}: {exc}" if exc else "the server closed the connection"
            self._fail(ConnectionLostError(f"{what} before the answer was complete", exc))

    # requests

    def usable(self) -> bool:
        """Whether a new request may be written now: nothing arrived or broke while idle."""
        transport = self.transport
        return not self.done and transport is not None and not transport.is_closing()

    def send(self, pieces: list[bytes], *, tunnel: bool = False) -> asyncio.Future[Answer]:
        """Write the request; the future gets the answer, or a `ConnectionLostError`."""
        assert self.transport is not None
        self._reset_answer()
        self._used = 0
        self._tunnel = tunnel
        waiter = self._waiter = self._loop.create_future()
        if sum(map(len, pieces)) <= _WRITE_CHUNK:
            self.transport.writelines(pieces)
        else:
            self._unsent = _chunks(pieces)
            self._write_more()
        return waiter

    def _write_more(self) -> None:
        """Write chunks of the request until the transport pauses us (`resume_writing` goes
        on). A TLS transport encrypts all it is given into a memory buffer that keeps its
        largest size for the connection's life: fed in chunks, a 4 MiB body costs the
        connection ~256 KiB of such buffers, not the body's size again (and again per
        connection in the pool)."""
        unsent, transport = self._unsent, self.transport
        if unsent is None or transport is None:
            return
        for chunk in unsent:
            transport.write(chunk)
            if self._paused:
                return
        self._unsent = None

    def time_out(self, seconds: float) -> None:
        """The request's deadline passed (a timer callback)."""
        if self._waiter is not None and not self._waiter.done():
            self._fail(AnswerTimeoutError(f"no complete answer within {seconds} s"))

    def finished_cleanly(self) -> bool:
        """After an answer: whether the connection can carry the next request."""
        transport = self.transport
        return (
            self._keep_alive
            and self.usable()
            and transport is not None
            and self._unsent is None
            and transport.get_write_buffer_size() == 0  # an early answer, request not all sent
        )

    def abort(self) -> None:
        """Drop the connection at once (no TLS close_notify, unsent bytes discarded)."""
        self.done = True
        self._unsent = None
        self._waiter = None
        if self.transport is not None:
            self.transport.abort()

    def shut(self, error: Http1Error) -> None:
        """Abort the connection; a request waiting on it fails with `error` now."""
        self._fail(error)
        self.abort()

    def close(self) -> None:
        self.done = True
        if self.transport is not None:
            self.transport.close()

    # parsing

    def _grow(self, size: int) -> None:
        buf = bytearray(size)
        buf[: self._used] = self._view[: self._used]
        self._buf, self._view = buf, memoryview(buf)

    def _discard(self) -> None:
        self.done = True
        self._used = 0
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: Http1Error) -> None:
        self.done = True
        self._unsent = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def _finish(self, body: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            answer = Answer(self._status, self._reason, self._request_id, self._error_type, body)
            waiter.set_result(answer)
        if len(self._buf) > _KEEP_BUFFER:  # a very large answer: not kept per idle connection
            self._buf = bytearray(_INITIAL_BUFFER)
            self._view = memoryview(self._buf)
        self._used = 0

    def _parse(self) -> None:
        while self._head_end < 0:
            end = self._buf.find(b"\r\n\r\n", self._scanned, self._used)
            if end < 0:
                if self._used > _MAX_HEAD:
                    raise ValueError(f"no end of the answer head in {_MAX_HEAD} bytes")
                self._scanned = max(0, self._used - 3)
                return
            self._head(bytes(self._view[: end + 2]), end + 4)
        if self._tunnel:  # a refusal's body is of no use: the connection is dropped
            if 200 <= self._status < 300 and self._used > self._head_end:
                raise ValueError("bytes after the proxy's answer to CONNECT")
            self._finish(b"")
        elif self._chunked:
            self._parse_chunks()
        elif self._length >= 0:
            end = self._head_end + self._length
            if self._used >= end:
                self._keep_alive &= self._used == end  # bytes after it: out of step, drop it
                self._finish(bytes(self._view[self._head_end : end]))
            elif end > len(self._buf):
                self._grow(end)

    def _head(self, head: bytes, end: int) -> None:
        """Read the status line and the headers we use from `head` (which ends with CRLF)."""
        line_end = head.index(b"\r\n")
        status_line = head[:line_end].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ValueError(f"status line {head[:line_end][:80]!r}")
        status = int(status_line[1])
        if 100 <= status < 200 and status != 101:  # an interim answer: the real one follows
            rest = bytes(self._view[end : self._used])
            self._view[: len(rest)] = rest
            self._used = len(rest)
            self._scanned = 0
            return
        lower = head.lower()  # same length: values are sliced from `head` at the same offsets
        self._status = status
        self._reason = status_line[2].decode("latin-1") if len(status_line) > 2 else ""
        self._request_id = _header(head, lower, b"\r\nx-amzn-requestid:")
        self._error_type = _header(head, lower, b"\r\nx-amzn-errortype:")
        connection = (_header(head, lower, b"\r\nconnection:") or "").lower()
        if status_line[0] == b"HTTP/1.0":
            self._keep_alive = "keep-alive" in connection
        else:
            self._keep_alive = "close" not in connection
        encoding = (_header(head, lower, b"\r\ntransfer-encoding:") or "").lower()
        length = _header(head, lower, b"\r\ncontent-length:")
        if status in (204, 304) or self._tunnel:
            self._length = 0
        elif encoding.rstrip().endswith("chunked"):
            self._chunked = True
        elif length is not None:
            self._length = int(length)
            if not 0 <= self._length <= _MAX_ANSWER:
                raise ValueError(f"Content-Length {length!r} (at most {_MAX_ANSWER} accepted)")
        else:
            self._keep_alive = False  # the body ends with the connection
        self._head_end = end
        self._chunk_pos = end

    def _parse_chunks(self) -> None:
        buf, pos = self._buf, self._chunk_pos
        while True:
            line_end = buf.find(b"\r\n", pos, self._used)
            if line_end < 0:
                break
            size = int(bytes(buf[pos:line_end]).split(b";", 1)[0].strip(), 16)
            if size == 0:
                # Trailers (ignored) end with an empty line.
                if buf[line_end + 2 : line_end + 4] == b"\r\n":
                    trailer_end = line_end + 4
                else:
                    found = buf.find(b"\r\n\r\n", line_end, self._used)
                    if found < 0:
                        break
                    trailer_end = found + 4
                self._keep_alive &= self._used == trailer_end
                self._finish(b"".join(self._chunks))
                return
            data_end = line_end + 2 + size
            if data_end > _MAX_ANSWER:
                raise ValueError(f"a chunked answer over {_MAX_ANSWER} bytes")
            if self._used < data_end + 2:
                if data_end + 2 > len(self._buf):
                    self._grow(data_end + 2)
                break
            if buf[data_end : data_end + 2] != b"\r\n":
                raise ValueError("a chunk does not end with CRLF")
            self._chunks.append(bytes(buf[line_end + 2 : data_end]))
            pos = data_end + 2
        self._chunk_pos = pos


def _header(head: bytes, lower: bytes, name: bytes) -> str | None:
    """The value of the first header `name` (lowercase, with its leading CRLF and colon)."""
    start = lower.find(name)
    if start < 0:
        return None
    start += len(name)
    end = head.find(b"\r\n", start)
    return head[start:end].strip().decode("latin-1")


class Http1Pool:
    """Keep-alive connections to one endpoint (``http://`` or ``https://`` `url`).

    `ssl_context` is used for an ``https://`` endpoint (required then). `proxy` is an
    ``http://host:port`` URL or None; `proxy_headers` go on the CONNECT of a tunnel, or on every
    request forwarded to an ``http://`` endpoint. `connect_timeout_s` bounds reaching the
    endpoint (TCP, proxy CONNECT, TLS handshake), `request_timeout_s` a whole request
    (waiting for a free connection, connecting, sending, the complete answer). A connection
    idle for more than `keepalive_idle_s` is closed instead of reused (aiohttp's default, which
    the data path had): one that a NAT or load balancer dropped silently would otherwise turn
    the next request into an ambiguous timeout.
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        proxy_headers: dict[str, str] | None = None,
        max_connections: int = 8,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 10.0,
        keepalive_idle_s: float = 15.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        if not supports_proxy(proxy):
            raise ValueError(f"only an http:// proxy is supported, got {proxy!r}")
        self._host, self._port, self._host_header = _host_port(url)
        self._tls = url.startswith("https:")
        if self._tls and ssl_context is None:
            raise ValueError("an https:// endpoint needs an ssl_context")
        self._ssl = ssl_context if self._tls else None
        self._proxy: tuple[str, int] | None = None
        proxy_lines = "".join(f"{k}: {v}\r\n" for k, v in (proxy_headers or {}).items())
        target = urlsplit(url).path or "/"
        self._connect_head = b""
        if proxy is not None:
            proxy_host, proxy_port, _ = _host_port(proxy)
            self._proxy = (proxy_host, proxy_port)
            if self._tls:  # a tunnel: proxy headers on the CONNECT only
                host = f"[{self._host}]" if ":" in self._host else self._host
                authority = f"{host}:{self._port}"
                self._connect_head = (
                    f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{proxy_lines}\r\n"
                ).encode()
                proxy_lines = ""
            else:  # forwarded: the absolute URI, proxy headers on every request
                target = f"http://{self._host_header}{target}"
        else:
            proxy_lines = ""
        self._request_line = f"POST {target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        self._proxy_lines = proxy_lines
        self._max = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._keepalive_idle_s = keepalive_idle_s
        # (connection, idle since): LIFO, the most recently used is the least stale
        self._idle: list[tuple[_Connection, float]] = []
        self._all: set[_Connection] = set()
        self._busy = 0  # requests holding a connection slot
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def post(
        self,
        headers: dict[str, str],
        body: bytes | list[bytes],
        on_sending: Callable[[], None] | None = None,
    ) -> Answer:
        """POST `body` with `headers` (Host and Content-Length are added); the answer.

        `body` may be handed over as a one-element list, which is emptied: the pool then holds
        the only reference and drops it once the request is written (the transport keeps what
        the socket has not taken yet), so a large body does not stay for the whole answer.
        `on_sending` (optional) is called just before the request's first byte is written:
        until then (waiting for a connection, connecting) the server cannot have seen it.

        Raises an `Http1Error` subclass (see the module's docstring); on cancellation the
        connection is aborted, never reused.
        """
        if isinstance(body, list):
            body = body.pop()
        if self._closed:
            raise RuntimeError("Http1Pool is closed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self._request_timeout_s
        head = "".join(
            [
                self._request_line,
                *[f"{k}: {v}\r\n" for k, v in headers.items()],
                self._proxy_lines,
                f"Content-Length: {len(body)}\r\n\r\n",
            ]
        ).encode()
        if self._busy >= self._max:
            await self._wait_slot(loop, deadline)
        self._busy += 1
        connection: _Connection | None = None
        try:
            if self._closed:
                raise ConnectError("the client was closed")
            connection = self._idle_connection(now)
            if connection is None:
                connection = await self._connect(loop, deadline)
            if on_sending is not None:
                on_sending()
            waiter = connection.send([head, body] if body else [head])
            del body  # written (or buffered by the transport): not kept until the answer
            timer = loop.call_at(deadline, connection.time_out, self._request_timeout_s)
            try:
                answer = await waiter
            finally:
                timer.cancel()
        except BaseException:
            if connection is not None:
                self._drop(connection)
            raise
        finally:
            self._busy -= 1
            self._wake_slot_waiter()
        if connection.finished_cleanly() and not self._closed:
            self._idle.append((connection, loop.time()))
        else:
            self._drop(connection, graceful=True)
        return answer

    async def close(self) -> None:
        """Close every connection (requests in flight fail with `ConnectionLostError`)."""
        self._closed = True
        for connection in list(self._all):
            connection.shut(ConnectionLostError("the client was closed"))
        self._all.clear()
        self._idle.clear()
        for waiter in self._slot_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectError("the client was closed"))
        self._slot_waiters.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost

    # pool internals

    async def _wait_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter in self._slot_waiters:
                self._slot_waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake_slot_waiter()  # woken but leaving: pass the free slot on
            if isinstance(exc, TimeoutError):
                message = f"no connection free within {self._request_timeout_s} s"
                raise PoolTimeoutError(message) from None
            raise
        while self._busy >= self._max:  # woken, but another request took the slot first
            await self._wait_slot(loop, deadline)

    def _wake_slot_waiter(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _idle_connection(self, now: float) -> _Connection | None:
        while self._idle:
            connection, since = self._idle.pop()
            if now - since > self._keepalive_idle_s:
                # It and every connection below it (idle longer) are too old to trust.
                for older, _ in self._idle:
                    self._drop(older, graceful=True)
                self._idle.clear()
                self._drop(connection, graceful=True)
                return None
            if connection.usable():
                return connection
            self._drop(connection)  # closed (or talked) while idle: a fresh one is safer
        return None

    def _drop(self, connection: _Connection, *, graceful: bool = False) -> None:
        self._all.discard(connection)
        if graceful:
            connection.close()
        else:
            connection.abort()

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        connection = _Connection(loop)
        self._all.add(connection)
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout_s)):
                await self._open(loop, connection)
        except TimeoutError as exc:
            self._drop(connection)
            where = f"{self._host}:{self._port}"
            if self._proxy is not None and connection.transport is None:
                message = f"no connection within {self._connect_timeout_s} s"
                raise ProxyConnectError(message, exc) from exc
            raise ConnectError(
                f"cannot connect to {where} within {self._connect_timeout_s} s", exc
            ) from exc
        except BaseException:
            self._drop(connection)
            raise
        if self._closed:
            self._drop(connection)
            raise ConnectError("the client was closed")
        return connection

    async def _open(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        if self._proxy is None:
            try:
                await loop.create_connection(
                    lambda: connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None,
                )
            except ssl.SSLCertVerificationError as exc:
                raise TlsCertificateError(str(exc), exc) from exc
            except ssl.SSLError as exc:
                raise TlsHandshakeError(str(exc), exc) from exc
            except OSError as exc:  # DNS, refused, unreachable, reset before any request
                where = f"{self._host}:{self._port}"
                raise ConnectError(f"cannot connect to {where}: {_describe(exc)}", exc) from exc
            return
        proxy_host, proxy_port = self._proxy
        try:
            await loop.create_connection(lambda: connection, proxy_host, proxy_port)
        except OSError as exc:
            raise ProxyConnectError(_describe(exc), exc) from exc
        if not self._tls:
            return  # requests are forwarded with their absolute URI
        try:
            answer = await connection.send([self._connect_head], tunnel=True)
        except ConnectionLostError as exc:
            raise ProxyConnectError(f"the proxy dropped the CONNECT: {exc}", exc.cause) from exc
        if not 200 <= answer.status < 300:
            raise ProxyRefusedError(answer.status, answer.reason)
        assert connection.transport is not None
        assert self._ssl is not None
        try:
            transport = await loop.start_tls(
                connection.transport, connection, self._ssl, server_hostname=self._host
            )
        except ssl.SSLCertVerificationError as exc:
            raise TlsCertificateError(str(exc), exc) from exc
        except (ssl.SSLError, OSError) as exc:
            raise TlsHandshakeError(str(exc), exc) from exc
        if transport is None:  # pragma: no cover - only when the loop closes mid-handshake
            raise TlsHandshakeError("the TLS handshake through the proxy did not complete")
        connection.transport = transport


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
