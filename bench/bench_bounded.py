"""What slow and abandoned clients can cost the bounded HTTP servers (figures, never asserted).

1. Emulator memory: N clients (default 150) each declare an 8 MB PutRecordBatch body, send all
   but the last kilobyte and stall; RSS of the emulator is read while they hold, then again 2 s
   after they all disconnect (aborted uploads must be given back at once, not by the cyclic GC).
2. Probe latency under a flood: `ingest run` (at `ulimit -n 1024`, 1,000 events/s) while 1,500
   slow clients (a byte a second) hold its health port; /healthz is asked every 0.2 s.

    .venv/bin/python bench/bench_bounded.py [--uploads 150] [--slow-clients 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "reliability"))

from harness import EmulatorProcess, RunProcess, slowloris, stop  # noqa: E402

BODY_BYTES = 8_000_000


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def stalled_uploads(port: int, count: int) -> list[asyncio.StreamWriter]:
    head = (
        "POST / HTTP/1.1\r\nHost: bench\r\nAuthorization: AWS4-HMAC-SHA256 bench\r\n"
        "X-Amz-Target: Firehose_20150804.PutRecordBatch\r\n"
        f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    body = b"x" * (BODY_BYTES - 1000)
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body)
        # A refused upload (503 and closed before its body was read) holds nothing.
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.drain(), 30)
        writers.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    return writers


async def memory(work: Path, uploads: int) -> None:
    emulator = EmulatorProcess(data_dir=work / "emulator", logs=work / "logs")
    emulator.start()
    assert emulator.proc is not None
    pid = emulator.proc.pid
    try:
        idle = rss_mib(pid)
        writers = await stalled_uploads(emulator.port, uploads)
        await asyncio.sleep(3)
        holding = rss_mib(pid)
        for writer in writers:
            writer.close()
        await asyncio.sleep(2)
        after = rss_mib(pid)
    finally:
        emulator.stop()
    print(
        f"emulator RSS: idle {idle:.0f} MiB, {uploads} stalled 8 MB uploads {holding:.0f} MiB, "
        f"2 s after they disconnect {after:.0f} MiB"
    )


def probes(work: Path, slow_clients: int) -> None:
    emulator = EmulatorProcess(data_dir=work / "emulator2", logs=work / "logs")
    emulator.start()
    run = RunProcess(
        endpoint_url=emulator.url,
        logs=work / "logs",
        run_id="bench-bounded",
        spool_dir=work / "spool",
        flags=["--rate", "1000", "--duration", "20"],
        nofile=1024,
    )
    flood = None
    try:
        run.start()
        http = run.wait_http()
        flood = slowloris("127.0.0.1", int(http.rsplit(":", 1)[1]), slow_clients, work, "bench")
        time.sleep(3)
        latencies: list[float] = []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            started = time.monotonic()
            with urllib.request.urlopen(f"{http}/healthz", timeout=10) as answer:
                answer.read()
            latencies.append(time.monotonic() - started)
            time.sleep(0.2)
        stop(flood)
        flood = None
        summary = run.wait(timeout=120)
    finally:
        stop(flood)
        stop(run.proc)
        emulator.stop()
    latencies.sort()
    print(
        f"/healthz under {slow_clients} slow clients (ulimit -n 1024): "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms "
        f"over {len(latencies)} probes; the run generated {summary['generated_per_s']:.0f} "
        f"events/s (target 1,000), delivered {summary['delivered']:,} of {summary['generated']:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=150)
    parser.add_argument("--slow-clients", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bounded-") as tmp:
        work = Path(tmp)
        asyncio.run(memory(work, args.uploads))
        probes(work, args.slow_clients)


if __name__ == "__main__":
    main()
