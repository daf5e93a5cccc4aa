"""``ingest emulator``: run the Firehose-compatible emulator until SIGINT/SIGTERM.

Prints ``emulator listening on http://HOST:PORT`` on stdout once ready (one line, flushed),
flushes every buffered record on exit and returns 0. Bad flags exit 2, an unusable address 1.
The record log behind ``stored_records`` is off here: a long run must not grow in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from ingest.emulator.emulator import Emulator
from ingest.emulator.options import (
    DEFAULT_BUFFER_INTERVAL_S,
    DEFAULT_BUFFER_SIZE_BYTES,
    DEFAULT_STREAM,
    EmulatorOptions,
    FaultOptions,
    QuotaOptions,
)

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _fraction(text: str) -> float:
    value = _non_negative(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a whole number > 0, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port 0-65535, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``emulator`` subcommand."""
    p = subparsers.add_parser(
        "emulator",
        help="run a local Firehose-compatible endpoint (S3-style files, quotas, faults)",
        description="Run a local Firehose-compatible endpoint until SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=4573, help="port; 0 picks a free one (default 4573)"
    )
    p.add_argument("--data-dir", type=Path, default=Path("data/emulator"), help="object root")
    p.add_argument(
        "--create-stream",
        action="append",
        metavar="NAME",
        help=f"stream to create at start (repeatable; default {DEFAULT_STREAM})",
    )
    p.add_argument("--buffer-size-bytes", type=_positive_int, default=DEFAULT_BUFFER_SIZE_BYTES)
    p.add_argument(
        "--buffer-interval", type=_non_negative, default=DEFAULT_BUFFER_INTERVAL_S, metavar="S"
    )
    _add_quota_flags(p)
    _add_fault_flags(p)
    p.set_defaults(handler=run_command)


def _add_quota_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quotas (per stream; default unlimited)")
    g.add_argument("--quota-region", metavar="REGION", help="AWS default quotas of REGION")
    g.add_argument("--quota-records-per-s", type=_positive_int, metavar="N")
    g.add_argument("--quota-requests-per-s", type=_positive_int, metavar="N")
    g.add_argument("--quota-bytes-per-s", type=_positive_int, metavar="N")


def _add_fault_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faults (PutRecord/PutRecordBatch only; default off)")
    g.add_argument("--seed", type=int, help="seed for reproducible fault decisions")
    for rate in ("record-failure", "call-error", "reset", "accepted-error"):
        g.add_argument(f"--fault-{rate}-rate", type=_fraction, default=0.0, metavar="F")
    g.add_argument("--fault-latency", type=_non_negative, default=0.0, metavar="S")
    g.add_argument("--fault-latency-jitter", type=_non_negative, default=0.0, metavar="S")


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    """EmulatorOptions from parsed flags; ValueError names the bad flag value."""
    base = QuotaOptions.for_region(args.quota_region) if args.quota_region else QuotaOptions()
    quotas = QuotaOptions(
        records_per_s=_given(args.quota_records_per_s, base.records_per_s),
        requests_per_s=_given(args.quota_requests_per_s, base.requests_per_s),
        bytes_per_s=_given(args.quota_bytes_per_s, base.bytes_per_s),
    )
    faults = FaultOptions(
        seed=args.seed,
        record_failure_rate=args.fault_record_failure_rate,
        call_error_rate=args.fault_call_error_rate,
        latency_s=args.fault_latency,
        latency_jitter_s=args.fault_latency_jitter,
        reset_rate=args.fault_reset_rate,
        accepted_error_rate=args.fault_accepted_error_rate,
    )
    return EmulatorOptions(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        streams=tuple(args.create_stream or (DEFAULT_STREAM,)),
        buffer_size_bytes=args.buffer_size_bytes,
        buffer_interval_s=args.buffer_interval,
        quotas=quotas,
        faults=faults,
        record_log=False,
    )


def _given(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def run_command(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        emulator = Emulator(options)
    except ValueError as error:
        print(f"ingest emulator: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_serve(emulator))


async def _serve(emulator: Emulator) -> int:
    try:
        await emulator.start()
    except OSError as error:
        print(f"ingest emulator: cannot listen: {error}", file=sys.stderr)
        return EXIT_FAILURE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"emulator listening on {emulator.endpoint_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()
    print(f"emulator stopped: {emulator.stats.objects_written} objects written", flush=True)
    return EXIT_OK
