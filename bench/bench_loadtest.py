"""Can `ingest loadtest` hold 250,000 events/s of ~150 bytes on ONE core, progress on?

Starts a sink in another process (pinned to another core when there is one), then runs
``ingest loadtest --rate R --duration D --report FILE --progress-every 1`` as a real process
pinned to one core (``os.sched_setaffinity``), stderr a pipe so the JSON progress lines are on.
Prints the target, what was achieved (whole seconds, the last partial one left out), whether
every second was within 2 % of the target, the CPU the load test used and the path of its report.

Sinks: ``--sink fast`` (default) is a minimal HTTP server that reads each PutRecordBatch and
answers success for every record without decoding them, so the load generator is what is
measured; ``--sink emulator`` is ``ingest emulator`` (then its intake may be the limit: see
bench_emulator.py).

    .venv/bin/python bench/bench_loadtest.py [--rate 250000] [--duration 10] [--sink emulator]
    .venv/bin/python bench/bench_loadtest.py --rate 0      # as fast as it goes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
CONTENT_LENGTH = re.compile(rb"(?i)content-length: *(\d+)")


def pin(core: int) -> None:
    cores = os.cpu_count() or 1
    os.sched_setaffinity(0, {core % cores})


# -- the fast sink (runs in its own process: `bench_loadtest.py --serve-sink CORE`) -----------


async def _serve(core: int) -> None:
    pin(core)
    responses: dict[int, bytes] = {}

    def response(n: int) -> bytes:
        if n not in responses:
            ok = b'{"RecordId":"r"},' * n
            body = b'{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[%b]}' % ok[:-1]
            responses[n] = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                b"x-amzn-RequestId: bench\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
            )
        return responses[n]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = CONTENT_LENGTH.search(head)
                body = await reader.readexactly(int(found.group(1))) if found else b""
                if b"DescribeDeliveryStream" in head:
                    payload = (
                        b'{"DeliveryStreamDescription":{"DeliveryStreamName":"aws-ml-cert",'
                        b'"DeliveryStreamStatus":"ACTIVE"}}'
                    )
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                        b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)
                    )
                else:
                    writer.write(response(body.count(b'"Data"')))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"sink listening on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def start_sink(kind: str, core: int, data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    if kind == "fast":
        command = [sys.executable, __file__, "--serve-sink", str(core)]
    else:
        command = [
            "taskset", "-c", str(core % (os.cpu_count() or 1)), sys.executable, "-m", "ingest",
            "emulator", "--port", "0", "--data-dir", str(data_dir), "--buffer-interval", "60",
        ]  # fmt: skip
    sink = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sink.stdout is not None
    line = sink.stdout.readline()
    ready = READY.search(line)
    if ready is None:
        sink.kill()
        raise SystemExit(f"the sink did not start: {line!r}")
    return sink, ready.group(1)


def run_loadtest(args: argparse.Namespace, url: str, report: Path) -> dict[str, object]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    command = [
        sys.executable, "-m", "ingest", "loadtest", "--endpoint-url", url,
        "--rate", str(args.rate), "--duration", str(args.duration), "--report", str(report),
        "--progress-every", "1", "--log-format", "json", "--event-size", str(args.event_size),
    ]  # fmt: skip
    started = time.monotonic()
    child = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: pin(args.core),  # pinned before the interpreter starts
    )  # fmt: skip
    _, err = child.communicate()
    if child.returncode != 0:
        raise SystemExit(f"ingest loadtest failed ({child.returncode}): {err.decode()[-2000:]}")
    progress = sum(1 for line in err.splitlines() if b'"event":"progress"' in line)
    return {"wall_s": time.monotonic() - started, "progress_lines": progress}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=250_000.0, help="events/s (0: unpaced)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of generation")
    parser.add_argument("--event-size", type=int, default=150, help="bytes per event")
    parser.add_argument("--sink", choices=("fast", "emulator"), default="fast")
    parser.add_argument("--core", type=int, default=0, help="core of the load test")
    parser.add_argument("--sink-core", type=int, default=1, help="core of the sink")
    parser.add_argument("--serve-sink", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink is not None:
        asyncio.run(_serve(args.serve_sink))
        return 0
    import resource

    with tempfile.TemporaryDirectory(prefix="bench-loadtest-") as tmp:
        sink, url = start_sink(args.sink, args.sink_core, Path(tmp) / "emulator")
        try:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            run = run_loadtest(args, url, Path(tmp) / "report.json")
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            report = json.loads((Path(tmp) / "report.json").read_text(encoding="utf-8"))
        finally:
            sink.terminate()
            sink.wait(timeout=30)
    seconds = [
        s
        for s in report["slices"]
        if s["phase"] in ("generation", "unpaced") and s["duration_s"] > 0.9
    ]
    span = max(sum(s["duration_s"] for s in seconds), 1e-9)
    achieved = sum(s["generated"] for s in seconds) / span
    missed = [s["start_s"] for s in seconds if s["shortfall"]]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    t = report["totals"]
    result = {
        "bench": "loadtest",
        "sink": args.sink,
        "target_events_per_s": args.rate,
        "achieved_events_per_s": round(achieved),
        "delivered": t["delivered"],
        "generated": t["generated"],
        "seconds": len(seconds),
        "seconds_below_target": len(missed),
        "event_bytes_mean": round(t["bytes_sent"] / max(t["records_sent"], 1), 1),
        "loadtest_cpu_s": round(cpu, 2),
        "generation_s": t["generation_s"],
        "progress_lines": run["progress_lines"],
        "request_p99_ms": t["request_latency_ms"]["p99_ms"],
    }
    print(json.dumps(result))
    verdict = "held" if not missed else f"MISSED in {len(missed)} of {len(seconds)} seconds"
    print(
        f"ingest loadtest on one core into the {args.sink} sink: target {args.rate:,.0f} events/s, "
        f"achieved {achieved:,.0f} events/s over {len(seconds)} whole seconds ({verdict}); "
        f"{t['delivered']:,} delivered, ~{result['event_bytes_mean']} bytes each, "
        f"CPU {cpu:.1f} s for {t['generation_s'] + t['drain_s']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
