"""glibc's malloc thresholds for the command-line programs that send (`ingest run`, `loadtest`,
`replay`).

Each PutRecordBatch builds a body of up to a few MB, plus one base64 piece per record, and drops
them once written. With glibc's defaults the heap grows by that much and shrinks back (trim) on
every request, and bodies over the mmap threshold are mapped and unmapped, so every request
pays page faults on fresh memory again: with 5 KB packed records that was about as much CPU as
all the rest of the request (`encode_put_record_batch` 4-6 ms instead of 0.3 ms per 490-record
request on this project's VM). Raising the thresholds keeps that memory for the next request.
The price: up to `TRIM_THRESHOLD_BYTES` of freed heap is kept rather than given back.

A process-wide setting, so the service layer makes it, never the library (an embedding
application can set ``GLIBC_TUNABLES`` itself; see the README). Settings the user made through
``GLIBC_TUNABLES`` or ``MALLOC_*_`` variables are left alone. Other C libraries: nothing done.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping
from typing import Final

__all__ = ["tune_allocator"]

M_TRIM_THRESHOLD: Final = -1  # glibc's <malloc.h> parameter numbers
M_MMAP_THRESHOLD: Final = -3
# A 4 MiB batch is at most ~5.6 MB of base64 body: below 16 MiB, bodies come from the heap.
MMAP_THRESHOLD_BYTES: Final = 16 << 20
TRIM_THRESHOLD_BYTES: Final = 16 << 20
_USER_SETTINGS: Final = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


def tune_allocator(environ: Mapping[str, str] | None = None) -> str:
    """Raise glibc's mmap and trim thresholds; returns what was done, for the start-up log:
    "tuned", "user settings kept" or "not glibc"."""
    env = os.environ if environ is None else environ
    if "glibc.malloc." in env.get("GLIBC_TUNABLES", "") or any(n in env for n in _USER_SETTINGS):
        return "user settings kept"
    if not sys.platform.startswith("linux"):
        return "not glibc"
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except OSError:
        return "not glibc"
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return "not glibc"  # musl, for one, has no gnu_get_libc_version
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Setting either turns off glibc's own adjustment of both (after each large free).
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(
        M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES
    )
    return "tuned" if done else "not glibc"
