"""`ingest verify` speed and memory: events read per second from local files, and peak RSS.

Generates --events events (default 10,000,000; `EventGenerator`, one run id) into a temporary
directory laid out as the emulator writes it (objects of about --object-mib MiB under
YYYY/MM/dd/HH/, Firehose object names), with --lose events dropped and --duplicate events copied
so the reconciliation has something to find, then reconciles it in a fresh child process pinned
to one core and reports:
  - events/s over the wall time of `verify_destination` (objects read, decoded, parsed, counted),
  - the same per CPU second of the child,
  - the child's peak RSS (VmHWM), imports included,
and checks that the counts found are exactly the ones planted. Targets (issue 8): >= 1,000,000
events/s on one core, < 200 MB RSS for 10,000,000 events.

    .venv/bin/python bench/bench_verify.py [--events 10000000] [--gzip] [--object-mib 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ingest.events import EventGenerator

RUN_ID = "bench-verify"
BATCH = 500  # events per PutRecordBatch, kept in order inside an object as Firehose does

CHILD = r"""
import asyncio, json, os, sys, time
os.sched_setaffinity(0, {int(sys.argv[3])})
from ingest.verify import verify_destination

def peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0

started = time.perf_counter()
cpu = time.process_time()
result = asyncio.run(verify_destination(data_dir=sys.argv[1], expected=int(sys.argv[2])))
wall = time.perf_counter() - started
run = result.runs[0]
print(json.dumps({"wall_s": wall, "cpu_s": time.process_time() - cpu, "rss": peak_rss(),
                  "lines": result.lines, "objects": result.objects, "missing": run.missing,
                  "duplicated": run.duplicated_events, "unique": run.delivered_unique}))
"""


def generate(
    root: Path, events: int, object_bytes: int, compress: bool, lose: int, dup: int
) -> int:
    """Write the objects; returns the number of lines written."""
    generator = EventGenerator(run_id=RUN_ID)
    lost = set(range(events // 3, events // 3 + lose))  # one gap in the middle
    copied = set(range(events // 2, events // 2 + dup))  # then some copies
    now = time.time()
    lines = 0
    buffer: list[bytes] = []
    size = 0

    def flush() -> None:
        nonlocal buffer, size
        if not buffer:
            return
        stamp = time.gmtime(now)
        folder = root / time.strftime("%Y/%m/%d/%H", stamp)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"aws-ml-cert-1-{time.strftime('%Y-%m-%d-%H-%M-%S', stamp)}-{uuid.uuid4()}"
        data = b"".join(buffer)
        if compress:
            data, name = gzip.compress(data, compresslevel=1), name + ".gz"
        (folder / name).write_bytes(data)
        buffer, size = [], 0

    made = 0
    while made < events:
        batch = generator.batch(min(BATCH, events - made))
        first = made
        made += len(batch)
        if lost or copied:
            kept = [e for i, e in enumerate(batch, first) if i not in lost]
            kept += [e for i, e in enumerate(batch, first) if i in copied]
            batch = kept
        buffer += batch
        lines += len(batch)
        size += sum(map(len, batch))
        if size >= object_bytes:
            flush()
    flush()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--object-mib", type=float, default=5.0, help="object size (Firehose: 1-128)"
    )
    parser.add_argument("--gzip", action="store_true", help="gzip every object")
    parser.add_argument("--lose", type=int, default=1000, help="events to drop")
    parser.add_argument("--duplicate", type=int, default=1000, help="events to copy")
    parser.add_argument("--core", type=int, default=0, help="CPU the verifying process runs on")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        lines = generate(root, args.events, int(args.object_mib * 2**20), args.gzip,
                         args.lose, args.duplicate)  # fmt: skip
        made_s = time.perf_counter() - started
        on_disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"generated {args.events:,} events ({lines:,} lines, {on_disk / 2**20:,.0f} MiB on "
              f"disk{', gzip' if args.gzip else ''}) in {made_s:.1f} s")  # fmt: skip
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(root), str(args.events), str(args.core)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        figures = json.loads(child.stdout)
    exact = (
        figures["missing"] == args.lose
        and figures["duplicated"] == args.duplicate
        and figures["lines"] == lines
    )
    print(f"verify: {figures['lines']:,} lines in {figures['objects']:,} objects")
    wall = figures["wall_s"]
    print(f"  {figures['lines'] / wall:>12,.0f} events/s (wall, {wall:.2f} s, one core)")
    print(f"  {figures['lines'] / figures['cpu_s']:>12,.0f} events per CPU second")
    print(f"  {figures['rss'] / 1e6:>12,.1f} MB peak RSS (VmHWM of the verifying process)")
    verdict = "exact" if exact else "WRONG"
    print(f"  found {figures['missing']:,} missing and {figures['duplicated']:,} duplicated "
          f"(planted {args.lose:,} and {args.duplicate:,}): {verdict}")  # fmt: skip
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
