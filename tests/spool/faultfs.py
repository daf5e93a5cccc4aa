"""An in-memory file layer for the segment log that injects faults and simulates crashes.

Each file keeps what a reader sees now (the page cache) and what is on the disk (the content
at its last fdatasync). `crash(power_loss=False)` is kill -9: the page cache survives.
`crash(power_loss=True)` keeps the synced content plus a random prefix of what was written
after (a torn write). Directory operations (create, rename, unlink) are atomic and durable at
once: the model checks data durability, not directory entries.

Faults: `fail_write_after(n)` makes the next write stop after n bytes and fail with ENOSPC
(n = 0: nothing written); `fail_next_sync()` makes the next fdatasync fail with EIO (the data
then stays unsynced: on power loss it may be lost); `fail_next_truncate()` makes the next
ftruncate fail (a partial frame then stays); `space` caps the bytes of all files.
"""

from __future__ import annotations

import errno
import os
import random


class _MemFile:
    __slots__ = ("data", "synced")

    def __init__(self) -> None:
        self.data = bytearray()
        self.synced = b""


class _Handle:
    def __init__(self, fs: FaultyFiles, path: str) -> None:
        self._fs = fs
        self._path = path
        self.closed = False

    def _file(self) -> _MemFile:
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        return self._fs.files[self._path]

    def write(self, data: bytes) -> int:
        file = self._file()
        fs = self._fs
        allowed = len(data)
        fail = False
        if fs.write_fault is not None:
            allowed = min(allowed, fs.write_fault)
            fs.write_fault = None
            fail = True
        if fs.space is not None:
            free = fs.space - fs.used()
            if free < allowed:
                allowed = max(0, free)
                fail = True
        if fail and allowed == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        file.data += data[:allowed]
        fs.writes += 1
        if fail:  # a short write: the caller's next write would get ENOSPC
            fs.write_fault = 0
        return allowed

    def sync(self) -> None:
        file = self._file()
        if self._fs.sync_fault:
            self._fs.sync_fault = False
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        file.synced = bytes(file.data)

    def truncate(self, size: int) -> None:
        file = self._file()
        if self._fs.truncate_fault:
            self._fs.truncate_fault = False
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        del file.data[size:]
        file.synced = file.synced[:size]

    def close(self) -> None:
        self.closed = True


class FaultyFiles:
    """The `FileLayer` of the tests (see the module doc)."""

    def __init__(self, space: int | None = None) -> None:
        self.files: dict[str, _MemFile] = {}
        self.dirs: set[str] = set()
        self.space = space
        self.write_fault: int | None = None
        self.sync_fault = False
        self.truncate_fault = False
        self.writes = 0

    # -- faults -------------------------------------------------------------------------------

    def fail_write_after(self, nbytes: int) -> None:
        self.write_fault = nbytes

    def fail_next_sync(self) -> None:
        self.sync_fault = True

    def fail_next_truncate(self) -> None:
        self.truncate_fault = True

    def clear_faults(self) -> None:
        self.write_fault = None
        self.sync_fault = False
        self.truncate_fault = False

    def used(self) -> int:
        return sum(len(file.data) for file in self.files.values())

    def crash(self, *, power_loss: bool, rng: random.Random) -> None:
        self.clear_faults()
        if not power_loss:
            return
        for file in self.files.values():
            synced = file.synced
            extra = bytes(file.data[len(synced) :]) if file.data[: len(synced)] == synced else b""
            keep = rng.randint(0, len(extra)) if extra else 0
            file.data = bytearray(synced + extra[:keep])
            file.synced = bytes(file.data)

    # -- FileLayer ----------------------------------------------------------------------------

    def open_append(self, path: str) -> _Handle:
        if os.path.dirname(path) not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        self.files.setdefault(path, _MemFile())
        return _Handle(self, path)

    def read(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return bytes(self.files[path].data)

    def listdir(self, path: str) -> list[str]:
        names = {os.path.basename(name) for name in self.files if os.path.dirname(name) == path}
        names |= {os.path.basename(name) for name in self.dirs if os.path.dirname(name) == path}
        return sorted(names)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def makedirs(self, path: str) -> None:
        while path and path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    def unlink(self, path: str) -> None:
        if path not in self.files:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        del self.files[path]

    def rename(self, src: str, dst: str) -> None:
        self.files[dst] = self.files.pop(src)

    def sync_dir(self, path: str) -> None:
        if path not in self.dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)

    def write_at(self, path: str, offset: int, data: bytes) -> None:
        if self.sync_fault:  # the checkpoint's fdatasync fails: nothing changed on disk
            self.sync_fault = False
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        file = self.files.setdefault(path, _MemFile())
        if len(file.data) < offset:
            file.data += b"\0" * (offset - len(file.data))
        file.data[offset : offset + len(data)] = data
        file.synced = bytes(file.data)
