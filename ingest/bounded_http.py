"""Bounded aiohttp servers: what slow, stuck or abandoned clients can hold is capped.

Both HTTP servers, the service's health/metrics port and the emulator, serve through
`BoundedServer`, so a flood of clients that send a byte a second (or connect and say nothing)
cannot take every file descriptor, starve the event loop or fill memory:

- **Connection cap**, below the process's file-descriptor limit: the cap plus one accept burst
  (asyncio accepts up to ``backlog`` sockets before any of them reaches us) stays within a share
  of the soft ``RLIMIT_NOFILE``, so the rest stays free for the process's own outbound
  connections and files, and accept() never meets EMFILE (asyncio would then stop accepting
  for a second and log an error per attempt).
  At the cap a new connection evicts the connection that has waited longest for its request head
  (a slow client), else the longest-idle keep-alive connection; if every connection is busy with
  a request, the new one is closed at once. A probe that sends its request at once therefore
  always gets in, even while thousands of slow clients keep reconnecting.
- **Header timeout**: a request head must arrive within ``header_timeout_s`` of the connection
  opening (or of its first byte after an idle keep-alive pause); **idle timeout** for keep-alive.
- **Body timeout and buffered-bytes budget**: bodies are read through `BoundedServer.body`, which
  reserves the body's size from one budget shared by all connections (``max_buffered_bytes``)
  and bounds the read by ``body_timeout_s``. A body that does not fit is refused (the caller
  answers a retriable error) instead of taking memory; an aborted body's buffer is emptied at
  once, not when the cyclic garbage collector gets to it.
- **One log line per kind of refusal per interval** (with the count), never one per connection.

Library code: no logging configuration and no signal handlers here.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "BodyTimeoutError",
    "BoundedServer",
    "BudgetExhaustedError",
    "ServerLimits",
    "fd_soft_limit",
]

log = structlog.get_logger(__name__)

#: Never derive a cap below this (a tiny fd limit still serves a few probes).
MIN_CONNECTIONS: Final = 8
#: How often timeouts are enforced and pending refusal counts are logged, seconds.
SWEEP_INTERVAL_S: Final = 0.5
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class BudgetExhaustedError(Exception):
    """The body does not fit in the buffered-bytes budget now: answer a retriable error."""


class BodyTimeoutError(Exception):
    """The body did not arrive within ``body_timeout_s``: answer 408 and close."""


def fd_soft_limit() -> int:
    """The soft RLIMIT_NOFILE of this process (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    """What one server may hold. Durations in seconds, sizes in bytes.

    ``max_connections=None`` means ``fd_share`` of the soft fd limit less ``backlog``, at most
    ``default_max_connections``; an explicit value is still clamped to that, because accepting
    past the fd limit fails every other socket and file of the process. ``backlog`` is the
    listen queue, and also how many sockets asyncio accepts in one go.
    """

    max_connections: int | None = None
    default_max_connections: int = 1024
    fd_share: float = 0.25
    backlog: int = 128
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    max_buffered_bytes: int = 64 * 1024 * 1024
    log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        cap = self.max_connections
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_connections={cap!r}: expected an integer >= 1 or None")
        for name in ("header_timeout_s", "body_timeout_s", "idle_timeout_s", "log_interval_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name}={value!r}: expected a number of seconds > 0")
        budget = self.max_buffered_bytes
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ValueError(f"max_buffered_bytes={budget!r}: expected an integer >= 1")
        if isinstance(self.backlog, bool) or not isinstance(self.backlog, int) or self.backlog < 1:
            raise ValueError(f"backlog={self.backlog!r}: expected an integer >= 1")
        if not 0 < self.fd_share <= 1:
            raise ValueError(f"fd_share={self.fd_share!r}: expected a fraction in (0, 1]")

    def fd_ceiling(self, soft_limit: int | None = None) -> int:
        """The most connections the fd limit allows this server: its share, less one accept
        burst."""
        soft = fd_soft_limit() if soft_limit is None else soft_limit
        return max(MIN_CONNECTIONS, int(soft * self.fd_share) - self.backlog)

    def connection_cap(self, soft_limit: int | None = None) -> int:
        """The effective connection cap for a process whose soft fd limit is ``soft_limit``."""
        wanted = (
            self.default_max_connections if self.max_connections is None else self.max_connections
        )
        return min(wanted, self.fd_ceiling(soft_limit))


class RefusalLog:
    """Counts refusals by kind; logs the first of a kind at once, then at most one line per kind
    per interval carrying the count since the last line."""

    def __init__(self, server: str, interval_s: float, clock: Callable[[], float]) -> None:
        self._server = server
        self._interval_s = interval_s
        self._clock = clock
        self._pending: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self.totals: dict[str, int] = {}  # refusals by kind
        self.lines: dict[str, int] = {}  # log lines written by kind

    @property
    def pending(self) -> bool:
        """Whether some refusals are counted but not logged yet."""
        return bool(self._pending)

    def note(self, kind: str) -> None:
        self.totals[kind] = self.totals.get(kind, 0) + 1
        self._pending[kind] = self._pending.get(kind, 0) + 1
        last = self._last.get(kind)
        if last is None or self._clock() - last >= self._interval_s:
            self._emit(kind)

    def flush(self, *, force: bool = False) -> None:
        """Log the counts whose interval has passed (all of them with ``force``)."""
        now = self._clock()
        for kind in list(self._pending):
            if force or now - self._last.get(kind, 0.0) >= self._interval_s:
                self._emit(kind)

    def _emit(self, kind: str) -> None:
        count = self._pending.pop(kind, 0)
        if not count:
            return
        self._last[kind] = self._clock()
        self.lines[kind] = self.lines.get(kind, 0) + 1
        log.warning(
            "http_refused",
            server=self._server,
            kind=kind,
            count=count,
            total=self.totals[kind],
            interval_s=self._interval_s,
        )


class _Guarded(RequestHandler):
    """aiohttp's connection protocol, reporting its life to the server's bookkeeping."""

    __slots__ = ("_bounded",)

    def __init__(self, manager: BoundedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._bounded = manager

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._bounded._opened(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._bounded._lost(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        bounded = self._bounded
        if self in bounded._idle:  # a keep-alive connection starts its next request head
            bounded._waiting_head(self)
        super().data_received(data)


class BoundedServer(web.Server):
    """`aiohttp.web.Server` with the bounds of `ServerLimits`; ``name`` labels its log lines.

    Serve it with ``web.ServerRunner(server)``; call `close` when done (stops the sweeper and logs
    the last refusal counts).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        name: str,
        limits: ServerLimits,
        **kwargs: Any,
    ) -> None:
        self.name = name
        self.limits = limits
        self.cap = limits.connection_cap()
        self.buffered_bytes = 0
        self._loop_ref = asyncio.get_running_loop()
        self.refusals = RefusalLog(name, limits.log_interval_s, self._loop_ref.time)
        # Insertion-ordered: the first entry has waited longest (states are re-inserted on change).
        self._waiting: dict[_Guarded, float] = {}  # connections awaiting a request head: since
        self._idle: dict[_Guarded, float] = {}  # keep-alive connections between requests: since
        self._busy: set[_Guarded] = set()  # connections with a request being handled
        self._closing: set[_Guarded] = set()  # closed by us, not yet reported lost
        self._sweeper: asyncio.TimerHandle | None = None
        kwargs.setdefault("keepalive_timeout", limits.idle_timeout_s)
        kwargs.setdefault("lingering_time", 0)  # never keep reading a body nobody wants
        super().__init__(self._track(handler), **kwargs)

    def __call__(self) -> RequestHandler:
        return _Guarded(self, loop=self._loop_ref, **self._kwargs)

    @property
    def open_connections(self) -> int:
        return len(self._waiting) + len(self._idle) + len(self._busy)

    def close(self) -> None:
        """Stop enforcing timeouts and log what was refused since the last line."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.refusals.flush(force=True)

    def describe(self) -> dict[str, object]:
        """The effective bounds, for a start-up log line."""
        limits = self.limits
        return {
            "max_connections": self.cap,
            "fd_soft_limit": fd_soft_limit(),
            "header_timeout_s": limits.header_timeout_s,
            "body_timeout_s": limits.body_timeout_s,
            "idle_timeout_s": limits.idle_timeout_s,
            "max_buffered_bytes": limits.max_buffered_bytes,
        }

    @contextlib.asynccontextmanager
    async def body(self, request: web.BaseRequest, max_bytes: int) -> AsyncIterator[bytearray]:
        """Read the whole body of ``request`` (at most ``max_bytes``; the caller checked the
        declared length) into a buffer that is emptied when the block exits, however it exits.

        Raises `BudgetExhaustedError` when the budget cannot hold it now, `BodyTimeoutError`
        past ``body_timeout_s``, and whatever the connection raises when the client goes away.
        """
        length = request.content_length
        reserved = max_bytes if length is None else min(length, max_bytes)
        if self.buffered_bytes + reserved > self.limits.max_buffered_bytes:
            self.refusals.note("buffer_budget")
            raise BudgetExhaustedError(
                f"{self.buffered_bytes} bytes of request bodies buffered; "
                f"{reserved} more would pass the bound of {self.limits.max_buffered_bytes}"
            )
        self.buffered_bytes += reserved
        buffer = bytearray()
        try:
            try:
                async with asyncio.timeout(self.limits.body_timeout_s):
                    while chunk := await request.content.readany():
                        buffer += chunk
                        if len(buffer) > max_bytes:
                            break  # the caller sees more than max_bytes and refuses it
            except TimeoutError:
                self.refusals.note("body_timeout")
                raise BodyTimeoutError(
                    f"request body not received within {self.limits.body_timeout_s} s"
                ) from None
            yield buffer
        finally:
            # Emptied here, not by the cyclic GC: a traceback of an aborted upload can keep
            # this frame (and so the buffer) alive for a long time.
            with contextlib.suppress(BufferError):  # a view of it is still exported
                buffer.clear()
            self.buffered_bytes -= reserved

    # -- bookkeeping (called by _Guarded) --------------------------------------------------

    def _track(self, handler: Handler) -> Handler:
        async def tracked(request: web.BaseRequest) -> web.StreamResponse:
            connection = request.protocol
            if isinstance(connection, _Guarded):
                self._start_request(connection)
            try:
                return await handler(request)
            finally:
                if isinstance(connection, _Guarded):
                    self._end_request(connection)

        return tracked

    def _opened(self, connection: _Guarded) -> None:
        self._waiting[connection] = self._loop_ref.time()
        if self._sweeper is None:
            self._sweeper = self._loop_ref.call_later(SWEEP_INTERVAL_S, self._sweep)
        if self.open_connections - len(self._closing) > self.cap:
            self._make_room(connection)

    def _lost(self, connection: _Guarded) -> None:
        self._waiting.pop(connection, None)
        self._idle.pop(connection, None)
        self._busy.discard(connection)
        self._closing.discard(connection)

    def _waiting_head(self, connection: _Guarded) -> None:
        self._idle.pop(connection, None)
        self._waiting[connection] = self._loop_ref.time()

    def _start_request(self, connection: _Guarded) -> None:
        self._waiting.pop(connection, None)
        self._idle.pop(connection, None)
        self._busy.add(connection)

    def _end_request(self, connection: _Guarded) -> None:
        if connection in self._busy:
            self._busy.discard(connection)
            self._idle[connection] = self._loop_ref.time()

    def _make_room(self, newcomer: _Guarded) -> None:
        victim = next((c for c in self._waiting if c is not newcomer), None)
        kind = "slow_client_evicted"
        if victim is None:
            victim = next(iter(self._idle), None)
            kind = "idle_evicted"
        if victim is None:
            victim, kind = newcomer, "connection_cap"
        self.refusals.note(kind)
        self._drop(victim)

    def _drop(self, connection: _Guarded) -> None:
        self._waiting.pop(connection, None)
        self._idle.pop(connection, None)
        self._busy.discard(connection)
        transport = connection.transport
        if transport is None:
            return
        self._closing.add(connection)
        transport.abort()  # frees the fd now; nothing useful is left to send

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._loop_ref.time()
        header_deadline = now - self.limits.header_timeout_s
        for connection, since in list(self._waiting.items()):
            if since > header_deadline:
                break  # ordered by `since`: the rest are younger
            self.refusals.note("header_timeout")
            self._drop(connection)
        idle_deadline = now - self.limits.idle_timeout_s
        for connection, since in list(self._idle.items()):
            if since > idle_deadline:
                break
            self._drop(connection)  # an ordinary keep-alive expiry: not a refusal
        self.refusals.flush()
        if self.open_connections or self.refusals.pending:
            self._sweeper = self._loop_ref.call_later(SWEEP_INTERVAL_S, self._sweep)
