"""Side by side, in one run, on the same events: ways of sending to Firehose, end to end into the
emulator running in ANOTHER process (over TLS when the emulator can serve it).

Cases (every one sends `--events` events of `--event-size` bytes from `EventGenerator`,
generation included, except (a) which sends `--notebook-events`):

  a  the notebook's pattern: one blocking boto3 ``put_record`` per event
  b  a plain aioboto3 ``put_record_batch`` loop, 4 requests in flight (the baseline: ratios)
  c  the producer via ``put()``, one await per event
  d  the producer via ``put_many()``
  e  put_many with packing (``pack_bytes=5120``)
  f  put_many with packing and gzip
  g  ``ingest run`` as a whole process; its CPU is the one its summary gives (``cpu_s``: the
     process's CPU over generation and drain, start-up excluded, the span the cases above
     measure); the whole process's CPU is reported beside it
  h  stalled sink (emulator answers after an hour): peak RSS with the queue full, vs its bound
  i  through a 5 MiB/s bytes quota: put_many unpacked vs gzip-packed (events/s, ratio)
  j  200 ms added latency, 5,000 events/s paced: events per request, rate held

Each case runs in a fresh child process pinned to `--core` (the emulator to `--emulator-core`);
its CPU is read from /proc/<pid>/stat (user + system) around the sending, its peak RSS from
/proc/<pid>/status (VmHWM). Request latency comes from the producer's per-request observer
(or timing each call for a and b, the histogram summary for g). Billed bytes round every
Firehose record up to 5 KB (producer stats; for a, b and g the emulator's accepted records,
all of which are under 5 KB here). After each case the emulator is stopped (it flushes) and the
events with the case's run id are counted in the files it wrote (gzip members decompressed):
a case whose events did not all arrive says so in the table and makes the exit code 1.

    .venv/bin/python bench/bench_compare.py [--events 500000] [--only a,b,d] [--no-tls]

One JSON line per case on stdout (prefix ``{"case":``), then a table and notes. With d and g,
``--pair-rounds`` (3) more d, g pairs run back to back, and their CPU ratios and its median
come last (``{"case": "g/d pairs", ...}`` and a note): the target "ingest run within 1.2x the
library" is a ratio of two runs, and on a shared VM two runs minutes apart can differ by 30%.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

STREAM = "aws-ml-cert"
BATCH = 500
BILL_UNIT = 5 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_CASES = "abcdefghij"
TITLES = {
    "a": "notebook: boto3 put_record per event",
    "b": "aioboto3 put_record_batch, 4 in flight",
    "c": "producer put()",
    "d": "producer put_many()",
    "e": "put_many, packed 5120",
    "f": "put_many, packed 5120 + gzip",
    "g": "ingest run (whole process)",
    "h": "stalled sink (memory)",
    "i1": "5 MiB/s quota: unpacked",
    "i2": "5 MiB/s quota: gzip-packed",
    "j": "200 ms latency, 5,000 ev/s paced",
}


# -- /proc readings ------------------------------------------------------------------------


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def peak_rss(pid: int | str = "self") -> int:
    """Peak resident set size in bytes (VmHWM), from /proc/<pid>/status; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def pin(core: int) -> None:
    os.sched_setaffinity(0, {core if core < (os.cpu_count() or 1) else 0})


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


# -- the child: one case, one process ------------------------------------------------------


def child_main(args: argparse.Namespace) -> None:
    pin(args.core)
    case = args.case
    if case == "a":
        result = notebook(args)
    elif case == "b":
        result = asyncio.run(aioboto3_loop(args))
    else:
        result = run_loop(producer_case(args))
    print(json.dumps(result), flush=True)


def run_loop(main: Any) -> dict[str, Any]:
    """On uvloop's loop when installed, as `ingest run` does."""
    from ingest.service.eventloop import run

    result: dict[str, Any] = run(main)
    return result


def notebook(args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    from ingest.events import EventGenerator

    events = EventGenerator(args.run_id, args.event_size).batch(args.events)
    client = boto3.client("firehose", endpoint_url=args.url, region_name="us-east-1")
    latencies: list[float] = []
    cpu0, started = cpu_seconds(), time.perf_counter()
    for event in events:
        sent = time.perf_counter()
        client.put_record(DeliveryStreamName=STREAM, Record={"Data": event})
        latencies.append(time.perf_counter() - sent)
    return measured(args, started, cpu0, latencies, requests=len(latencies))


async def aioboto3_loop(args: argparse.Namespace) -> dict[str, Any]:
    import aioboto3
    from aiobotocore.config import AioConfig

    from ingest.events import EventGenerator

    generator = EventGenerator(args.run_id, args.event_size)
    inflight = 4
    config = AioConfig(max_pool_connections=inflight, retries={"total_max_attempts": 1})
    latencies: list[float] = []
    left = args.events
    session = aioboto3.Session(region_name="us-east-1")
    async with session.client("firehose", endpoint_url=args.url, config=config) as client:
        cpu0, started = cpu_seconds(), time.perf_counter()

        async def loop() -> None:
            nonlocal left
            while left > 0:
                n = min(BATCH, left)
                left -= n
                records = [{"Data": event} for event in generator.batch(n)]
                while records:  # resend what failed until all are stored
                    sent = time.perf_counter()
                    answer = await client.put_record_batch(
                        DeliveryStreamName=STREAM, Records=records
                    )
                    latencies.append(time.perf_counter() - sent)
                    responses = answer["RequestResponses"]
                    records = [
                        r for r, a in zip(records, responses, strict=True) if "ErrorCode" in a
                    ]

        await asyncio.gather(*(loop() for _ in range(inflight)))
        return measured(args, started, cpu0, latencies, requests=len(latencies))


async def producer_case(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.errors import PutTimeoutError
    from ingest.events import EventGenerator
    from ingest.producer import Producer
    from ingest.producer.stats import RequestObservation

    generator = EventGenerator(args.run_id, args.event_size)
    latencies: list[float] = []

    def observe(observation: RequestObservation) -> None:
        latencies.append(observation.seconds)

    options: dict[str, Any] = {"max_inflight": args.inflight, "on_request": observe}
    case = args.case
    if case in ("e",):
        options["pack_bytes"] = 5120
    if case in ("f", "i2"):
        options["pack_compression"] = "gzip"
    if case == "h":
        options.update(max_queue_records=10**8, max_queue_bytes=args.stall_queue_mib << 20)
        options["on_failure"] = lambda failed: None  # counted in stats; no log lines here
    producer = Producer(STREAM, endpoint_url=args.url, **options)
    await producer.start()
    cpu0, started = cpu_seconds(), time.perf_counter()
    extra: dict[str, Any] = {}
    if case == "h":
        rss_before = peak_rss()
        try:
            while True:
                await producer.put_many(generator.batch(BATCH), timeout=2.0)
        except PutTimeoutError:
            pass
        held = producer.stats()
        extra = {
            "queue_records": held.queue_records,
            "queue_bytes": held.queue_bytes,
            "queue_bound_bytes": args.stall_queue_mib << 20,
            "rss_before": rss_before,
        }
        await producer.close(timeout=0.5)
    elif case == "j":
        chunk = args.paced_rate // 100
        for tick in range(int(args.paced_seconds * 100)):
            await producer.put_many(generator.batch(chunk))
            await asyncio.sleep(max(0.0, started + (tick + 1) / 100 - time.perf_counter()))
        extra = {"generation_s": time.perf_counter() - started, "target_rate": args.paced_rate}
        await producer.close(timeout=600)
    else:
        left = args.events
        while left > 0:
            events = generator.batch(min(BATCH, left))
            left -= len(events)
            if case == "c":
                for event in events:
                    await producer.put(event)
            else:
                await producer.put_many(events)
        await producer.close(timeout=600)
    stats = producer.stats()
    result = measured(args, started, cpu0, latencies, requests=sum(stats.requests.values()))
    result.update(extra)
    result.update(
        events=stats.records_put,
        delivered=stats.records_delivered,
        failed=stats.records_failed_total,
        firehose_records=stats.firehose_records_delivered,
        bytes_sent=stats.bytes_sent,
        bytes_billed=stats.bytes_billed,
        inflight_limit_end=stats.inflight_limit,
    )
    return result


def measured(
    args: argparse.Namespace,
    started: float,
    cpu0: float,
    latencies: list[float],
    *,
    requests: int,
) -> dict[str, Any]:
    return {
        "events": args.events,
        "elapsed_s": time.perf_counter() - started,
        "cpu_s": cpu_seconds() - cpu0,
        "peak_rss": peak_rss(),
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p99_s": percentile(latencies, 0.99),
        "requests": requests,
    }


# -- the parent: emulator, children, ground truth, table -----------------------------------


@dataclass
class Emulator:
    url: str
    data_dir: Path
    proc: subprocess.Popen[str]
    ca_file: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    count_for: list[str] = field(default_factory=list)  # run ids to count once stopped
    counted: dict[str, tuple[int, int]] = field(default_factory=dict)

    def read_stats(self) -> dict[str, Any]:
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        with urllib.request.urlopen(self.url + "/_emulator/stats", context=context) as answer:
            data: dict[str, Any] = json.loads(answer.read())
        return data

    def events_of(self, run_id: str) -> tuple[int, int]:
        """(events, distinct seqs) with `run_id` in the files written."""
        marker = f'"producer":"{run_id}"'.encode()
        total, seqs = 0, set()
        seq = re.compile(rb'"seq":(\d+),"producer":"' + re.escape(run_id.encode()) + rb'"')
        for path in self.data_dir.rglob("*"):
            if not path.is_file():
                continue
            body = path.read_bytes()
            if body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)  # a multi-member gzip file reads as one
            total += body.count(marker)
            seqs.update(seq.findall(body))
        return total, len(seqs)


@contextmanager
def emulator(
    args: argparse.Namespace, tls: tuple[str, str, str] | None, *extra: str
) -> Iterator[Emulator]:
    with tempfile.TemporaryDirectory(prefix="bench-emu-") as data_dir:
        command = [sys.executable, "-m", "ingest", "emulator", "--port", "0",
                   "--data-dir", data_dir, "--create-stream", STREAM,
                   "--buffer-size-bytes", str(64 << 20), *extra]  # fmt: skip
        if tls is not None:
            command += ["--tls-cert", tls[1], "--tls-key", tls[2]]
        log = open(Path(data_dir).with_suffix(".log"), "w+")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True,
            preexec_fn=lambda: pin(args.emulator_core),
        )  # fmt: skip
        assert proc.stdout is not None
        running: Emulator | None = None
        try:
            while True:
                line = proc.stdout.readline()
                if not line:
                    log.seek(0)
                    raise RuntimeError(f"emulator did not start:\n{log.read()[-3000:]}")
                if "listening on" in line:
                    break
            running = Emulator(line.rsplit(" ", 1)[-1].strip(), Path(data_dir), proc,
                               tls[0] if tls else None)  # fmt: skip
            yield running
            running.stats = running.read_stats()
        finally:
            proc.terminate()
            proc.wait(timeout=120)  # it flushes what it buffers on SIGTERM
            log.close()
            os.unlink(log.name)
        if running is not None:  # count before the directory goes
            running.counted = {run_id: running.events_of(run_id) for run_id in running.count_for}


def child_env(tls: tuple[str, str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    if tls is not None:
        env["AWS_CA_BUNDLE"] = tls[0]  # the producer, boto3 and aioboto3 all trust it
    return env


def run_child(args: argparse.Namespace, case: str, url: str, run_id: str, events: int,
              tls: tuple[str, str, str] | None) -> dict[str, Any]:  # fmt: skip
    command = [sys.executable, __file__, "--child", "--case", case, "--url", url,
               "--run-id", run_id, "--events", str(events), "--core", str(args.core),
               "--event-size", str(args.event_size), "--inflight", str(args.inflight),
               "--stall-queue-mib", str(args.stall_queue_mib),
               "--paced-rate", str(args.paced_rate),
               "--paced-seconds", str(args.paced_seconds)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=child_env(tls), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_ingest(args: argparse.Namespace, url: str, run_id: str, count: int,
               tls: tuple[str, str, str] | None) -> dict[str, Any]:  # fmt: skip
    """`ingest run` as a process: CPU and peak RSS read from /proc before it is reaped."""
    command = [sys.executable, "-m", "ingest", "run", "--endpoint-url", url, "--stream", STREAM,
               "--count", str(count), "--rate", "0", "--event-size", str(args.event_size),
               "--run-id", run_id, "--http-port", "0", "--log-format", "json",
               "--log-level", "warning", "--max-inflight", str(args.inflight)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(tls), preexec_fn=lambda: pin(args.core))  # fmt: skip
    peak = 0
    while True:  # VmHWM is gone once it exits: keep the last reading
        peak = max(peak, peak_rss(proc.pid))
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG):
                break
        except ChildProcessError:
            break
        time.sleep(0.02)
    cpu = cpu_seconds(proc.pid)  # a zombie keeps its times until reaped
    stdout, stderr = proc.communicate()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"ingest run exited {proc.returncode}:\n{stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    # Rates over its own generation + drain time (the summary's total_s), not its start-up.
    return {"events": count, "elapsed_s": summary.get("total_s") or elapsed,
            "process_s": elapsed, "cpu_s": summary.get("cpu_s", cpu), "process_cpu_s": cpu,
            "peak_rss": peak,
            "latency_p50_s": summary.get("latency_p50_s"),
            "latency_p99_s": summary.get("latency_p99_s"), "requests": summary.get("requests"),
            "delivered": summary.get("delivered"),
            "generation_s": summary.get("generation_s")}  # fmt: skip


def make_tls(directory: Path) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return str(ca_file), str(cert_file), str(key_file)


def tls_supported() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "ingest", "emulator", "--help"],
                               capture_output=True, text=True, check=False).stdout  # fmt: skip
    try:
        import trustme  # noqa: F401
    except ImportError:
        return False
    return "--tls-cert" in help_text


def one_case(
    args: argparse.Namespace, case: str, tls: tuple[str, str, str] | None
) -> dict[str, Any]:
    run_id = f"bench-{case}-{os.getpid()}"
    extra: list[str] = []
    if case == "h":
        extra = ["--fault-latency", "3600"]
    elif case in ("i1", "i2"):
        extra = ["--quota-bytes-per-s", str(5 * 1024 * 1024)]
    elif case == "j":
        extra = ["--fault-latency", "0.2"]
    events = {"a": args.notebook_events, "i1": args.quota_events, "i2": args.quota_events}.get(
        case, args.events
    )
    with emulator(args, tls, *extra) as emu:
        emu.count_for.append(run_id)
        if case == "g":
            result = run_ingest(args, emu.url, run_id, events, tls)
        else:
            result = run_child(args, case, emu.url, run_id, events, tls)
    result["case"] = case
    result["title"] = TITLES[case]
    if case == "h":
        result["arrived"] = None  # nothing can arrive: the sink never answers
        result["all_arrived"] = result["failed"] + result["delivered"] == result["events"]
        return result
    sent = result.get("events", events)
    arrived, distinct = emu.counted[run_id]
    result["arrived"] = arrived
    result["all_arrived"] = distinct == sent
    stats = emu.stats
    if "bytes_billed" not in result:  # every record in these cases is under one billing unit
        result["bytes_billed"] = stats.get("records_accepted", 0) * BILL_UNIT
        result["firehose_records"] = stats.get("records_accepted", 0)
    return result


def derive(result: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    events = result.get("events") or 1
    result["events_per_s"] = (result.get("arrived") or 0) / result["elapsed_s"]
    if result["case"] == "j":
        result["events_per_s"] = (result.get("arrived") or 0) / result["generation_s"]
    result["cpu_us_per_event"] = result["cpu_s"] / events * 1e6
    requests = result.get("requests") or 0
    result["events_per_request"] = (result.get("arrived") or 0) / requests if requests else None
    records = result.get("firehose_records")
    result["records_per_request"] = records / requests if records and requests else None
    result["billed_bytes_per_event"] = result.get("bytes_billed", 0) / events
    if baseline is not None and baseline is not result:
        base_rate, base_cpu = baseline["events_per_s"], baseline["cpu_us_per_event"]
        result["rate_vs_b"] = result["events_per_s"] / base_rate if base_rate else None
        result["cpu_vs_b"] = result["cpu_us_per_event"] / base_cpu if base_cpu else None


def table(results: list[dict[str, Any]]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    head = (f"{'case':<42} {'events':>9} {'ev/s':>10} {'CPU us/ev':>9} {'RSS MiB':>8} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'ev/req':>7} {'rec/req':>7} {'billed/ev':>9} "
            f"{'vs b':>6} {'cpu vs b':>8}  arrived")  # fmt: skip
    lines = [head, "-" * len(head)]
    for r in results:
        ms = {
            k: None if r.get(k) is None else r[k] * 1000 for k in ("latency_p50_s", "latency_p99_s")
        }
        lines.append(
            f"{r['case'] + ' ' + r['title']:<42} {r['events']:>9,} "
            f"{fmt(r['events_per_s'], ',.0f'):>10} "
            f"{fmt(r['cpu_us_per_event'], '.2f'):>9} {r['peak_rss'] / 2**20:>8.1f} "
            f"{fmt(ms['latency_p50_s'], '.1f'):>7} {fmt(ms['latency_p99_s'], '.1f'):>7} "
            f"{fmt(r['events_per_request'], ',.0f'):>7} {fmt(r['records_per_request'], ',.0f'):>7} "
            f"{fmt(r['billed_bytes_per_event'], ',.0f'):>9} {fmt(r.get('rate_vs_b'), '.2f'):>6} "
            f"{fmt(r.get('cpu_vs_b'), '.2f'):>8}  {'yes' if r['all_arrived'] else 'NO'}"
        )  # fmt: skip
    return "\n".join(lines)


def notes(results: dict[str, dict[str, Any]]) -> list[str]:
    said = []
    if "h" in results:
        h = results["h"]
        said.append(
            f"h: queue {h['queue_records']:,} events / {h['queue_bytes'] / 2**20:.1f} MiB held "
            f"(bound {h['queue_bound_bytes'] / 2**20:.0f} MiB); "
            f"peak RSS {h['peak_rss'] / 2**20:.1f} MiB "
            f"({(h['peak_rss'] - h['rss_before']) / 2**20:.1f} MiB above the RSS before)"
        )
    if "i1" in results and "i2" in results:
        ratio = results["i2"]["events_per_s"] / results["i1"]["events_per_s"]
        said.append(f"i: gzip-packed moves {ratio:.2f}x the events/s of unpacked through 5 MiB/s")
    if "j" in results:
        j = results["j"]
        said.append(
            f"j: {j['events_per_request']:.0f} events per request at 200 ms; delivered "
            f"{j['events_per_s']:,.0f}/s over the generation for a target of {j['target_rate']:,}/s"
        )
    if "g" in results and "d" in results:
        ratio = results["g"]["cpu_us_per_event"] / results["d"]["cpu_us_per_event"]
        g = results["g"]
        said.append(
            f"g: ingest run costs {ratio:.2f}x put_many's CPU per event over generation and "
            f"drain ({g['cpu_s']:.2f} s; {g['process_cpu_s']:.2f} s for the whole process, "
            "start-up included)"
        )
    return said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500_000, help="events per case")
    parser.add_argument("--notebook-events", type=int, default=3_000, help="events for case a")
    parser.add_argument(
        "--quota-events", type=int, default=500_000,
        help="events per case i (many: the quota's 1 s burst must not dominate)",
    )  # fmt: skip
    parser.add_argument("--event-size", type=int, default=150, help="bytes per event (exact)")
    parser.add_argument("--inflight", type=int, default=8, help="producer max_inflight")
    parser.add_argument("--stall-queue-mib", type=int, default=64, help="queue bound in case h")
    parser.add_argument("--paced-rate", type=int, default=5_000, help="events/s in case j")
    parser.add_argument("--paced-seconds", type=float, default=8.0, help="length of case j")
    parser.add_argument("--only", default=ALL_CASES, help="cases to run, e.g. abd (default all)")
    parser.add_argument(
        "--pair-rounds", type=int, default=3,
        help="with d and g: this many more d, g pairs, back to back, for the ratio of their CPU "
        "per event (one pair can differ by 30%% on a shared VM; the median of adjacent pairs "
        "does not)",
    )  # fmt: skip
    parser.add_argument("--tls", action=argparse.BooleanOptionalAction, default=None,
                        help="serve the emulator over TLS (default: when it can)")  # fmt: skip
    parser.add_argument("--core", type=int, default=0, help="core for the sending process")
    parser.add_argument("--emulator-core", type=int, default=1, help="core for the emulator")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return 0
    cases = [
        c for c in ("a", "b", "c", "d", "e", "f", "g", "h", "i1", "i2", "j") if c[0] in args.only
    ]
    use_tls = tls_supported() if args.tls is None else args.tls
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tls_dir:
        tls = make_tls(Path(tls_dir)) if use_tls else None
        print(f"# {args.events:,} events of {args.event_size} bytes per case, producer on core "
              f"{args.core}, emulator on core {args.emulator_core}, "
              f"{'TLS' if tls else 'plain HTTP'}", flush=True)  # fmt: skip
        results: dict[str, dict[str, Any]] = {}
        for case in cases:
            results[case] = one_case(args, case, tls)
            print(f"# {case} done", file=sys.stderr, flush=True)
        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        if "d" in results and "g" in results:
            for _ in range(args.pair_rounds):
                pairs.append((one_case(args, "d", tls), one_case(args, "g", tls)))
                print(f"# d, g pair {len(pairs)} done", file=sys.stderr, flush=True)
    baseline = results.get("b")
    if baseline is not None:
        derive(baseline, None)
    for result in results.values():
        derive(result, baseline)
        print(json.dumps(result, sort_keys=True), flush=True)
    print(table(list(results.values())))
    for line in notes(results):
        print(line)
    if pairs:
        print(pair_note(pairs))
    arrived = [r["all_arrived"] for r in results.values()]
    arrived += [r["all_arrived"] for pair in pairs for r in pair]
    return 0 if all(arrived) else 1


def pair_note(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """The g/d CPU ratio of each back-to-back pair, and their median (also as a JSON line)."""
    ratios = []
    for d, g in pairs:
        for result in (d, g):
            derive(result, None)
        ratios.append(g["cpu_us_per_event"] / d["cpu_us_per_event"])
    median = statistics.median(ratios)
    summary = {"case": "g/d pairs", "ratios": [round(r, 3) for r in ratios],
               "median": round(median, 3)}  # fmt: skip
    print(json.dumps(summary), flush=True)
    listed = ", ".join(f"{r:.2f}x" for r in ratios)
    return (
        f"g/d in {len(pairs)} back-to-back pairs: {listed}; median {median:.2f}x "
        f"(ingest run's CPU per event over put_many's)"
    )


if __name__ == "__main__":
    sys.exit(main())
