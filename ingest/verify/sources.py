"""Where objects come from: a directory laid out as S3 (the emulator's data dir) or an S3 bucket.

Objects are streamed in chunks of `CHUNK_BYTES` (plain or gzip, several gzip members allowed),
never loaded whole. Each object's time, for the latency, is the UTC time Firehose writes in the
object name (``...-YYYY-MM-dd-HH-mm-ss-<uuid>``, one-second resolution: when the oldest record
in it arrived), else the object's modification time (file mtime, S3 LastModified).
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from urllib.parse import urlsplit

CHUNK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_NAME_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class DamagedObject(Exception):
    """An object that cannot be decoded to the end (e.g. a truncated gzip stream)."""


@dataclass(frozen=True)
class ObjectRef:
    """One object: its key (relative path) and its time in epoch ms, and where that came from."""

    key: str
    time_ms: int
    timed_by_name: bool


def object_time_ms(key: str, modified_s: float, zone: tzinfo) -> tuple[int, bool]:
    """(epoch ms, True) from the time in a Firehose object name, else (mtime, False)."""
    name = key.rsplit("/", 1)[-1]
    # The last match: a stream name could itself look like a date.
    found = None
    for found in _NAME_TIME.finditer(name):  # noqa: B007
        continue
    if found is not None:
        try:
            year, month, day, hour, minute, second = map(int, found.groups())
            when = datetime(year, month, day, hour, minute, second, tzinfo=zone)
        except ValueError:
            pass
        else:
            return round(when.timestamp() * 1000), True
    return round(modified_s * 1000), False


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://bucket[/prefix]``; ValueError when it is not such a URL."""
    parts = urlsplit(url)
    bucket = parts.netloc
    if parts.scheme != "s3" or parts.query or parts.fragment or "@" in bucket:
        raise ValueError(url)
    if _BUCKET_RE.fullmatch(bucket) is None or ".." in bucket:
        raise ValueError(url)
    return bucket, parts.path.removeprefix("/")


class Decoder:
    """Turns an object's raw bytes into its content: plain bytes pass through; gzip (found by
    its magic bytes) is inflated member after member, at most CHUNK_BYTES out per step."""

    __slots__ = ("_gzip", "_inflate", "_pending", "_started")

    def __init__(self) -> None:
        self._started = False
        self._gzip = False
        self._inflate: zlib._Decompress | None = None
        self._pending = b""  # raw bytes waiting for the next gzip member

    def feed(self, raw: bytes) -> Iterator[bytes]:
        if not self._started:
            self._pending += raw
            if len(self._pending) < len(_GZIP_MAGIC) and raw:
                return
            self._started = True
            self._gzip = self._pending.startswith(_GZIP_MAGIC)
            raw, self._pending = self._pending, b""
        if not self._gzip:
            if raw:
                yield raw
            return
        data = self._pending + raw
        self._pending = b""
        while data:
            if self._inflate is None:
                if len(data) < len(_GZIP_MAGIC):
                    self._pending = data
                    return
                if not data.startswith(_GZIP_MAGIC):
                    raise DamagedObject("bytes after the last gzip member are not gzip")
                self._inflate = zlib.decompressobj(wbits=31)
            try:
                out = self._inflate.decompress(data, CHUNK_BYTES)
            except zlib.error as exc:
                raise DamagedObject(f"gzip data is corrupt ({exc})") from None
            if out:
                yield out
            if self._inflate.eof:
                data = self._inflate.unused_data
                self._inflate = None
            else:
                data = self._inflate.unconsumed_tail

    def close(self) -> Iterator[bytes]:
        """The object ended: flush a short plain object; a gzip member cut short is damage."""
        if not self._started:
            self._started = True
            if self._pending:
                yield self._pending
            self._pending = b""
            return
        if self._inflate is not None or self._pending:
            raise DamagedObject("the gzip stream ends in the middle of a member")


def walk_directory(root: Path, zone: tzinfo) -> Iterator[tuple[Path, ObjectRef]]:
    """Every object under `root`, in key order, skipping dot-files and dot-directories (the
    emulator stages half-written objects in ``.tmp/``)."""
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(directory, name)
            try:
                modified = path.stat().st_mtime
            except FileNotFoundError:  # removed meanwhile
                continue
            key = path.relative_to(root).as_posix()
            yield path, ObjectRef(key, *object_time_ms(key, modified, zone))
