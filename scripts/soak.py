"""Soak test (not part of `make test`): `ingest run` at a steady rate for a long time against an
`ingest emulator` with faults on, sampling the producer process's RSS and open file descriptors.

    .venv/bin/python scripts/soak.py                       # 10 minutes at 2,000 events/s
    .venv/bin/python scripts/soak.py --duration 60 --warmup 15   # a quick sanity run

After the warm-up, RSS and open fds must stay flat: the growth from the first to the last fifth
of the samples after warm-up (medians) must be under 5 %. Every generated event must be stored by
the emulator or spooled (reconciled by run id and seq): lost = 0. Prints one JSON line with the
figures and exits 0 when both hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from harness import EmulatorProcess, RunProcess, reconcile  # noqa: E402

FAULTS = [
    "--seed", "11",
    "--fault-record-failure-rate", "0.02",
    "--fault-call-error-rate", "0.01",
    "--fault-reset-rate", "0.005",
    "--fault-accepted-error-rate", "0.005",
    "--fault-latency", "0.01",
    "--fault-latency-jitter", "0.04",
]  # fmt: skip
MAX_GROWTH = 0.05


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def growth(samples: list[int]) -> tuple[float, float, float]:
    """(median of the first fifth, median of the last fifth, relative growth)."""
    fifth = max(1, len(samples) // 5)
    first = statistics.median(samples[:fifth])
    last = statistics.median(samples[-fifth:])
    return first, last, (last - first) / first if first else 0.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=600.0, help="seconds of generation")
    p.add_argument("--rate", type=float, default=2000.0, help="events per second")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds not judged at the start")
    p.add_argument("--sample-every", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--no-faults", action="store_true", help="run the emulator without faults")
    p.add_argument("--dir", type=Path, help="keep data and logs here (default: a temp dir)")
    args = p.parse_args()
    if not 0 <= args.warmup < args.duration:
        p.error(f"--warmup {args.warmup}: expected 0 <= warmup < duration ({args.duration})")
    return args


def main() -> int:
    args = parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="ingest-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    emulator = EmulatorProcess(
        data_dir=work / "emulator",
        logs=work / "logs",
        flags=[] if args.no_faults else FAULTS,
    )
    emulator.start()
    run = RunProcess(
        endpoint_url=emulator.url,
        logs=work / "logs",
        run_id=f"soak-{int(time.time())}",
        spool_dir=work / "spool",
        flags=["--rate", str(args.rate), "--duration", str(args.duration)],
    )
    try:
        run.start()
        assert run.proc is not None
        pid = run.proc.pid
        run.wait_http()
        started = time.monotonic()
        rss: list[int] = []
        fds: list[int] = []
        while run.proc.poll() is None:
            elapsed = time.monotonic() - started
            if elapsed >= args.duration:
                break  # the drain is not judged: memory is given back then
            if elapsed >= args.warmup:
                try:
                    rss.append(rss_bytes(pid))
                    fds.append(open_fds(pid))
                except (OSError, RuntimeError):
                    break  # it exited between poll() and the read
            time.sleep(args.sample_every)
        summary = run.wait(timeout=args.duration + 300)
    finally:
        for proc in (run.proc, emulator.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    books = reconcile(run.run_id, summary, emulator.data_dir, run.spool_dir)
    if len(rss) < 2:
        print("soak: too few samples after the warm-up; run longer", file=sys.stderr)
        return 1
    rss_first, rss_last, rss_growth = growth(rss)
    fds_first, fds_last, fds_growth = growth(fds)
    ok = books.lost == 0 and rss_growth < MAX_GROWTH and fds_growth < MAX_GROWTH
    report = {
        "event": "soak_result",
        "ok": ok,
        "duration_s": args.duration,
        "rate": args.rate,
        "warmup_s": args.warmup,
        "samples": len(rss),
        "rss_mib_first": round(rss_first / 2**20, 1),
        "rss_mib_last": round(rss_last / 2**20, 1),
        "rss_mib_max": round(max(rss) / 2**20, 1),
        "rss_growth_pct": round(100 * rss_growth, 2),
        "fds_first": fds_first,
        "fds_last": fds_last,
        "fds_max": max(fds),
        "fds_growth_pct": round(100 * fds_growth, 2),
        "events": books.events,
        "delivered": books.delivered,
        "spooled": books.spooled,
        "duplicates": books.duplicates,
        "duplicates_possible": books.duplicates_possible,
        "lost": books.lost,
        "exit_code": summary["exit_code"],
        "notes": books.notes,
        "dir": str(work),
    }
    print(books.line("soak"))
    print(json.dumps(report), flush=True)
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
