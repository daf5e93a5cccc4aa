"""``ingest emulator``: run the Firehose-compatible emulator until SIGINT/SIGTERM.

Prints ``emulator listening on http://HOST:PORT`` on stdout once ready (one line, flushed),
flushes every buffered record on exit and returns 0. Every usage or configuration error is one
plain line ``ingest emulator: configuration error: ...`` naming the flag, with exit 2, as for
``ingest run``: a bad flag value, an unwritable ``--data-dir``, an unresolvable ``--host``, an
address already in use. The quotas and faults in effect are printed on stderr at start.
The record log behind ``stored_records`` is off here: a long run must not grow in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import os
import re
import signal
import socket
import sys
from pathlib import Path

import structlog

from ingest.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from ingest.emulator import flags
from ingest.emulator.describe import describe_bounds, describe_faults, describe_quotas
from ingest.emulator.destinations import directory_problem
from ingest.emulator.emulator import Emulator
from ingest.emulator.layout import SUPPORTED_COMPRESSION
from ingest.emulator.options import (
    DEFAULT_BUFFER_INTERVAL_S,
    DEFAULT_BUFFER_SIZE_BYTES,
    DEFAULT_SERVER_LIMITS,
    DEFAULT_STOP_TIMEOUT_S,
    EmulatorOptions,
    FaultOptions,
    QuotaOptions,
)
from ingest.firehose.limits import DEFAULT_STREAM

DEFAULT_DATA_DIR = Path("data/emulator")
#: Errors of binding that name the user's --host/--port choice (in use, not ours, not allowed).
_ADDRESS_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})

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
        description=(
            "Run a local Firehose-compatible endpoint until SIGINT/SIGTERM. It answers the "
            "Firehose JSON 1.1 API on POST / (PutRecord, PutRecordBatch, CreateDeliveryStream, "
            "DescribeDeliveryStream, ListDeliveryStreams, DeleteDeliveryStream) and its "
            "counters on GET /_emulator/stats (JSON). Clients sign requests as for AWS: any "
            "non-empty credentials do (signatures are not checked). Units: durations in "
            "seconds, sizes in bytes, rates per second. Exit codes: 0 stopped cleanly, 1 "
            "buffered records could not be written, 2 usage or configuration error."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=flags.port, default=4573, help="port; 0 picks a free one (default 4573)"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where objects are written, laid out as in S3 (default {DEFAULT_DATA_DIR}); "
        "not with --s3-bucket",
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
        metavar="BYTES",
        help="write an object once a stream buffers this many bytes (default %(default)s); "
        "CreateDeliveryStream BufferingHints override it per stream",
    )
    p.add_argument(
        "--buffer-interval",
        type=flags.non_negative,
        default=DEFAULT_BUFFER_INTERVAL_S,
        metavar="SECONDS",
        help="... or once its oldest buffered record is this old (default %(default)s)",
    )
    p.add_argument(
        "--stop-timeout",
        type=flags.non_negative,
        default=DEFAULT_STOP_TIMEOUT_S,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, retry writes that fail (disk full, S3 down) for up to S "
        "seconds before giving up with exit 1 (default %(default)s)",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="serve HTTPS with this certificate (chain) file; needs --tls-key",
    )
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")
    _add_s3_flags(p)
    _add_layout_flags(p)
    _add_quota_flags(p)
    _add_fault_flags(p)
    _add_server_flags(p)
    p.set_defaults(handler=run_command)


def _add_s3_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "S3 destination (instead of --data-dir; credentials from AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY or the usual AWS chain)"
    )
    g.add_argument(
        "--s3-bucket",
        metavar="BUCKET",
        help="write every object to this bucket (created if missing), one PutObject each",
    )
    g.add_argument(
        "--s3-endpoint-url",
        metavar="URL",
        help="an S3-compatible store, e.g. http://127.0.0.1:9000 for MinIO (default: AWS S3)",
    )


def _add_layout_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "object layout of the streams created at start (CreateDeliveryStream sets its own; "
        "keys are PREFIX + yyyy/MM/dd/HH/ + STREAM-1-yyyy-MM-dd-HH-mm-ss-UUID + extension)"
    )
    g.add_argument(
        "--prefix",
        default="",
        metavar="PREFIX",
        help="S3 Prefix; may hold !{timestamp:JAVA_PATTERN} and !{firehose:random-string}; "
        "without a !{timestamp:...} the date path yyyy/MM/dd/HH/ is appended with no slash "
        "('logs' -> 'logs2026/07/13/14/')",
    )
    g.add_argument(
        "--error-output-prefix",
        metavar="PREFIX",
        help="S3 ErrorOutputPrefix (needed when --prefix has expressions; with expressions "
        "it must hold !{firehose:error-output-type})",
    )
    g.add_argument(
        "--compression",
        choices=SUPPORTED_COMPRESSION,
        default="UNCOMPRESSED",
        help="GZIP: each object is the gzip of its records, its key ends in .gz "
        "(default %(default)s)",
    )
    g.add_argument(
        "--file-extension",
        metavar="EXT",
        help="replaces the default extension ('' or .gz), e.g. .json.gz",
    )
    g.add_argument(
        "--custom-time-zone",
        metavar="TZ",
        help="time zone of the date path and file-name time, e.g. Asia/Tokyo (default UTC)",
    )


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
        metavar="RECORDS/S",
        help='excess records get "Slow down." in a 200',
    )
    g.add_argument(
        "--quota-requests-per-s",
        type=flags.positive_int,
        metavar="REQUESTS/S",
        help="excess calls get a 503",
    )
    g.add_argument(
        "--quota-bytes-per-s",
        type=flags.positive_int,
        metavar="BYTES/S",
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
            metavar="FRACTION",
            help=f"fraction (0-1) of {what}",
        )
    g.add_argument(
        "--fault-latency",
        type=flags.non_negative,
        default=0.0,
        metavar="SECONDS",
        help="added to every call",
    )
    g.add_argument(
        "--fault-latency-jitter",
        type=flags.non_negative,
        default=0.0,
        metavar="SECONDS",
        help="plus a random 0 to this many seconds per call",
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
    data_dir = args.data_dir
    if data_dir is None and args.s3_bucket is None:
        data_dir = DEFAULT_DATA_DIR
    return EmulatorOptions(
        host=args.host,
        port=args.port,
        data_dir=data_dir,
        s3_bucket=args.s3_bucket,
        s3_endpoint_url=args.s3_endpoint_url,
        prefix=args.prefix,
        error_output_prefix=args.error_output_prefix,
        compression=args.compression,
        file_extension=args.file_extension,
        custom_time_zone=args.custom_time_zone,
        stop_timeout_s=args.stop_timeout,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        streams=tuple(args.create_stream or (DEFAULT_STREAM,)),
        buffer_size_bytes=args.buffer_size_bytes,
        buffer_interval_s=args.buffer_interval,
        quotas=quotas,
        faults=faults,
        record_log=False,
        server_limits=dataclasses.replace(
            DEFAULT_SERVER_LIMITS,
            max_connections=args.max_connections,
            header_timeout_s=args.header_timeout,
            body_timeout_s=args.body_timeout,
            max_buffered_bytes=args.max_buffered_bytes,
        ),
    )


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    limits = DEFAULT_SERVER_LIMITS
    g = p.add_argument_group(
        "server bounds (what slow or stuck clients can hold; refusals are logged once per kind "
        "per interval)"
    )
    g.add_argument(
        "--max-connections",
        type=flags.positive_int,
        metavar="N",
        help=f"connection cap (default: half the open-file limit less the listen backlog of "
        f"{limits.backlog}, at most {limits.default_max_connections}; never more than that); at "
        "the cap a new connection evicts the oldest one still sending its request head",
    )
    g.add_argument(
        "--header-timeout",
        type=flags.positive,
        default=limits.header_timeout_s,
        metavar="SECONDS",
        help="a request head must arrive within S seconds (default %(default)s)",
    )
    g.add_argument(
        "--body-timeout",
        type=flags.positive,
        default=limits.body_timeout_s,
        metavar="SECONDS",
        help="a request body must arrive within S seconds, else 408 (default %(default)s)",
    )
    g.add_argument(
        "--max-buffered-bytes",
        type=flags.positive_int,
        default=limits.max_buffered_bytes,
        metavar="N",
        help="request body bytes read at once over all connections; past it calls get 503 "
        "Slow down (default %(default)s)",
    )


def _given(value: int | None, default: int | None) -> int | None:
    return default if value is None else value


def run_command(args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args)
        emulator = Emulator(options)
    except ValueError as error:
        return _usage_error(_flag_names(str(error)))
    # Log lines go to stderr: stdout carries the ready line that scripts wait for.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    from ingest.service.eventloop import run as run_on_best_loop  # uvloop when installed

    return run_on_best_loop(_serve(emulator))


#: EmulatorOptions fields set by flags whose names differ from the field's.
_FLAG_OF_OPTION = {"stop_timeout_s": "stop-timeout", "buffer_interval_s": "buffer-interval"}
_OPTION_WORD = re.compile(
    r"\b(s3_endpoint_url|s3_bucket|data_dir|error_output_prefix|prefix|"
    r"file_extension|custom_time_zone|compression|stop_timeout_s|tls_cert|tls_key)\b(=?)"
)


def _flag_names(message: str) -> str:
    """``s3_bucket='x': ...`` -> ``--s3-bucket 'x': ...``: name the flags the user typed."""

    def flag(match: re.Match[str]) -> str:
        option = match.group(1)
        name = _FLAG_OF_OPTION.get(option, option.replace("_", "-"))
        return f"--{name}" + (" " if match.group(2) else "")

    return _OPTION_WORD.sub(flag, message)


def _usage_error(text: str) -> int:
    print(f"ingest emulator: configuration error: {text}", file=sys.stderr, flush=True)
    return EXIT_USAGE


async def _serve(emulator: Emulator) -> int:
    options = emulator.options
    problem = None if options.data_dir is None else directory_problem(options.data_dir)
    if problem is not None:
        return _usage_error(
            f"--data-dir {str(options.data_dir)!r}: {problem}; "
            "expected a writable directory (created if missing)"
        )
    try:
        await emulator.start()
    except socket.gaierror as error:
        return _usage_error(
            f"--host {options.host!r}: {error.strerror}; "
            "expected a local IP address or host name such as 127.0.0.1"
        )
    except OSError as error:
        if error.errno in _ADDRESS_ERRNOS:  # the address is the user's choice, like a bad flag
            return _usage_error(
                f"--port {options.port}: cannot listen on {options.host}:{options.port} "
                f"({os.strerror(error.errno)}); choose another --port (0 = any free port) or --host"
            )
        print(f"ingest emulator: cannot start: {error}", file=sys.stderr)
        return EXIT_FAILURE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"emulator listening on {emulator.endpoint_url}", flush=True)
    # What shapes every answer, where the operator looks first (stdout is for the ready line).
    print(describe_quotas(options.quotas), file=sys.stderr)
    print(describe_faults(options.faults), file=sys.stderr)
    print(describe_bounds(options.server_limits), file=sys.stderr, flush=True)
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
        where = emulator.options.data_dir
        place = f"under {str(where)!r}" if where is not None else f"to {emulator.destination}"
        return f"buffered records could not be written {place}: {error}"
    return None
