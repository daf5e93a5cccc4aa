"""CPU per event of `EventGenerator.batch(n)` and `next_event()` (generation only, no I/O).

    taskset -c 0 .venv/bin/python bench/bench_events.py [--events 1000000] [--rounds 3]
        [--baseline GIT_REV]

Prints one JSON line per case: CPU µs per event (``time.process_time``, best of the rounds).
With `--baseline`, the `ingest/events.py` of that git revision runs too, interleaved with the
working tree's in the same process (A/B on the same machine state), plus the speed-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest import events as current  # noqa: E402

RUN_ID = "bench-run"
EVENT_SIZE = 150
BATCHES = (500, 4096)


def load_baseline(rev: str) -> ModuleType:
    """`ingest/events.py` as it was at git revision `rev`, loaded as a separate module."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:ingest/events.py"],
        check=True,
        capture_output=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "events_baseline.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("events_baseline", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_us_per_event(make: Callable[[], Callable[[], object]], per_call: int, events: int) -> float:
    """CPU µs per event for `events` events made by calls of `make()` (a fresh generator)."""
    call = make()
    calls = max(1, events // per_call)
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / (calls * per_call) * 1e6


def cases(module: ModuleType) -> dict[str, tuple[Callable[[], Callable[[], object]], int]]:
    """Case name -> (factory of the timed call, events per call)."""
    out: dict[str, tuple[Callable[[], Callable[[], object]], int]] = {}
    for size in (None, EVENT_SIZE):
        label = f"size={size}" if size else "size=none"
        for n in BATCHES:

            def batch(size: int | None = size, n: int = n) -> Callable[[], object]:
                generator = module.EventGenerator(RUN_ID, size)
                return lambda: generator.batch(n)

            out[f"batch({n}) {label}"] = (batch, n)

        def one(size: int | None = size) -> Callable[[], object]:
            return module.EventGenerator(RUN_ID, size).next_event

        out[f"next_event() {label}"] = (one, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best one counts")
    parser.add_argument("--baseline", help="git revision to compare with (A/B interleaved)")
    args = parser.parse_args()
    sides = {"current": current}
    if args.baseline:
        sides["baseline"] = load_baseline(args.baseline)
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for side, module in sides.items():
            for name, (make, per_call) in cases(module).items():
                # next_event() is slower per event: fewer of them keep the run short.
                events = args.events if per_call > 1 else args.events // 4
                took = cpu_us_per_event(make, per_call, events)
                key = (side, name)
                best[key] = min(best.get(key, took), took)
    for name in cases(current):
        line: dict[str, object] = {
            "case": name,
            "cpu_us_per_event": round(best["current", name], 3),
        }
        if args.baseline:
            before = best["baseline", name]
            line |= {"baseline_us_per_event": round(before, 3), "baseline": args.baseline}
            line["speedup"] = round(before / best["current", name], 2)
        print(json.dumps(line))


if __name__ == "__main__":
    main()
