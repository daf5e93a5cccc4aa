"""The replay journal: which spool seqs `ingest replay` saw delivered, append-only and fsync'd.

Each entry is ``u32 count | u32 crc32(seqs) | u64 seq * count``, written and fdatasync'd before
the replay moves on, so a replay killed at any moment never resends a record it saw delivered
(at most the batches whose answer came but whose entry was not yet synced are resent: a
duplicate, never a loss). A torn last entry is cut on load. Once the spool's checkpoint covers
the journaled seqs, the journal is rewritten without them (temporary file, fsync, rename,
directory fsync).
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterable
from typing import Final

import structlog

__all__ = ["JOURNAL", "ReplayJournal"]

JOURNAL: Final = "replay.journal"
_HEAD: Final = struct.Struct("<II")
_log = structlog.get_logger(__name__)


def _entry(seqs: list[int]) -> bytes:
    body = struct.pack(f"<{len(seqs)}Q", *seqs)
    return _HEAD.pack(len(seqs), zlib.crc32(body)) + body


def read_journal(data: bytes) -> tuple[set[int], int]:
    """The seqs journaled, and the length of the intact prefix of `data`."""
    seqs: set[int] = set()
    offset = 0
    while offset + _HEAD.size <= len(data):
        count, crc = _HEAD.unpack_from(data, offset)
        end = offset + _HEAD.size + 8 * count
        body = data[offset + _HEAD.size : end]
        if count == 0 or end > len(data) or zlib.crc32(body) != crc:
            break
        seqs.update(struct.unpack(f"<{count}Q", body))
        offset = end
    return seqs, offset


class ReplayJournal:
    """The journal file in a spool `directory` (the caller holds the spool's lock)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, JOURNAL)
        self.delivered: set[int] = set()
        self._fd: int | None = None
        self._lock = threading.Lock()  # appends come from worker threads

    def load(self) -> set[int]:
        """Read the journal, cut a torn tail, open it for appending; the delivered seqs."""
        data = b""
        if os.path.exists(self.path):
            with open(self.path, "rb") as file:
                data = file.read()
        self.delivered, good = read_journal(data)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if good < len(data):
            _log.warning("replay_journal_torn_tail_cut", path=self.path, bytes=len(data) - good)
            os.ftruncate(self._fd, good)
            os.fdatasync(self._fd)
        os.lseek(self._fd, good, os.SEEK_SET)
        if not data:
            _sync_dir(self.directory)
        return set(self.delivered)

    def append(self, seqs: Iterable[int]) -> None:
        """Journal `seqs` as delivered; returns once fdatasync'd."""
        batch = sorted(seqs)
        if not batch or self._fd is None:
            return
        data = _entry(batch)
        with self._lock:
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
            os.fdatasync(self._fd)
            self.delivered.update(batch)

    def compact(self, lwm: int) -> None:
        """Rewrite the journal keeping only seqs at or above `lwm` (the spool checkpoint, already
        fsync'd, covers the rest)."""
        keep = sorted(seq for seq in self.delivered if seq >= lwm)
        temporary = self.path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            if keep:
                os.write(fd, _entry(keep))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        _sync_dir(self.directory)
        self.close()
        self.delivered = set(keep)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
