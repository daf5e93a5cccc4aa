"""S3-style delivery to a directory: Firehose's object key layout, objects written atomically.

An object's key is ``<prefix>YYYY/MM/dd/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>`` in UTC,
timed by the oldest record in it; the file lives at ``<data_dir>/<key>``. Each object is written
under ``<data_dir>/.tmp/`` and renamed into place, so a reader never sees half an object
(readers should skip the dot-directory). No fsync: atomic visibility, not crash durability.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

TMP_DIR_NAME = ".tmp"


def object_key(prefix: str, stream: str, version: str, oldest_epoch_s: float) -> str:
    """The S3 key Firehose gives an object whose oldest record arrived at ``oldest_epoch_s``."""
    when = datetime.fromtimestamp(oldest_epoch_s, UTC)
    return f"{prefix}{when:%Y/%m/%d/%H}/{stream}-{version}-{when:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"


def check_prefix(prefix: str) -> str | None:
    """Why ``prefix`` cannot be used as a relative path under the data dir, or None if it can."""
    if prefix.startswith("/") or "\\" in prefix or "\x00" in prefix:
        return "must be a relative S3 prefix without '\\' or NUL"
    parts = prefix.split("/")
    if any(part in ("..", ".") for part in parts[:-1]):
        return "must not contain '.' or '..' path segments"
    if len(parts) > 1 and parts[0] == TMP_DIR_NAME:
        # Objects there would be mistaken for half-written ones and hidden from readers.
        return f"must not start with '{TMP_DIR_NAME}/', where objects are staged"
    if len(prefix) > 1024 or any(len(part.encode()) > 200 for part in parts):
        return "must be at most 1024 characters, with path segments of at most 200 bytes"
    return None


class ObjectWriter:
    """Writes objects under ``data_dir``. ``write`` blocks: run it in a worker thread."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    @property
    def _tmp_dir(self) -> Path:
        return self.data_dir / TMP_DIR_NAME

    def prepare(self, data_dir: Path) -> None:
        """Use ``data_dir`` from now on, creating it (and its temp dir) if needed."""
        self.data_dir = data_dir
        self._tmp_dir.mkdir(parents=True, exist_ok=True)

    def write(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write the concatenated ``chunks`` as object ``key``; return the bytes written.

        On any error (ENOSPC, EIO, a vanished directory) the partial ``.part`` file is removed
        and the error re-raised: nothing of the object is visible, nothing is left behind.
        """
        final = self.data_dir / key
        if not os.path.normpath(final).startswith(os.path.normpath(self.data_dir) + os.sep):
            raise OSError(errno.EINVAL, f"key {key!r} would leave the data directory")
        tmp = self._tmp_dir / f"{uuid.uuid4().hex}.part"
        size = 0
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                out = open(tmp, "wb")  # noqa: SIM115 - closed by the `with` below
            except FileNotFoundError:  # the staging dir was removed while running
                self._tmp_dir.mkdir(parents=True, exist_ok=True)
                out = open(tmp, "wb")  # noqa: SIM115
            with out:
                for chunk in chunks:
                    size += out.write(chunk)
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return size

    def objects(self) -> list[Path]:
        """Every delivered object, oldest key first (keys sort by time within a prefix)."""
        found = [
            path
            for path in self.data_dir.rglob("*")
            if path.is_file() and path.relative_to(self.data_dir).parts[0] != TMP_DIR_NAME
        ]
        return sorted(found, key=lambda p: p.relative_to(self.data_dir).as_posix())
