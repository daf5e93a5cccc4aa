"""The file layer under the segment log: the few operations it needs, behind one small interface.

`OsFiles` is the real one (``os.write``, ``os.fdatasync``, ``os.replace``...). Tests pass a layer
that injects short writes, ENOSPC and fsync failures, and that can lose what was never synced.
Paths are plain strings. Every call may raise `OSError`; the segment log decides what it means.
"""

from __future__ import annotations

import os
from typing import Protocol

__all__ = ["AppendFile", "FileLayer", "OsFiles"]


class AppendFile(Protocol):
    """An open file written only at its end."""

    def write(self, data: bytes) -> int:
        """Append `data`; returns how many bytes were written (may be short)."""
        ...

    def sync(self) -> None:
        """fdatasync: what was written survives power loss once this returns."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes (later writes continue there)."""
        ...

    def close(self) -> None: ...


class FileLayer(Protocol):
    def open_append(self, path: str) -> AppendFile:
        """Open `path` for appending, creating it if missing."""
        ...

    def read(self, path: str) -> bytes: ...

    def listdir(self, path: str) -> list[str]: ...

    def exists(self, path: str) -> bool: ...

    def makedirs(self, path: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def rename(self, src: str, dst: str) -> None:
        """Atomically replace `dst` by `src` (same directory or file system)."""
        ...

    def sync_dir(self, path: str) -> None:
        """fsync a directory, so creations, renames and deletions in it are durable."""
        ...

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        """Write `data` at `offset` of `path` (created if missing) and fdatasync it."""
        ...


class _OsAppendFile:
    __slots__ = ("_fd",)

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes) -> int:
        return os.write(self._fd, data)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


class OsFiles:
    """The real file system."""

    def open_append(self, path: str) -> AppendFile:
        return _OsAppendFile(path)

    def read(self, path: str) -> bytes:
        with open(path, "rb") as file:
            return file.read()

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            written = os.pwrite(fd, data, offset)
            if written != len(data):
                raise OSError(28, f"short write to {path}")  # ENOSPC is the usual cause
            os.fdatasync(fd)
        finally:
            os.close(fd)
