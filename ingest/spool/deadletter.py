"""The dead-letter spool: every record that finally fails is kept on disk, never just logged.

    async with DeadLetterSpool("data/spool", stream="aws-ml-cert") as spool:
        async with Producer(on_failure=spool.handle) as producer:
            ...

`handle` is an async failure handler: the producer awaits it, and only once the group holding
the failed records is written and fdatasync'd do they count as failed (until then they are
pending and keep their queue space, so a slow or full spool is backpressure on `put`). Past
`max_bytes` (or with the disk full) the group waits `full_timeout_s`, then `handle` raises
`SpoolFullError`: the producer counts the records failed, logs them, and refuses new ones with
that error. Nothing is dropped silently.

Each entry is one JSON object (orjson) in a CRC-framed group of a `SegmentLog`: the record
(base64), stream, reason, attempts, the last error, whether it may already be stored, and
timestamps. `ingest replay` resends them; `ingest spool check` reports on them.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import orjson

from ingest.errors import SpoolIOError
from ingest.producer.stats import FailedRecord
from ingest.spool.files import FileLayer
from ingest.spool.log import DEFAULT_SEGMENT_BYTES, KIND_DEAD_LETTER, Recovery, SegmentLog
from ingest.spool.writer import GroupWriter

__all__ = ["DeadLetterSpool", "SpooledRecord", "decode_entry", "encode_entry"]

DEFAULT_SPOOL_DIR = "data/spool"
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024  # 1 GiB


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    """One dead-lettered record as read back from the spool."""

    data: bytes
    stream: str
    reason: str
    attempts: int
    first_error: str
    last_error: str
    maybe_stored: bool
    first_failed_at: str  # RFC 3339 UTC
    spooled_at: str


def _now() -> str:
    return _rfc3339(datetime.now(UTC))


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_entry(record: FailedRecord, stream: str, at: str) -> bytes:
    """One spool entry (JSON bytes) for a failed record."""
    first_error = record.first_error or record.message
    first_at = at
    if record.first_failed_at is not None:
        first_at = _rfc3339(datetime.fromtimestamp(record.first_failed_at, UTC))
    return orjson.dumps(
        {
            "v": 1,
            "stream": stream,
            "reason": record.reason,
            "attempts": record.attempts,
            "first_error": first_error,
            "last_error": record.message,
            "maybe_stored": bool(record.maybe_stored),
            "first_failed_at": first_at,
            "spooled_at": at,
            "data": base64.b64encode(record.data).decode("ascii"),
        }
    )


def decode_entry(raw: bytes) -> SpooledRecord:
    """Parse an entry; raises ValueError when it is not one."""
    try:
        fields: dict[str, Any] = orjson.loads(raw)
        return SpooledRecord(
            data=base64.b64decode(fields["data"], validate=True),
            stream=str(fields["stream"]),
            reason=str(fields["reason"]),
            attempts=int(fields["attempts"]),
            first_error=str(fields["first_error"]),
            last_error=str(fields["last_error"]),
            maybe_stored=bool(fields["maybe_stored"]),
            first_failed_at=str(fields["first_failed_at"]),
            spooled_at=str(fields["spooled_at"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a spool entry: {exc}") from None


class DeadLetterSpool:
    """A failure handler that appends failed records to a segment log: `directory` itself, or
    with `writer_id` its subdirectory of that name (the service uses its run id, so runs
    sharing a spool_dir never contend; `ingest replay DIR` reads them all).

    The log is opened (locked, recovered) by `open`, or lazily by the first `handle`: a run
    where nothing fails writes nothing. `max_bytes` (None: no bound) caps the log's files;
    `full_timeout_s` is how long a full spool (bound or disk) is backpressure before
    `SpoolFullError`. While open the log is locked: `ingest replay` skips it."""

    def __init__(
        self,
        directory: str | os.PathLike[str] = DEFAULT_SPOOL_DIR,
        *,
        stream: str,
        writer_id: str | None = None,
        max_bytes: int | None = DEFAULT_MAX_BYTES,
        full_timeout_s: float = 30.0,
        files: FileLayer | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        self.root = os.fspath(directory)
        self.directory = os.path.join(self.root, writer_id) if writer_id else self.root
        self.stream = stream
        log = SegmentLog(
            self.directory, kind=KIND_DEAD_LETTER, files=files, segment_bytes=segment_bytes
        )
        self._writer = GroupWriter(log, full_timeout_s=full_timeout_s, max_bytes=max_bytes)
        self.spooled: dict[str, int] = {}  # records written, by failure reason
        self.refused = 0  # records `handle` could not store (SpoolFullError, SpoolIOError)
        self.recovery: Recovery | None = None
        self._opening = asyncio.Lock()

    async def open(self) -> Recovery:
        """Lock and recover the log (cuts a torn tail, quarantines a corrupt segment); once.
        Raises `SpoolLockedError`, OSError."""
        async with self._opening:
            if self.recovery is None:
                self.recovery = await self._writer.open()
        return self.recovery

    async def handle(self, failed: Sequence[FailedRecord]) -> None:
        """The async failure handler: returns once `failed` is written and fdatasync'd.
        Raises `SpoolFullError` or `SpoolIOError` when they could not be stored."""
        if not failed:
            return
        at = _now()
        entries = [encode_entry(record, self.stream, at) for record in failed]
        try:
            if self.recovery is None:
                try:
                    await self.open()
                except OSError as exc:
                    raise SpoolIOError(f"{self.directory}: cannot open the spool: {exc}") from exc
            await self._writer.append(entries)
        except Exception:
            self.refused += len(failed)
            raise
        spooled = self.spooled
        for record in failed:
            spooled[record.reason] = spooled.get(record.reason, 0) + 1

    @property
    def bytes(self) -> int:
        """Bytes in the spool's segment files."""
        return self._writer.bytes

    @property
    def spooled_total(self) -> int:
        return sum(self.spooled.values())

    async def close(self) -> None:
        await self._writer.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def read_spool(directory: str | os.PathLike[str]) -> list[SpooledRecord]:
    """Every record still in the spool under `directory` (itself and one log per run id below
    it), oldest first: read-only, no lock taken, nothing cut or moved (safe next to a running
    writer; a torn tail is just not read). Records a replay already journaled as delivered are
    left out. Raises OSError when the directory cannot be read, ValueError on a bad entry."""
    from ingest.spool.journal import JOURNAL, read_journal
    from ingest.spool.log import (
        CHECKPOINT,
        HEADER_BYTES,
        decode_frames,
        decode_header,
        find_logs,
        parse_segment_name,
        read_checkpoint,
    )

    found: list[SpooledRecord] = []
    root = os.fspath(directory)
    if not os.path.isdir(root):
        return found
    for path in find_logs(root):
        names = os.listdir(path)
        lwm = 0
        if CHECKPOINT in names:
            with open(os.path.join(path, CHECKPOINT), "rb") as file:
                checkpoint = read_checkpoint(file.read())
            lwm = checkpoint[1] if checkpoint is not None else 0
        delivered: set[int] = set()
        if JOURNAL in names:
            with open(os.path.join(path, JOURNAL), "rb") as file:
                delivered, _ = read_journal(file.read())
        records: dict[int, bytes] = {}
        segments = sorted((p, n) for n in names if (p := parse_segment_name(n)) is not None)
        for (base, _), name in segments:
            with open(os.path.join(path, name), "rb") as file:
                data = file.read()
            header = decode_header(data)
            if header is None or header[1] != base:
                continue
            for first, group in decode_frames(data, HEADER_BYTES, base).groups:
                for offset, raw in enumerate(group):
                    seq = first + offset
                    if seq >= lwm and seq not in delivered:
                        records.setdefault(seq, raw)
        found.extend(decode_entry(records[seq]) for seq in sorted(records))
    return found
