"""Group commit: one writer thread owns a `SegmentLog`; the event loop hands it record groups.

Appends made while the thread is busy (writing or fsyncing the previous group) are written
together next, in one ``write`` and one ``fdatasync``: fsync latency limits how soon one append
returns, not the throughput. With ``sync="interval"`` a group's future resolves once it is
written (it survives kill -9, not power loss) and a timer fdatasyncs every `sync_interval_s`.

A full disk (ENOSPC, EDQUOT, EFBIG) or the log's byte bound is backpressure: the group is
retried with capped backoff until `full_timeout_s`, then its future fails with `SpoolFullError`
(nothing was stored; never a silent drop).
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, Literal, TypeVar, TypeVarTuple

import structlog

from ingest.errors import SpoolFullError, SpoolIOError
from ingest.spool.log import Recovery, SegmentLog

__all__ = ["GroupWriter", "SyncMode"]

_log = structlog.get_logger(__name__)
_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_BOUND_ERRNO: Final = -1  # our own "byte bound reached" marker
SyncMode = Literal["group", "interval"]
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _BoundReached(OSError):
    pass


class GroupWriter:
    """Owns `log` (opened by `open`) on one thread; see the module doc. Sizes in bytes,
    durations in seconds; `max_bytes` (None: no bound) caps the log's segment bytes."""

    def __init__(
        self,
        log: SegmentLog,
        *,
        sync: SyncMode = "group",
        sync_interval_s: float = 0.2,
        full_timeout_s: float = 30.0,
        max_bytes: int | None = None,
    ) -> None:
        self.log = log
        self.sync_mode = sync
        self.sync_interval_s = sync_interval_s
        self.full_timeout_s = full_timeout_s
        self.max_bytes = max_bytes
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ingest-spool")
        self._queue: list[tuple[list[bytes], asyncio.Future[int]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        self.bytes = 0  # the log's segment bytes after the last write (read by metrics)
        self.full_since: float | None = None  # monotonic time the current "full" episode began
        self.closed = False

    async def open(self) -> Recovery:
        """Recover the log on the writer thread (it reads every segment)."""
        recovery = await self._run(self.log.open)
        self.bytes = self.log.bytes
        if self.sync_mode == "interval":
            self._syncer = asyncio.create_task(self._sync_every(), name="ingest-spool-sync")
        return recovery

    def submit(self, records: list[bytes]) -> asyncio.Future[int]:
        """Queue one group; the future gives its first seq once written (and, in group mode,
        fdatasync'd), or raises `SpoolFullError` / `SpoolIOError`."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_exception(SpoolIOError(f"{self.log.directory}: the log is closed"))
            return future
        self._queue.append((records, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="ingest-spool-writer")
        return future

    async def append(self, records: list[bytes]) -> int:
        return await self.submit(records)

    async def resolve(self, lwm: int) -> int:
        """Checkpoint `lwm` (fsync'd) and delete segments wholly below it, on the writer thread
        (after what was submitted before)."""
        deleted = await self._run(self.log.resolve, lwm)
        self.bytes = self.log.bytes
        return deleted

    async def close(self) -> None:
        """Write what is queued, sync, close the log and stop the thread (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
        if self._syncer is not None:
            self._syncer.cancel()
            await asyncio.gather(self._syncer, return_exceptions=True)
        try:
            await self._run(self.log.close)
        finally:
            self._executor.shutdown(wait=False)

    # -- the writer ---------------------------------------------------------------------------

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                firsts = await self._write_with_backpressure([records for records, _ in batch])
            except Exception as exc:  # every waiter of the group learns why
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), first in zip(batch, firsts, strict=True):
                if not future.done():
                    future.set_result(first)

    async def _write_with_backpressure(self, groups: list[list[bytes]]) -> list[int]:
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        delay = 0.01
        while True:
            try:
                firsts = await self._run(self._write, groups)
            except OSError as exc:
                bound = isinstance(exc, _BoundReached)
                if not bound and exc.errno not in _FULL:
                    raise SpoolIOError(f"{self.log.directory}: write failed: {exc}") from exc
                now = loop.time()
                if deadline is None:
                    deadline = now + self.full_timeout_s
                    if self.full_since is None:
                        self.full_since = now
                        _log.warning(
                            "spool_full",
                            directory=self.log.directory,
                            reason="byte bound reached" if bound else str(exc),
                            bytes=self.log.bytes,
                            max_bytes=self.max_bytes,
                            waiting_s=self.full_timeout_s,
                        )
                if now >= deadline:
                    what = (
                        f"the byte bound ({self.max_bytes} bytes) is reached"
                        if bound
                        else f"the disk is full ({exc.strerror or exc})"
                    )
                    raise SpoolFullError(
                        f"{self.log.directory}: {what} and stayed so for "
                        f"{self.full_timeout_s} s; the records were not stored there"
                    ) from None
                await asyncio.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 0.5)
                continue
            if self.full_since is not None:
                _log.info("spool_writable_again", directory=self.log.directory)
                self.full_since = None
            return firsts

    def _write(self, groups: list[list[bytes]]) -> list[int]:
        """On the writer thread: one write (and in group mode one fdatasync) for all groups."""
        log = self.log
        if self.max_bytes is not None:
            size = sum(len(r) + 4 for records in groups for r in records) + 16 * len(groups)
            if log.bytes + size > self.max_bytes:
                raise _BoundReached(_BOUND_ERRNO, "byte bound reached")
        firsts = log.append(groups)
        if self.sync_mode == "group":
            log.sync()
        self.bytes = log.bytes
        return firsts

    async def _sync_every(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval_s)
            try:
                await self._run(self.log.sync)
            except Exception as exc:  # SpoolIOError: the log is degraded; writes will say so
                _log.error("spool_sync_failed", directory=self.log.directory, error=str(exc))
                return

    async def _run(self, function: Callable[[*Ts], T], *args: *Ts) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
