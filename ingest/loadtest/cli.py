"""`ingest loadtest` (flags generated from the configuration keys) and `ingest loadtest merge`.

Exit codes: 0 the test ran and reported (a missed target or throttling is a finding, not a
failure), 1 it could not run (target unusable, producer refused records) or `merge` lacks a
fleet index, 2 usage or configuration error (also an unreadable report for `merge`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ingest.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from ingest.errors import ConfigError
from ingest.events import EventGenerator
from ingest.loadtest.settings import ALL_KEYS, FLAG_KEYS, LoadtestSettings, load_loadtest_config
from ingest.service.cli import add_flag, flags_from_args
from ingest.service.config import CONFIG_ENV, ServiceConfig, unknown_env
from ingest.service.prepare import prepare_run

PROG = "ingest loadtest"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `loadtest` (and its `merge`) to the `ingest` dispatcher."""
    parser = subparsers.add_parser(
        "loadtest",
        allow_abbrev=False,
        help="load-test a delivery stream: rate profiles, --find-max, live progress, reports",
        description=(
            "Load-test a Firehose delivery stream with the producer of `ingest run` (same keys, "
            "flags, INGEST_* environment and --config TOML file). Profiles: constant (--rate), "
            "ramp (--rate to --ramp-to over --duration), steps (--rate plus --step every "
            "--step-every seconds, up to --ramp-to); or --find-max. Prints a report table; "
            "--report FILE.json and --html FILE.html write it to files. A fleet of N processes "
            "(--fleet-size, --fleet-index or JOB_COMPLETION_INDEX, --test-id) forms one test: "
            "merge their reports with `ingest loadtest merge`. Exit codes: 0 the test ran, "
            "1 it could not run, 2 usage or configuration error."
        ),
    )
    parser.add_argument(
        "--config", metavar="FILE", help=f"TOML file with configuration keys (env {CONFIG_ENV})"
    )
    for key in FLAG_KEYS:
        add_flag(parser, key)
    parser.set_defaults(handler=loadtest_command)
    parser.add_argument(
        "merge_args",
        nargs="*",
        metavar="merge REPORT",
        help="`ingest loadtest merge REPORT... [--report FILE] [--html FILE]`: merge the JSON "
        "reports of a fleet into one (table on stdout; exit 1 naming a missing fleet index, "
        "2 when a report cannot be read)",
    )


def loadtest_command(args: argparse.Namespace) -> int:
    if args.merge_args:
        if args.merge_args[0] != "merge" or len(args.merge_args) < 2:
            print(
                f"{PROG}: usage error: unexpected {' '.join(args.merge_args)!r}; expected "
                "`ingest loadtest merge REPORT...` or options only",
                file=sys.stderr,
            )
            return EXIT_USAGE
        return merge_command(
            [Path(name) for name in args.merge_args[1:]],
            report=_path(args.report),
            html=_path(args.html),
        )
    try:
        config, settings = load_loadtest_config(flags_from_args(args, ALL_KEYS))
        config = prepare_run(config)  # the run id is chosen now, so the logged config shows it
        events = EventGenerator(run_id=config.run_id, event_size=config.event_size)
    except ConfigError as exc:
        print(f"{PROG}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _run(config, settings, events)


def _run(config: ServiceConfig, settings: LoadtestSettings, events: EventGenerator) -> int:
    # Imported here so `--help` and `merge` skip the producer, aioboto3 and rich.
    import structlog

    from ingest.loadtest.run import run_loadtest
    from ingest.service.allocator import tune_allocator
    from ingest.service.eventloop import run as run_on_best_loop
    from ingest.service.logging import bind_run, configure_logging, tell_user

    json_logs = configure_logging(config.log_level, config.log_format)
    bind_run(run_id=events.run_id, stream=config.stream)
    structlog.get_logger(__name__).debug("allocator", malloc=tune_allocator())
    try:
        return run_on_best_loop(
            run_loadtest(
                config,
                settings,
                events,
                json_logs=json_logs,
                unknown_env=unknown_env(os.environ, ALL_KEYS),
            )
        )
    except ConfigError as exc:  # found once running, e.g. an unusable local data dir
        tell_user(f"configuration error: {exc}", "configuration_error")
        return EXIT_USAGE
    except Exception:  # a bug: one log line with the traceback
        structlog.get_logger(__name__).exception("loadtest_crashed")
        return EXIT_FAILURE


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def merge_command(paths: list[Path], *, report: Path | None, html: Path | None) -> int:
    """Merge the reports at `paths`; the exit code."""
    import orjson

    from ingest.loadtest.report import MergeError, check_shape, merge, render_table
    from ingest.loadtest.run import write_json

    reports = []
    for path in paths:
        try:
            data = orjson.loads(path.read_bytes())
            reports.append(check_shape(data, str(path)))
        except OSError as exc:
            print(
                f"{PROG} merge: cannot read report {path}: {exc.strerror or exc}", file=sys.stderr
            )
            return EXIT_USAGE
        except orjson.JSONDecodeError as exc:
            print(f"{PROG} merge: report {path} is not JSON: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except ValueError as exc:
            print(f"{PROG} merge: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        merged = merge(reports)
    except MergeError as exc:
        print(f"{PROG} merge: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(render_table(merged), end="", flush=True)
    if report is not None:
        write_json(merged, report)
    if html is not None:
        from ingest.loadtest.html_report import write_html

        write_html(merged, html)
    return EXIT_OK
