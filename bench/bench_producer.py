"""Producer throughput and memory, end to end into the emulator running in another process.

Measures, in one run:
  1. the `Producer` fed by `EventGenerator` (generation included) for --duration seconds,
     counted as records the emulator ACCEPTED (the producer's delivered count, cross-checked
     by counting the events in the files the emulator wrote), over the time from the first put
     to the end of close (drain included);
  2. a plain aioboto3 ``put_record_batch`` loop (same generator, same concurrency) for comparison;
  3. peak RSS with the sink stalled (emulator with a one-hour latency fault) and the queue full,
     in a fresh child process, against the queue's byte bound.
The producer process is pinned to one core (os.sched_setaffinity), the emulator to another.

    .venv/bin/python bench/bench_producer.py [--duration 5] [--event-size 150] [--inflight 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import aioboto3
from aiobotocore.config import AioConfig

from ingest.errors import PutTimeoutError
from ingest.events import EventGenerator
from ingest.producer import Producer

STREAM = "aws-ml-cert"
BATCH = 500
RUN_ID = re.compile(rb'"producer":"([^"]*)"')


def run_delay_s() -> float:
    """Seconds this thread has waited on a run queue (other processes held its core)."""
    with open("/proc/thread-self/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def memory_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def pin(core: int) -> None:
    """Run this process on `core` only (on core 0 if the machine has no such core)."""
    os.sched_setaffinity(0, {core if core < (os.cpu_count() or 1) else 0})


class Stored:
    """Events the emulator wrote to disk, counted after it stopped (and flushed)."""

    def __init__(self, data_dir: str) -> None:
        self.data_dir = Path(data_dir)
        self.counts: dict[bytes, int] = {}

    def count(self) -> None:
        for path in self.data_dir.rglob("*"):
            if path.is_file():
                for run in RUN_ID.findall(path.read_bytes()):
                    self.counts[run] = self.counts.get(run, 0) + 1


@contextmanager
def emulator(core: int, *extra: str) -> Iterator[tuple[str, Stored]]:
    """Run `python -m ingest emulator --port 0` pinned to `core`; yield its endpoint URL and
    a `Stored` that is filled once the emulator has stopped."""
    with tempfile.TemporaryDirectory() as data_dir:
        stored = Stored(data_dir)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "emulator", "--port", "0", "--data-dir", data_dir,
             "--create-stream", STREAM, "--buffer-size-bytes", str(64 * 1024 * 1024), *extra],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: pin(core),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "listening on" not in line:
                raise RuntimeError(f"emulator did not start: {line!r}")
            yield line.rsplit(" ", 1)[-1].strip(), stored
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        stored.count()


async def run_producer(
    url: str, duration: float, event_size: int | None, inflight: int, single: bool = False
) -> str:
    generator = EventGenerator("bench-put" if single else "bench", event_size)
    producer = Producer(STREAM, endpoint_url=url, max_inflight=inflight)
    async with producer:
        started = time.perf_counter()
        cpu_started = time.process_time()
        delay_started = run_delay_s()
        until = started + duration
        while time.perf_counter() < until:
            if single:
                for event in generator.batch(BATCH):
                    await producer.put(event)
            else:
                await producer.put_many(generator.batch(BATCH))
    elapsed = time.perf_counter() - started
    cpu = (time.process_time() - cpu_started) / elapsed
    waited = (run_delay_s() - delay_started) / elapsed
    stats = producer.stats()
    rate = stats.records_delivered / elapsed
    failed = dict(stats.records_failed)
    label = "producer put()" if single else "producer put_many()"
    return (
        f"{label:20} {rate:>10,.0f} events/s delivered ({stats.records_delivered:,} in "
        f"{elapsed:.2f} s incl. drain; put {stats.records_put:,}, failed {failed}, "
        f"requests {dict(stats.requests)}, producer CPU {cpu:.0%} of its core, "
        f"{waited:.0%} waiting for it while other processes ran)"
    )


async def run_aioboto3(url: str, duration: float, event_size: int | None, inflight: int) -> str:
    generator = EventGenerator("bench-boto", event_size)
    session = aioboto3.Session(region_name="us-east-1")
    config = AioConfig(max_pool_connections=inflight, retries={"total_max_attempts": 1})
    delivered = 0
    async with session.client("firehose", endpoint_url=url, config=config) as client:
        started = time.perf_counter()
        until = started + duration

        async def loop() -> None:
            nonlocal delivered
            while time.perf_counter() < until:
                records = [{"Data": event} for event in generator.batch(BATCH)]
                answer = await client.put_record_batch(DeliveryStreamName=STREAM, Records=records)
                delivered += BATCH - answer["FailedPutCount"]

        await asyncio.gather(*(loop() for _ in range(inflight)))
        elapsed = time.perf_counter() - started
    rate = delivered / elapsed
    label = "aioboto3 loop"
    return f"{label:20} {rate:>10,.0f} events/s delivered ({delivered:,} in {elapsed:.2f} s)"


async def fill_stalled(url: str, queue_bytes: int, event_size: int | None) -> str:
    generator = EventGenerator("bench-stall", event_size)
    before = memory_bytes("VmRSS")
    producer = Producer(
        STREAM,
        endpoint_url=url,
        max_queue_records=10_000_000,
        max_queue_bytes=queue_bytes,
        on_failure=lambda failed: None,  # they are counted in stats; no log lines here
    )
    async with producer:
        try:
            while True:
                await producer.put_many(generator.batch(BATCH), timeout=2.0)
        except PutTimeoutError:
            pass
        held = producer.stats()
        peak = memory_bytes("VmHWM")  # peak RSS of this process image (ru_maxrss survives exec)
        await producer.close(timeout=0.5)
    mib = 1024 * 1024
    return (
        f"{'stalled sink':20} queue {held.queue_records:,} records / {held.queue_bytes / mib:.1f} "
        f"MiB (bound {queue_bytes / mib:.0f} MiB); peak RSS {peak / mib:.1f} MiB, "
        f"{(peak - before) / mib:.1f} MiB above the RSS before filling, "
        f"{(peak - before - queue_bytes) / mib:+.1f} MiB vs the byte bound"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--event-size", type=int, default=150, help="bytes per event (exact)")
    parser.add_argument("--inflight", type=int, default=8, help="concurrent requests")
    parser.add_argument("--stall-queue-mib", type=int, default=64, help="queue byte bound")
    parser.add_argument("--core", type=int, default=0, help="core for this process")
    parser.add_argument("--emulator-core", type=int, default=1, help="core for the emulator")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--stall-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin(args.core)
    if args.stall_child:
        with emulator(args.emulator_core, "--fault-latency", "3600") as (url, _):
            stall = fill_stalled(url, args.stall_queue_mib * 1024 * 1024, args.event_size)
            print(asyncio.run(stall))
        return
    print(f"events of {args.event_size} bytes, {args.inflight} requests in flight, "
          f"producer on core {args.core}, emulator on core {args.emulator_core}")  # fmt: skip
    with emulator(args.emulator_core) as (url, stored):
        print(asyncio.run(run_producer(url, args.duration, args.event_size, args.inflight)))
        single = run_producer(url, args.duration, args.event_size, args.inflight, single=True)
        print(asyncio.run(single))
        if not args.skip_baseline:
            print(asyncio.run(run_aioboto3(url, args.duration, args.event_size, args.inflight)))
    written = ", ".join(f"{run.decode()} {n:,}" for run, n in sorted(stored.counts.items()))
    print(f"{'emulator wrote':20} events by run: {written}")
    subprocess.run([sys.executable, __file__, "--stall-child", *sys.argv[1:]], check=True)


if __name__ == "__main__":
    main()
