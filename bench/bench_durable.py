"""What `--durable` costs: events/s and CPU µs/event of the producer on one core, for

  memory    put_many(), memory only (the dead-letter spool attached as the failure handler,
            as `ingest run` does: it must cost nothing while nothing fails)
  group     durable_dir, durable_sync="group": one write + fdatasync per group before put returns
  interval  durable_dir, durable_sync="interval": one write per group, fdatasync every 200 ms

Every case sends `--events` events from `EventGenerator` (generation included) with put_many in
chunks of `--chunk` (as `ingest run` does) to an `ingest emulator` running in ANOTHER process
pinned to `--emulator-core`; each case runs in a fresh child process pinned to `--core`. CPU is
user + system time of the child (all its threads, the log writer included) around the sending;
events/s is over the wall time from the first put to the last delivery. The target: durable
keeps at least half of memory mode's events/s.

    .venv/bin/python bench/bench_durable.py [--events 300000] [--chunk 1000] [--dir DIR]

`--dir` puts the durable log on the disk to measure (default: a temporary directory, usually
the same disk as the repository). One JSON line per case, then a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

CASES = ("memory", "group", "interval")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def run_case(case: str, url: str, events: int, chunk: int, directory: Path) -> dict[str, Any]:
    from ingest import Producer
    from ingest.events import EventGenerator
    from ingest.spool.deadletter import DeadLetterSpool

    spool = DeadLetterSpool(directory / "spool", stream="aws-ml-cert", writer_id=case)
    options: dict[str, Any] = {}
    if case != "memory":
        options = {"durable_dir": directory / f"durable-{case}", "durable_sync": case}
    generator = EventGenerator(run_id=f"bench-durable-{case}")
    async with Producer(endpoint_url=url, on_failure=spool.handle, **options) as producer:
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        sent = 0
        while sent < events:
            n = min(chunk, events - sent)
            await producer.put_many(generator.batch(n))
            sent += n
        await producer.flush()
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds() - cpu0
        stats = producer.stats()
    await spool.close()
    return {
        "case": case,
        "events": events,
        "delivered": stats.records_delivered,
        "events_per_s": round(events / wall),
        "cpu_us_per_event": round(cpu / events * 1e6, 2),
        "wall_s": round(wall, 2),
    }


def child(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {args.core})
    result = asyncio.run(run_case(args.case, args.url, args.events, args.chunk, Path(args.dir)))
    print(json.dumps(result), flush=True)


def start_emulator(data_dir: Path, core: int) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "emulator", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    os.sched_setaffinity(proc.pid, {core})
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--emulator-core", type=int, default=1)
    parser.add_argument(
        "--dir", default=None, help="where the durable logs go (default: a temp dir)"
    )
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child(args)
        return 0
    cores = os.cpu_count() or 1
    args.emulator_core = min(args.emulator_core, cores - 1)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        root = Path(scratch)
        emulator, url = start_emulator(root / "emulator", args.emulator_core)
        results = []
        try:
            for case in CASES:
                command = [
                    *(sys.executable, __file__, "--case", case, "--url", url, "--dir", scratch),
                    *("--events", str(args.events), "--chunk", str(args.chunk)),
                    *("--core", str(args.core)),
                ]
                out = subprocess.run(
                    command,
                    capture_output=True,
                    check=True,
                ).stdout.decode()
                result = json.loads(out.strip().splitlines()[-1])
                print(json.dumps(result), flush=True)
                results.append(result)
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    memory = results[0]["events_per_s"]
    print(f"\n{'case':<10}{'events/s':>12}{'CPU µs/event':>15}{'vs memory':>11}{'delivered':>11}")
    for result in results:
        ratio = result["events_per_s"] / memory if memory else 0.0
        print(
            f"{result['case']:<10}{result['events_per_s']:>12,}"
            f"{result['cpu_us_per_event']:>15.2f}{ratio:>10.2f}x{result['delivered']:>11,}"
        )
    durable_ok = all(r["events_per_s"] >= memory / 2 for r in results[1:])
    delivered_ok = all(r["delivered"] == r["events"] for r in results)
    print(
        f"target (durable >= half of memory mode's events/s): {'met' if durable_ok else 'MISSED'}"
    )
    return 0 if durable_ok and delivered_ok else 1


if __name__ == "__main__":
    sys.exit(main())
