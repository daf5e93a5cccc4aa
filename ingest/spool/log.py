"""The segment log: append-only segment files of CRC-framed groups, trimmed by a checkpoint.

Layout of a log directory::

    LOCK                                  flock'd by the one process using the log
    checkpoint                            two 32-byte slots {gen, lwm, crc}, written alternately
    00000000000000000000-000001.seg       segments named by base seq and a creation counter
    quarantine/                           sealed segments found corrupt (kept for a human)

A segment starts with a 32-byte header (magic, version, kind, base seq, creation time, CRC) and
holds frames, one per appended group: ``u32 body_len | u32 crc32(body) | body`` with body
``u64 first_seq | u32 count | u32 len * count | records``. Every record has a 64-bit seq,
assigned in append order and never reused while the log exists.

The checkpoint holds the low-water mark (LWM): every seq below it is resolved (delivered,
spooled, or replayed). Whole segments are deleted only once their last seq is below an LWM that
is already fsync'd, and the directory is fsync'd after. On open: the highest valid checkpoint
slot wins; a torn last write (a frame cut short, a bad CRC at the very end, zeros) is cut with a
warning; a bad frame followed by more data is corruption: the segment moves to quarantine/ and
is counted, never a crash loop. A failed write is cut back; a failed fsync is never retried on
the same file (its state is unknown): the unsynced groups are rewritten to a new segment.

Not thread-safe: one writer (see `ingest.spool.writer`) owns it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Final

import structlog

from ingest.errors import SpoolIOError, SpoolLockedError
from ingest.spool.files import AppendFile, FileLayer, OsFiles

__all__ = [
    "KIND_DEAD_LETTER",
    "KIND_DURABLE",
    "Group",
    "Recovery",
    "SegmentLog",
    "decode_frames",
    "encode_frame",
    "read_checkpoint",
]

_log = structlog.get_logger(__name__)

MAGIC: Final = b"INGSPOOL"
VERSION: Final = 1
KIND_DEAD_LETTER: Final = 1
KIND_DURABLE: Final = 2
KIND_NAMES: Final = {KIND_DEAD_LETTER: "dead-letter spool", KIND_DURABLE: "durable log"}
_HEADER: Final = struct.Struct("<8sHHQQ")  # magic, version, kind, base seq, created ns
HEADER_BYTES: Final = _HEADER.size + 4  # + crc32
_FRAME: Final = struct.Struct("<II")  # body length, crc32(body)
_BODY: Final = struct.Struct("<QI")  # first seq, record count
_CHECKPOINT: Final = struct.Struct("<8sQQ")  # magic, gen, lwm
_CKPT_MAGIC: Final = b"INGCKPT1"
_SLOT_BYTES: Final = 32
CHECKPOINT: Final = "checkpoint"
LOCK: Final = "LOCK"
QUARANTINE: Final = "quarantine"
SEGMENT_SUFFIX: Final = ".seg"
DEFAULT_SEGMENT_BYTES: Final = 16 * 1024 * 1024

Group = tuple[int, list[bytes]]  # (first seq, records)


def encode_frame(first_seq: int, records: list[bytes]) -> bytes:
    """One frame holding `records` with seqs from `first_seq` (lengths and data in C)."""
    count = len(records)
    lengths = struct.pack(f"<{count}I", *map(len, records))
    body = b"".join((_BODY.pack(first_seq, count), lengths, *records))
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _encode_header(kind: int, base_seq: int) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, kind, base_seq, time.time_ns())
    return head + struct.pack("<I", zlib.crc32(head))


def decode_header(data: bytes) -> tuple[int, int] | None:
    """(kind, base seq), or None if the header is short or damaged."""
    if len(data) < HEADER_BYTES:
        return None
    head = data[: _HEADER.size]
    (crc,) = struct.unpack_from("<I", data, _HEADER.size)
    magic, version, kind, base, _ = _HEADER.unpack(head)
    if magic != MAGIC or version != VERSION or crc != zlib.crc32(head):
        return None
    return kind, base


@dataclass
class Scan:
    """What one segment's bytes hold: whole frames up to `good_end`, then (maybe) a problem."""

    groups: list[Group] = field(default_factory=list)
    good_end: int = HEADER_BYTES
    problem: str | None = None  # why the scan stopped before the end of the data
    torn: bool = False  # the problem is a torn tail (cut it), not corruption (quarantine)


def decode_frames(data: bytes, start: int, base_seq: int) -> Scan:
    """Read frames from `start`; seqs must continue from `base_seq` without a gap."""
    scan = Scan(good_end=start)
    offset = start
    expected = base_seq
    size = len(data)
    while offset < size:
        rest = size - offset
        if rest < _FRAME.size:
            return _stop(scan, "frame header cut short", torn=True)
        length, crc = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        if length == 0 or length < _BODY.size:
            zeros = not any(data[offset:])
            return _stop(scan, "zeroed tail" if zeros else "bad frame length", torn=zeros)
        if end > size:
            return _stop(scan, f"last frame cut short ({rest} of {length + 8} bytes)", torn=True)
        body = data[offset + _FRAME.size : end]
        if zlib.crc32(body) != crc:
            return _stop(scan, "frame CRC mismatch", torn=end == size)
        first, count = _BODY.unpack_from(body)
        lengths_end = _BODY.size + 4 * count
        if lengths_end > length:
            return _stop(scan, "bad record count", torn=False)
        lengths = struct.unpack_from(f"<{count}I", body, _BODY.size)
        if lengths_end + sum(lengths) != length or first != expected:
            return _stop(scan, f"frame does not follow (seq {first}, expected {expected})")
        bounds = list(accumulate(lengths, initial=lengths_end))
        records = [body[bounds[i] : bounds[i + 1]] for i in range(count)]
        scan.groups.append((first, records))
        expected = first + count
        offset = end
        scan.good_end = end
    return scan


def _stop(scan: Scan, problem: str, *, torn: bool = False) -> Scan:
    scan.problem = problem
    scan.torn = torn
    return scan


def read_checkpoint(data: bytes) -> tuple[int, int] | None:
    """(gen, lwm) of the newest valid slot, or None when no slot is valid."""
    best: tuple[int, int] | None = None
    for slot in range(2):
        raw = data[slot * _SLOT_BYTES : slot * _SLOT_BYTES + _CHECKPOINT.size + 4]
        if len(raw) < _CHECKPOINT.size + 4:
            continue
        magic, gen, lwm = _CHECKPOINT.unpack_from(raw)
        (crc,) = struct.unpack_from("<I", raw, _CHECKPOINT.size)
        valid = magic == _CKPT_MAGIC and crc == zlib.crc32(raw[: _CHECKPOINT.size])
        if valid and (best is None or gen > best[0]):
            best = (gen, lwm)
    return best


def _encode_slot(gen: int, lwm: int) -> bytes:
    head = _CHECKPOINT.pack(_CKPT_MAGIC, gen, lwm)
    return (head + struct.pack("<I", zlib.crc32(head))).ljust(_SLOT_BYTES, b"\0")


def segment_name(base_seq: int, counter: int) -> str:
    return f"{base_seq:020d}-{counter:06d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """(base seq, counter) of a segment file name, or None for other files."""
    if not name.endswith(SEGMENT_SUFFIX):
        return None
    base, _, counter = name.removesuffix(SEGMENT_SUFFIX).partition("-")
    if not (base.isdigit() and counter.isdigit()):
        return None
    return int(base), int(counter)


@dataclass
class _Segment:
    name: str
    base: int
    counter: int
    size: int
    last_seq: int  # base - 1 while empty


@dataclass
class Recovery:
    """What opening the log found. `pending` holds every group with seqs >= `lwm` (in order;
    a group may start below `lwm`: its first records are already resolved)."""

    lwm: int = 0
    next_seq: int = 0
    pending: list[Group] = field(default_factory=list)
    torn_bytes: int = 0  # cut from torn tails
    quarantined: list[str] = field(default_factory=list)  # segment file names moved aside
    deleted: int = 0  # segments wholly below the LWM removed at open
    last_record: bytes | None = None  # the newest record still in the log
    kinds: set[int] = field(default_factory=set)  # kinds found in segment headers

    @property
    def pending_records(self) -> int:
        return sum(len(records) for _, records in self.pending)


class SegmentLog:
    """An append-only log in `directory` (created if missing). `kind` is written in every
    segment header (`KIND_DEAD_LETTER` or `KIND_DURABLE`); segments roll at `segment_bytes`.
    `open()` recovers; then `append`, `sync`, `resolve` and `close` (one thread at a time)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        kind: int,
        files: FileLayer | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        lock: bool = True,
    ) -> None:
        self.directory = os.fspath(directory)
        self.kind = kind
        self._files: FileLayer = files or OsFiles()
        self.segment_bytes = segment_bytes
        self._use_lock = lock
        self._lock_fd: int | None = None
        self._segments: list[_Segment] = []
        self._active: AppendFile | None = None  # open handle of self._segments[-1]
        self._counter = 0
        self._gen = 0
        self.lwm = 0  # the fsync'd checkpoint's mark
        self.next_seq = 0
        self._unsynced: list[Group] = []  # written since the last successful sync
        self._abandoned_unsynced = False  # some of them are in a segment left after an error
        self._checkpoint_created = False
        self.last_record: bytes | None = None
        self.degraded: str | None = None  # set when the log cannot be written any more
        self.opened = False

    # -- open and recovery --------------------------------------------------------------------

    def open(self) -> Recovery:
        """Lock, read the checkpoint, scan every segment, cut torn tails, quarantine corrupt
        segments, delete segments wholly below the mark. Raises `SpoolLockedError`, OSError."""
        files = self._files
        files.makedirs(self.directory)
        if self._use_lock:
            self._lock()
        recovery = Recovery()
        names = files.listdir(self.directory)
        if CHECKPOINT in names:
            self._checkpoint_created = True
            found = read_checkpoint(files.read(self._path(CHECKPOINT)))
            if found is not None:
                self._gen, self.lwm = found
        recovery.lwm = self.lwm
        listed = sorted(
            (parsed, name) for name in names if (parsed := parse_segment_name(name)) is not None
        )
        expected: int | None = None
        changed_dir = False
        for (base, counter), name in listed:
            self._counter = max(self._counter, counter)
            segment, groups = self._recover_segment(name, base, counter, recovery)
            if segment is None:
                changed_dir = True
                continue
            self._segments.append(segment)
            for first, records in groups:
                end = first + len(records)
                if expected is not None and end <= expected:
                    continue  # rewritten after a failed fsync: already read from the older copy
                if expected is not None and first < expected:
                    records = records[expected - first :]
                    first = expected
                expected = end
                if records:
                    self.last_record = records[-1]
                if end > self.lwm:
                    if first < self.lwm:  # the group's first records are already resolved
                        records = records[self.lwm - first :]
                        first = self.lwm
                    recovery.pending.append((first, records))
        self.next_seq = max(self.lwm, expected or 0, *(s.last_seq + 1 for s in self._segments))
        recovery.next_seq = self.next_seq
        recovery.last_record = self.last_record
        keep = self._segments[-1:] if self.kind == KIND_DURABLE else []
        removable = [s for s in self._segments if s.last_seq < self.lwm and s not in keep]
        for segment in removable:
            files.unlink(self._path(segment.name))
            self._segments.remove(segment)
            recovery.deleted += 1
        if removable or changed_dir:
            files.sync_dir(self.directory)
        self.opened = True
        return recovery

    def _recover_segment(
        self, name: str, base: int, counter: int, recovery: Recovery
    ) -> tuple[_Segment | None, list[Group]]:
        files = self._files
        path = self._path(name)
        data = files.read(path)
        header = decode_header(data)
        if header is None or header[1] != base:
            if len(data) < HEADER_BYTES:
                # Created but its header never fully written (a crash at roll): nothing in it.
                files.unlink(path)
                recovery.torn_bytes += len(data)
                _log.warning("spool_torn_segment_removed", segment=name, bytes=len(data))
                return None, []
            self._quarantine(name, "damaged segment header", recovery)
            return None, []
        recovery.kinds.add(header[0])
        scan = decode_frames(data, HEADER_BYTES, base)
        if scan.problem is not None and not scan.torn:
            self._quarantine(name, scan.problem, recovery, offset=scan.good_end)
            return None, []
        # What a killed process wrote may still be only in the page cache: sync it now, so
        # what we recover (and resend, or replay) survives a power loss from here on.
        handle = files.open_append(path)
        try:
            if scan.problem is not None:
                handle.truncate(scan.good_end)
            handle.sync()
        finally:
            handle.close()
        if scan.problem is not None:
            cut = len(data) - scan.good_end
            recovery.torn_bytes += cut
            _log.warning(
                "spool_torn_tail_cut",
                directory=self.directory,
                segment=name,
                offset=scan.good_end,
                bytes=cut,
                problem=scan.problem,
            )
        last = scan.groups[-1][0] + len(scan.groups[-1][1]) - 1 if scan.groups else base - 1
        return _Segment(name, base, counter, scan.good_end, last), scan.groups

    def _quarantine(self, name: str, problem: str, recovery: Recovery, offset: int = 0) -> None:
        files = self._files
        target = os.path.join(self.directory, QUARANTINE)
        files.makedirs(target)
        files.rename(self._path(name), os.path.join(target, name))
        files.sync_dir(target)
        recovery.quarantined.append(name)
        _log.error(
            "spool_segment_quarantined",
            directory=self.directory,
            segment=name,
            problem=problem,
            offset=offset,
            moved_to=os.path.join(target, name),
        )

    def _lock(self) -> None:
        path = self._path(LOCK)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise SpoolLockedError(
                f"{self.directory} is in use by another process (pid {holder}): a running "
                "`ingest run` or `ingest replay` holds its lock"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    # -- writing ------------------------------------------------------------------------------

    def append(self, groups: list[list[bytes]]) -> list[int]:
        """Write one frame per group in one write; returns each group's first seq. Not synced
        (see `sync`). On an error (ENOSPC, a short write) the file is cut back to where it was
        and OSError is raised: nothing of these groups is in the log, no seq is used."""
        self._check_writable()
        segment = self._segments[-1] if self._segments else None
        if segment is None or self._active is None or segment.size >= self.segment_bytes:
            segment = self._roll()
        assert self._active is not None
        firsts: list[int] = []
        frames: list[bytes] = []
        seq = self.next_seq
        for records in groups:
            firsts.append(seq)
            frames.append(encode_frame(seq, records))
            seq += len(records)
        data = b"".join(frames)
        self._write(self._active, segment, data)
        self.next_seq = seq
        segment.last_seq = seq - 1
        for first, records in zip(firsts, groups, strict=True):
            if records:
                self._unsynced.append((first, records))
                self.last_record = records[-1]
        return firsts

    def _write(self, handle: AppendFile, segment: _Segment, data: bytes) -> None:
        written = 0
        try:
            while written < len(data):
                n = handle.write(data[written:] if written else data)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
        except OSError:
            if written:
                try:
                    handle.truncate(segment.size)
                except OSError:
                    # Cannot cut the partial frame: leave this segment (its tail is a torn frame
                    # that the next open cuts) and write the next group to a new one; what it
                    # holds unsynced is rewritten there at the next sync.
                    self._abandon_active()
                    self._abandoned_unsynced = bool(self._unsynced)
            raise
        segment.size += written

    def _roll(self) -> _Segment:
        """Start a new segment at `next_seq` (the old one stays, sealed)."""
        if self._active is not None:
            self.sync()  # a sealed segment is complete on disk before the next one starts
            self._active.close()
            self._active = None
        self._counter += 1
        name = segment_name(self.next_seq, self._counter)
        handle = self._files.open_append(self._path(name))
        segment = _Segment(name, self.next_seq, self._counter, 0, self.next_seq - 1)
        try:
            self._write(handle, segment, _encode_header(self.kind, self.next_seq))
            self._files.sync_dir(self.directory)
        except OSError:
            handle.close()
            with contextlib.suppress(OSError):
                self._files.unlink(self._path(name))
            raise
        self._segments.append(segment)
        self._active = handle
        return segment

    def sync(self) -> None:
        """fdatasync the active segment. If that fails, its state is unknown and fsync is not
        retried on it: the unsynced groups are rewritten into a new segment and synced; if
        that fails too, the log is degraded and `SpoolIOError` is raised."""
        if not self._unsynced:
            return
        if self._active is None or self._abandoned_unsynced:
            # Some unsynced groups sit in a segment we left: write them again, here.
            self._rewrite_unsynced(OSError(errno.EIO, "a segment was left with unsynced data"))
        else:
            try:
                self._active.sync()
            except OSError as first:
                _log.error("spool_fsync_failed", directory=self.directory, error=str(first))
                self._rewrite_unsynced(first)
        self._unsynced.clear()
        self._abandoned_unsynced = False

    def _rewrite_unsynced(self, cause: OSError) -> None:
        groups = list(self._unsynced)
        self._abandon_active()
        resume = self.next_seq
        self.next_seq = groups[0][0]
        try:
            segment = self._roll()
            assert self._active is not None
            data = b"".join(encode_frame(first, records) for first, records in groups)
            self._write(self._active, segment, data)
            segment.last_seq = resume - 1
            self._active.sync()
        except OSError as again:
            self.degraded = f"fsync failed twice ({cause}; then {again})"
            self._abandon_active()
            raise SpoolIOError(f"{self.directory}: {self.degraded}") from again
        finally:
            self.next_seq = resume

    def _abandon_active(self) -> None:
        if self._active is not None:
            with contextlib.suppress(OSError):
                self._active.close()
            self._active = None

    def _check_writable(self) -> None:
        if not self.opened:
            raise SpoolIOError(f"{self.directory}: the log is not open")
        if self.degraded is not None:
            raise SpoolIOError(f"{self.directory}: {self.degraded}; the log accepts no writes")

    # -- the low-water mark and trimming -------------------------------------------------------

    def resolve(self, lwm: int) -> int:
        """Every seq below `lwm` is resolved: write and fsync the checkpoint, then delete the
        sealed segments wholly below it and fsync the directory. Returns segments deleted."""
        if lwm <= self.lwm:
            return 0
        lwm = min(lwm, self.next_seq)
        self._gen += 1
        path = self._path(CHECKPOINT)
        self._files.write_at(path, (self._gen % 2) * _SLOT_BYTES, _encode_slot(self._gen, lwm))
        if not self._checkpoint_created:
            self._files.sync_dir(self.directory)
            self._checkpoint_created = True
        self.lwm = lwm
        active = self._segments[-1] if self._active is not None else None
        removable = [s for s in self._segments if s.last_seq < lwm and s is not active]
        # A durable log keeps its newest segment: it holds the newest record (`last_record`).
        if self.kind == KIND_DURABLE and self._segments and self._segments[-1] in removable:
            removable.pop()
        for segment in removable:
            self._files.unlink(self._path(segment.name))
            self._segments.remove(segment)
        if removable:
            self._files.sync_dir(self.directory)
        return len(removable)

    # -- state --------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """Bytes in segment files (headers included)."""
        return sum(segment.size for segment in self._segments)

    def segments(self) -> list[str]:
        return [segment.name for segment in self._segments]

    def close(self) -> None:
        """Sync, close and release the lock (idempotent)."""
        try:
            if self._active is not None and self.degraded is None:
                self.sync()
        finally:
            self._abandon_active()
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                os.close(fd)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)


def find_logs(directory: str) -> list[str]:
    """`directory` if it holds a log, then each subdirectory that does (the service writes one
    log per run id under its spool_dir), in name order."""
    found = []
    below = sorted(
        os.path.join(directory, name)
        for name in os.listdir(directory)
        if name != QUARANTINE and os.path.isdir(os.path.join(directory, name))
    )
    candidates = [directory, *below]
    for path in candidates:
        names = os.listdir(path)
        if CHECKPOINT in names or any(parse_segment_name(name) for name in names):
            found.append(path)
    return found
