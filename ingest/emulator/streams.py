"""Delivery streams: their description, and a buffer flushed to objects on its hints.

Memory is bounded by the hints: a buffer that reaches its size is written out before the
request that filled it is answered, and only one write per stream runs at a time, so a stream
holds at most about twice its size hint plus the calls in flight.

A write that fails (disk full, S3 unreachable) loses nothing: the records go back to the front of
the buffer, the write is retried with backoff (0.1 s doubling to 1 s), and while the buffer holds
more than ``hold_limit`` bytes new calls are refused with a retriable 503 (see ``refuses``), so a
record is acknowledged only when the stream can keep it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from ingest.emulator.destinations import Destination, DestinationError
from ingest.emulator.layout import Layout
from ingest.emulator.quotas import StreamQuota
from ingest.emulator.stats import EmulatorStats

log = structlog.get_logger(__name__)
MIB = 1024 * 1024
VERSION_ID = "1"
RETRY_FIRST_S = 0.1
RETRY_MAX_S = 1.0
#: While writes keep failing, one log line per stream at most this often (never one per try).
FAILURE_LOG_INTERVAL_S = 10.0


class Stream:
    """One DirectPut stream with an S3-style destination."""

    def __init__(
        self,
        name: str,
        arn: str,
        destination: dict[str, Any],
        *,
        layout: Layout,
        buffer_size_bytes: int,
        buffer_interval_s: float,
        quota: StreamQuota,
        sink: Destination,
        stats: EmulatorStats,
        record_log: bool,
    ) -> None:
        self.name = name
        self.arn = arn
        self.destination = destination
        self.layout = layout
        self.buffer_size_bytes = buffer_size_bytes
        self.buffer_interval_s = buffer_interval_s
        self.quota = quota
        self.created = time.time()
        self.records: list[bytes] | None = [] if record_log else None
        self._sink = sink
        self._stats = stats
        self._chunks: list[bytes] = []
        self._count = 0
        self._size = 0
        self._writing = 0  # bytes taken out of the buffer by the write in progress
        self._oldest = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._retry_timer: asyncio.TimerHandle | None = None
        self._flush_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False
        #: The last write's error while writes fail; None once one succeeds.
        self.failing: DestinationError | None = None
        self._failures = 0
        self._failing_since = 0.0
        self._logged_at = 0.0

    @property
    def buffered_bytes(self) -> int:
        return self._size

    @property
    def buffered_records(self) -> int:
        return self._count

    @property
    def hold_limit(self) -> int:
        """Bytes the stream keeps in memory while its destination refuses writes."""
        return 2 * self.buffer_size_bytes

    def refuses(self, datas: list[bytes]) -> bool:
        """True when the last write failed and ``datas`` would take the buffer past its bound:
        the call must then be refused (nothing stored) rather than held without limit."""
        if self.failing is None:
            return False
        # A retry in progress has taken the buffer out: its bytes are still held.
        return self._size + self._writing + sum(map(len, datas)) > self.hold_limit

    def accept(self, datas: list[bytes]) -> bool:
        """Buffer accepted records; True when the buffer is due to be flushed now."""
        if not datas:
            return False
        chunk = b"".join(datas)
        if self.records is not None:
            self.records.extend(datas)
        if not self._chunks:
            self._oldest = time.time()
            self._arm_timer()
        self._chunks.append(chunk)
        self._count += len(datas)
        self._size += len(chunk)
        self._stats.records_accepted += len(datas)
        self._stats.bytes_accepted += len(chunk)
        if self.failing is not None:
            return False  # the retry timer writes; every call retrying would only add load
        return self._size >= self.buffer_size_bytes or self.buffer_interval_s == 0

    async def flush(self) -> None:
        """Write everything buffered as one object; no-op when empty.

        DestinationError if the write fails: the records stay buffered (ahead of any that
        arrived meanwhile) and a retry is scheduled.
        """
        async with self._flush_lock:
            if not self._chunks:
                return
            chunks, oldest, size, count = self._chunks, self._oldest, self._size, self._count
            self._chunks, self._size, self._count = [], 0, 0
            self._cancel_timer()
            if size == 0:
                return  # only empty records: Firehose delivers no empty objects
            self._writing = size
            try:
                written = await self._write(chunks, oldest)
            except BaseException as error:  # cancelled too: what was taken goes back
                self._chunks = chunks + self._chunks
                self._size += size
                self._count += count
                self._oldest = oldest
                if isinstance(error, DestinationError):
                    self._write_failed(error)
                raise
            finally:
                self._writing = 0
            self._stats.objects_written += 1
            self._stats.bytes_written += written
            if self.failing is not None:
                self._recovered()

    async def _write(self, chunks: list[bytes], oldest: float) -> int:
        body = chunks
        if self.layout.compression != "UNCOMPRESSED":
            body = await asyncio.to_thread(self.layout.encode, chunks)
        key = self.layout.object_key(self.name, VERSION_ID, oldest)
        return await self._sink.put(key, body)

    async def close(self, timeout_s: float = 0.0) -> None:
        """Stop the timers and write what is buffered, retrying failed writes for up to
        ``timeout_s`` seconds (0: one attempt). DestinationError says what could not be written.
        """
        self._closing = True
        self._cancel_timer()
        self._cancel_retry()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        deadline = time.monotonic() + timeout_s
        delay = RETRY_FIRST_S
        while True:
            try:
                await self.flush()
                return
            except DestinationError as error:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DestinationError(
                        error.errno,
                        f"{self._count} records ({self._size} bytes) of stream {self.name!r} "
                        f"could not be written: {error}",
                    ) from error
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, RETRY_MAX_S)

    def discard(self) -> tuple[int, int]:
        """Drop what is buffered (a deleted stream's last write failed); (records, bytes)."""
        dropped = (self._count, self._size)
        self._chunks, self._size, self._count = [], 0, 0
        return dropped

    # -- failures and retries -------------------------------------------------------------
    def _write_failed(self, error: DestinationError) -> None:
        self._stats.write_failures += 1
        self._failures += 1
        now = time.monotonic()
        if self.failing is None:
            self._failing_since = now
            self._logged_at = now
            log.error(
                "emulator_write_failed",
                stream=self.name,
                error=str(error),
                buffered_records=self._count,
                buffered_bytes=self._size,
                hold_limit_bytes=self.hold_limit,
                action="records kept; retrying; calls past the hold limit get 503",
            )
        elif now - self._logged_at >= FAILURE_LOG_INTERVAL_S:
            self._logged_at = now
            log.error(
                "emulator_write_still_failing",
                stream=self.name,
                error=str(error),
                attempts=self._failures,
                failing_s=round(now - self._failing_since, 1),
                buffered_records=self._count,
                buffered_bytes=self._size,
            )
        self.failing = error
        self._schedule_retry()

    def _recovered(self) -> None:
        log.info(
            "emulator_write_recovered",
            stream=self.name,
            attempts=self._failures,
            failing_s=round(time.monotonic() - self._failing_since, 1),
            buffered_bytes=self._size,
        )
        self.failing = None
        self._failures = 0
        self._cancel_retry()
        if self._chunks:
            # Records that arrived while failing: due now if the buffer is full, else on time.
            if self._size >= self.buffer_size_bytes:
                self._start_background_flush()
            else:
                self._arm_timer()

    def _schedule_retry(self) -> None:
        if self._closing or self._retry_timer is not None:
            return
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(self._failures - 1, 10))
        loop = asyncio.get_running_loop()
        self._retry_timer = loop.call_later(delay, self._on_retry)

    def _on_retry(self) -> None:
        self._retry_timer = None
        self._start_background_flush()

    def _cancel_retry(self) -> None:
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None

    # -- timers ---------------------------------------------------------------------------
    def _arm_timer(self) -> None:
        if self.buffer_interval_s > 0 and self._timer is None and not self._closing:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.buffer_interval_s, self._on_interval)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_interval(self) -> None:
        self._timer = None
        self._start_background_flush()

    def _start_background_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._quiet_flush())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quiet_flush(self) -> None:
        """A flush nobody awaits: a failed write is already logged and retried."""
        try:
            await self.flush()
        except DestinationError:
            pass
        except Exception as error:  # a bug: say so, keep serving
            log.exception("emulator_flush_crashed", stream=self.name, error=repr(error))

    # -- description ----------------------------------------------------------------------
    def buffering_hints(self) -> dict[str, int]:
        return {
            "SizeInMBs": max(1, -(-self.buffer_size_bytes // MIB)),
            "IntervalInSeconds": round(self.buffer_interval_s),
        }

    def describe(self) -> dict[str, Any]:
        s3 = {
            **self.destination,
            # The hints in force: what was given, completed with the emulator's defaults.
            "BufferingHints": self.buffering_hints(),
            "CompressionFormat": self.destination.get("CompressionFormat", "UNCOMPRESSED"),
            "EncryptionConfiguration": self.destination.get(
                "EncryptionConfiguration", {"NoEncryptionConfig": "NoEncryption"}
            ),
        }
        return {
            "DeliveryStreamName": self.name,
            "DeliveryStreamARN": self.arn,
            "DeliveryStreamStatus": "ACTIVE",
            "DeliveryStreamType": "DirectPut",
            "VersionId": VERSION_ID,
            "CreateTimestamp": self.created,
            "DeliveryStreamEncryptionConfiguration": {"Status": "DISABLED"},
            "Destinations": [
                {
                    "DestinationId": "destinationId-000000000001",
                    "S3DestinationDescription": s3,
                    "ExtendedS3DestinationDescription": s3,
                }
            ],
            "HasMoreDestinations": False,
        }
