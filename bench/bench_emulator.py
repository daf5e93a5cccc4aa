"""How many records/s the emulator accepts on one core.

Starts ``python -m ingest emulator`` pinned to one core, and drives it from this process (pinned
to another core when there is one) over raw asyncio sockets: pre-built 500-record PutRecordBatch
requests of ~150-byte records, a fake but present Authorization header, several keep-alive
connections. Prints the records/s the emulator ACCEPTED (FailedPutCount subtracted).

    .venv/bin/python bench/bench_emulator.py [--connections 8] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

RECORDS_PER_CALL = 500
FAILED = re.compile(rb'"FailedPutCount":(\d+)')
CONTENT_LENGTH = re.compile(rb"(?i)content-length: (\d+)")


def build_request(host: str, port: int, stream: str, record_size: int, variant: int) -> bytes:
    records = []
    for i in range(RECORDS_PER_CALL):
        event = b'{"id":"%08d-%04d-bench","seq":%d,"pad":"' % (variant, i, i)
        event += b"x" * max(0, record_size - len(event) - 3) + b'"}\n'
        records.append({"Data": base64.b64encode(event).decode()})
    body = orjson.dumps({"DeliveryStreamName": stream, "Records": records})
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/x-amz-json-1.1\r\n"
        "X-Amz-Target: Firehose_20150804.PutRecordBatch\r\n"
        "Authorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/firehose/aws4_request,"
        " SignedHeaders=host, Signature=0\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(host: str, port: int, request: bytes, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < until:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = CONTENT_LENGTH.search(head)
            if length is None:
                raise RuntimeError(f"no Content-Length in {head!r}")
            body = await reader.readexactly(int(length.group(1)))
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"emulator answered {head[:40]!r}: {body[:200]!r}")
            failed = FAILED.search(body)
            counts[0] += RECORDS_PER_CALL - (int(failed.group(1)) if failed else 0)
            counts[1] += 1
    finally:
        writer.close()


def rss_mib(pid: int) -> float:
    """Resident memory of a process now (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    host: str, port: int, args: argparse.Namespace, pid: int
) -> tuple[float, int, float, tuple[float, float]]:
    requests = [
        build_request(host, port, "aws-ml-cert", args.record_size, v)
        for v in range(args.connections)
    ]
    warm = [0, 0]
    await asyncio.gather(*(drive(host, port, r, time.monotonic() + 1.0, warm) for r in requests))
    counts = [0, 0]
    rss_before = rss_mib(pid)
    cpu_before = cpu_seconds(pid)
    start = time.monotonic()
    until = start + args.duration
    await asyncio.gather(*(drive(host, port, r, until, counts) for r in requests))
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu_before
    # Memory must follow the buffering hints, not the run's length: compare start and end.
    return counts[0] / elapsed, counts[1], counts[0] / cpu, (rss_before, rss_mib(pid))


def start_emulator(data_dir: str, core: int | None) -> tuple[subprocess.Popen[str], int]:
    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "emulator", "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://[\d.]+:(\d+)", line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"unexpected emulator output: {line!r}")
    return proc, int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--record-size", type=int, default=150)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    emulator_core = None if args.no_pin else cores[0]
    if not args.no_pin and len(cores) > 1:
        os.sched_setaffinity(0, set(cores[1:]))
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as data_dir:
        proc, port = start_emulator(data_dir, emulator_core)
        try:
            rate, calls, per_cpu_s, rss = asyncio.run(measure("127.0.0.1", port, args, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        written = sum(p.stat().st_size for p in Path(data_dir).rglob("*") if p.is_file())
    print(
        f"emulator accepted {rate:,.0f} records/s on one core "
        f"({calls} PutRecordBatch calls of {RECORDS_PER_CALL} x {args.record_size} B records, "
        f"{args.connections} connections, {args.duration:g} s); {written:,} bytes delivered; "
        f"{per_cpu_s:,.0f} records per CPU-second of the emulator; "
        f"emulator RSS {rss[0]:.0f} MiB after warm-up, {rss[1]:.0f} MiB at the end"
    )
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
