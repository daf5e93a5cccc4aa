"""glibc's malloc thresholds, raised by the sending commands (`ingest.service.allocator`): seen in
the process's own memory map (a body-sized block comes from the heap and stays there for the
next request), in a fresh interpreter each time, since the setting is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ingest.service.allocator import tune_allocator

# Allocates a 12 MB block (three packed request bodies) and frees it; prints what
# tune_allocator said and how much the [heap] mapping grew while it was alive and after.
PROBE = """
import json, sys
from ingest.service.allocator import tune_allocator

def heap():
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            start, end = (int(part, 16) for part in line.split()[0].split("-"))
            return end - start
    return 0

said = tune_allocator() if sys.argv[1] == "tune" else "untouched"
before = heap()
block = bytes(12 << 20)
during = heap() - before
del block
after = heap() - before
print(json.dumps({"said": said, "during": during, "after": after}))
"""


def probe(mode: str, **env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True, text=True, check=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}, **env},
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_body_sized_block_comes_from_the_heap_and_stays_for_the_next_request() -> None:
    untouched = probe("plain")
    assert untouched["during"] < 1 << 20  # glibc's default: mapped on its own, unmapped on free
    tuned = probe("tune")
    assert tuned["said"] == "tuned"
    assert tuned["during"] >= 8 << 20  # from the heap
    assert tuned["after"] >= 8 << 20  # and kept for the next one (not trimmed)


def test_the_users_own_malloc_settings_are_left_alone() -> None:
    assert tune_allocator({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == (
        "user settings kept"
    )
    assert tune_allocator({"MALLOC_MMAP_THRESHOLD_": "131072"}) == "user settings kept"
    kept = probe("tune", GLIBC_TUNABLES="glibc.malloc.mmap_threshold=131072")
    assert kept["said"] == "user settings kept"
    assert kept["during"] < 1 << 20
