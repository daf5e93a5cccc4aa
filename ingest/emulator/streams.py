"""Delivery streams: their description, and a buffer flushed to S3-style objects on its hints.

Memory is bounded by the hints: a buffer that reaches its size is written out before the
request that filled it is answered, and only one write per stream runs at a time, so a stream
holds at most about twice its size hint plus the calls in flight.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from ingest.emulator.delivery import ObjectWriter, object_key
from ingest.emulator.quotas import StreamQuota
from ingest.emulator.stats import EmulatorStats

log = structlog.get_logger(__name__)
MIB = 1024 * 1024
VERSION_ID = "1"


class Stream:
    """One DirectPut stream with an S3-style destination."""

    def __init__(
        self,
        name: str,
        arn: str,
        destination: dict[str, Any],
        *,
        buffer_size_bytes: int,
        buffer_interval_s: float,
        quota: StreamQuota,
        writer: ObjectWriter,
        stats: EmulatorStats,
        record_log: bool,
    ) -> None:
        self.name = name
        self.arn = arn
        self.destination = destination
        self.prefix: str = destination.get("Prefix", "")
        self.buffer_size_bytes = buffer_size_bytes
        self.buffer_interval_s = buffer_interval_s
        self.quota = quota
        self.created = time.time()
        self.records: list[bytes] | None = [] if record_log else None
        self._writer = writer
        self._stats = stats
        self._chunks: list[bytes] = []
        self._size = 0
        self._oldest = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._flush_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    @property
    def buffered_bytes(self) -> int:
        return self._size

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
        self._size += len(chunk)
        self._stats.records_accepted += len(datas)
        self._stats.bytes_accepted += len(chunk)
        return self._size >= self.buffer_size_bytes or self.buffer_interval_s == 0

    async def flush(self) -> None:
        """Write everything buffered as one object (in a worker thread); no-op when empty."""
        async with self._flush_lock:
            if not self._chunks:
                return
            chunks, oldest, size = self._chunks, self._oldest, self._size
            self._chunks, self._size = [], 0
            self._cancel_timer()
            if size == 0:
                return  # only empty records: Firehose delivers no empty objects
            key = object_key(self.prefix, self.name, VERSION_ID, oldest)
            written = await asyncio.to_thread(self._writer.write, key, chunks)
            self._stats.objects_written += 1
            self._stats.bytes_written += written

    async def close(self) -> None:
        """Flush and stop the interval timer."""
        self._cancel_timer()
        await self.flush()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _arm_timer(self) -> None:
        if self.buffer_interval_s > 0 and self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.buffer_interval_s, self._on_interval)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_interval(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._background.add(task)
        task.add_done_callback(self._interval_flush_done)

    def _interval_flush_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Nobody awaits a timer's flush: say why the data could not be written.
            log.error("emulator_flush_failed", stream=self.name, error=repr(task.exception()))

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
