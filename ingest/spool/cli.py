"""`ingest replay [DIR]` and `ingest spool check DIR`.

`replay` takes the target and producer options of `ingest run` (same flags, INGEST_* variables
and --config file, same messages). Exit codes: 0 nothing left undelivered, 1 records still
undelivered (or the spool is in use, or the target is unusable), 2 usage or configuration error.
`spool check`: 0 intact, 1 damaged, 2 usage (no such directory).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from ingest.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from ingest.errors import ConfigError, FirehoseError, SpoolError
from ingest.service.cli import add_flag, flags_from_args
from ingest.service.config import CONFIG_ENV, ServiceConfig, load_config
from ingest.service.keys import KEYS, Key

#: `ingest run` keys that mean something to a replay: the target, logging, the drain deadline
#: and every producer knob except the durable log's (a replay reads the spool, not a log).
_TARGET_KEYS = (
    "stream",
    "region",
    "endpoint_url",
    "verify_ssl",
    "log_level",
    "log_format",
    "drain_timeout_s",
)


def _replay_keys() -> list[Key]:
    return [
        key
        for key in KEYS
        if key.name in _TARGET_KEYS or (key.producer and not key.name.startswith("durable_"))
    ]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `replay` and `spool` (with `check`) to the `ingest` dispatcher."""
    replay = subparsers.add_parser(
        "replay",
        allow_abbrev=False,
        help="resend the records of the dead-letter spool (journaled: never twice)",
        description=(
            "Resend the records that `ingest run` spooled after they finally failed. Delivered "
            "records are journaled (fsync'd) in DIR, so running it again, or after it was "
            "killed, never resends one it saw delivered; records that may already be stored "
            "are resent only with --include-ambiguous. Takes the target and producer options "
            "of `ingest run`. Exit codes: 0 nothing left, 1 records still undelivered, 2 usage."
        ),
    )
    replay.add_argument(
        "directory",
        nargs="?",
        metavar="DIR",
        help="the spool directory (default: spool_dir, i.e. data/spool)",
    )
    replay.add_argument(
        "--include-ambiguous",
        action="store_true",
        help="also resend records that may already be stored (a lost answer): duplicates possible",
    )
    replay.add_argument("--json", action="store_true", help="print the report as one JSON object")
    replay.add_argument(
        "--config", metavar="FILE", help=f"TOML file with configuration keys (env {CONFIG_ENV})"
    )
    for key in _replay_keys():
        add_flag(replay, key)
    replay.set_defaults(handler=replay_command)

    spool = subparsers.add_parser(
        "spool",
        help="inspect a dead-letter spool or durable log",
        description="Inspect a dead-letter spool or a --durable log.",
    )
    actions = spool.add_subparsers(dest="spool_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="report what DIR holds and whether it is intact (exit 0 intact, 1 damaged)",
        description=(
            "Report what a spool or durable log holds (segments, records above the checkpoint, "
            "failure reasons) and whether it is intact. Read-only. Exit codes: 0 intact, "
            "1 damaged, 2 usage."
        ),
    )
    check.add_argument("directory", metavar="DIR", help="a spool or durable log directory")
    check.add_argument("--json", action="store_true", help="print the report as one JSON object")
    check.set_defaults(handler=check_command)


def replay_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(flags_from_args(args, _replay_keys()))
    except ConfigError as exc:
        print(f"ingest replay: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    directory = args.directory or str(config.spool_dir)
    if not os.path.isdir(directory):
        print(
            f"ingest replay: DIR: {directory!r} is not a directory; expected a spool directory "
            "(the spool_dir of `ingest run`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import structlog

    from ingest.service.allocator import tune_allocator
    from ingest.service.eventloop import run as run_on_best_loop
    from ingest.service.logging import configure_logging

    configure_logging(config.log_level, config.log_format)
    structlog.get_logger(__name__).debug("allocator", malloc=tune_allocator())
    return run_on_best_loop(_replay(directory, config, args.include_ambiguous, args.json))


def _producer_args(config: ServiceConfig) -> dict[str, Any]:
    options = config.producer_options()
    options["durable_dir"] = None
    return {
        "stream": config.stream,
        "region": config.region,
        "endpoint_url": config.endpoint_url,
        "verify": config.tls_verify(),
        **options,
    }


async def _replay(directory: str, config: ServiceConfig, ambiguous: bool, as_json: bool) -> int:
    from ingest.spool.replay import NotASpoolError, replay_tree

    try:
        report = await replay_tree(
            directory, producer_args=_producer_args(config), include_ambiguous=ambiguous
        )
    except NotASpoolError as exc:
        print(f"ingest replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpoolError as exc:  # locked: a running `ingest run` or another replay
        print(f"ingest replay: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except FirehoseError as exc:
        print(f"ingest replay: the target is unusable: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"ingest replay: cannot use {directory!r}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(orjson.dumps(report.as_dict()).decode() if as_json else report.render(), flush=True)
    return EXIT_FAILURE if report.undelivered or report.busy else EXIT_OK


def check_command(args: argparse.Namespace) -> int:
    from ingest.spool.check import check_log
    from ingest.spool.log import find_logs

    directory: str = args.directory
    if not os.path.isdir(directory):
        print(
            f"ingest spool check: DIR: {directory!r} is not a directory; expected a spool or "
            "durable log directory",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        reports = [check_log(path) for path in find_logs(directory)] or [check_log(directory)]
    except OSError as exc:
        print(f"ingest spool check: cannot read {directory!r}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(orjson.dumps([report.as_dict() for report in reports]).decode(), flush=True)
    else:
        print("\n".join(report.render() for report in reports), flush=True)
    return EXIT_OK if all(report.intact for report in reports) else EXIT_FAILURE
