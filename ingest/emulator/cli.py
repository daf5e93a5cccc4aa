"""``ingest emulator``: run the Firehose-compatible emulator until SIGINT/SIGTERM.

Prints ``emulator listening on http://HOST:PORT`` on stdout once ready (one line, flushed),
flushes every buffered record on exit and returns 0. Bad flag values exit 2 with a message
naming the flag (also an unwritable ``--data-dir`` or an unresolvable ``--host``); an address
already in use exits 1.
The record log behind ``stored_records`` is off here: a long run must not grow in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from ingest.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from ingest.emulator import flags
from ingest.emulator.emulator import Emulator
from ingest.emulator.options import (
    DEFAULT_BUFFER_INTERVAL_S,
    DEFAULT_BUFFER_SIZE_BYTES,
    EmulatorOptions,
    FaultOptions,
    QuotaOptions,
)
from ingest.firehose.limits import DEFAULT_STREAM

FAULT_RATE_HELP = {
    "record-failure": "records answered ServiceUnavailableException/InternalFailure in a 200",
    "call-error": "calls answered 500/503 (nothing stored)",
    "reset": "connections reset mid-request (nothing stored)",
    "accepted-error": "calls whose records are stored but answered 500 (duplicates)",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``emulator`` subcommand."""
    p = subparsers.add_parser(
        "emulator",
        help="run a local Firehose-compatible endpoint (S3-style files, quotas, faults)",
        description="Run a local Firehose-compatible endpoint until SIGINT/SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=flags.port, default=4573, help="port; 0 picks a free one (default 4573)"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/emulator"),
        metavar="DIR",
        help="where objects are written, laid out as in S3 (default data/emulator)",
    )
    p.add_argument(
        "--create-stream",
        action="append",
        metavar="NAME",
        help=f"stream to create at start (repeatable; default {DEFAULT_STREAM})",
    )
    p.add_argument(
        "--buffer-size-bytes",
        type=flags.positive_int,
        default=DEFAULT_BUFFER_SIZE_BYTES,
        metavar="N",
        help="write an object once a stream buffers N bytes (default %(default)s); "
        "CreateDeliveryStream BufferingHints override it per stream",
    )
    p.add_argument(
        "--buffer-interval",
        type=flags.non_negative,
        default=DEFAULT_BUFFER_INTERVAL_S,
        metavar="S",
        help="... or once its oldest buffered record is S seconds old (default %(default)s)",
    )
    _add_quota_flags(p)
    _add_fault_flags(p)
    p.set_defaults(handler=run_command)


def _add_quota_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quotas (per stream; default unlimited)")
    g.add_argument(
        "--quota-region",
        type=flags.region,
        metavar="REGION",
        help="AWS's default Direct PUT quotas of REGION (us-east-1: 500,000 records/s, "
        "2,000 requests/s, 5 MiB/s); the flags below override one each",
    )
    g.add_argument(
        "--quota-records-per-s",
        type=flags.positive_int,
        metavar="N",
        help='excess records get "Slow down." in a 200',
    )
    g.add_argument(
        "--quota-requests-per-s",
        type=flags.positive_int,
        metavar="N",
        help="excess calls get a 503",
    )
    g.add_argument(
        "--quota-bytes-per-s",
        type=flags.positive_int,
        metavar="N",
        help='excess records get "Slow down." in a 200',
    )


def _add_fault_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faults (PutRecord/PutRecordBatch only; default off)")
    g.add_argument("--seed", type=int, help="seed for reproducible fault decisions")
    for rate, what in FAULT_RATE_HELP.items():
        g.add_argument(
            f"--fault-{rate}-rate",
            type=flags.fraction,
            default=0.0,
            metavar="F",
            help=f"F of {what}",
        )
    g.add_argument(
        "--fault-latency",
        type=flags.non_negative,
        default=0.0,
        metavar="S",
        help="S seconds per call",
    )
    g.add_argument(
        "--fault-latency-jitter",
        type=flags.non_negative,
        default=0.0,
        metavar="S",
        help="plus a random 0-S seconds per call",
    )


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


def _data_dir_problem(path: Path) -> str | None:
    """Why objects cannot be written under ``path`` (created if missing), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return error.strerror or str(error)
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return None


async def _serve(emulator: Emulator) -> int:
    options = emulator.options
    assert options.data_dir is not None  # the CLI always names one
    problem = _data_dir_problem(options.data_dir)
    if problem is not None:
        print(
            f"ingest emulator: error: --data-dir {str(options.data_dir)!r}: {problem}; "
            "expected a writable directory (created if missing)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        await emulator.start()
    except socket.gaierror as error:
        print(
            f"ingest emulator: error: --host {options.host!r}: {error.strerror}; "
            "expected a local IP address or host name such as 127.0.0.1",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as error:
        print(f"ingest emulator: cannot start: {error}", file=sys.stderr)
        return EXIT_FAILURE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"emulator listening on {emulator.endpoint_url}", flush=True)
    try:
        await stop.wait()
    finally:
        problem = await _stop(emulator)
    if problem is not None:
        print(f"ingest emulator: error: {problem}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"emulator stopped: {emulator.stats.objects_written} objects written", flush=True)
    return EXIT_OK


async def _stop(emulator: Emulator) -> str | None:
    """Stop and flush; why buffered records could not be written, or None."""
    try:
        await emulator.stop()
    except OSError as error:
        return f"buffered records could not be written under {str(emulator.data_dir)!r}: {error}"
    return None
