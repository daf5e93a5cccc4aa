"""`ingest run`: the long-lived service (flags are generated from the configuration keys).

Exit codes: 0 every event delivered, 1 some were not (or the target is unusable), 2 usage or
configuration error. A configuration mistake prints one line naming the key, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ingest.cli import EXIT_FAILURE, EXIT_USAGE
from ingest.errors import ConfigError
from ingest.service.config import CONFIG_ENV, ServiceConfig, load_config, unknown_env
from ingest.service.keys import KEYS, Key

_METAVARS = {"int": "N", "float": "X", "str": "TEXT", "path": "DIR"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` subcommand to the `ingest` dispatcher."""
    parser = subparsers.add_parser(
        "run",
        allow_abbrev=False,  # `--rat` must be an error, not a silent `--rate`
        help="generate events and stream them to Firehose (or the local emulator)",
        description=(
            "Generate events and stream them to Firehose until stopped, --count or --duration. "
            "Precedence: flags > INGEST_* and AWS_* environment > --config TOML file > defaults. "
            "Exit codes: 0 all delivered, 1 some not (or the target is unusable or "
            "unreachable), 2 usage or configuration error. While it runs, --http-host:"
            "--http-port serves GET (and HEAD) /healthz (liveness), /readyz (readiness) and "
            "/metrics (Prometheus). Units: durations in seconds, sizes in bytes, rates per second."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"TOML file with configuration keys (env {CONFIG_ENV})",
    )
    for key in KEYS:
        add_flag(parser, key)
    parser.set_defaults(handler=run_command)


def unit_metavar(key: Key) -> str:
    """The flag's value in --help, naming its unit: `--duration SECONDS`, `--rate EVENTS/S`."""
    name = key.name
    if name.endswith("_per_s"):
        return name.removesuffix("_per_s").upper() + "/S"
    if name == "rate":
        return "EVENTS/S"
    if name.endswith("_url"):
        return "URL"
    if name.endswith("_s"):
        return "SECONDS"
    if "bytes" in name or name == "event_size":
        return "BYTES"
    return _METAVARS[key.kind]


def add_flag(parser: argparse.ArgumentParser, key: Key) -> None:
    default = "unset" if key.default is None else key.default
    envs = ", ".join((key.env, *key.aws_env))
    text = f"{key.help} (env {envs}; default {default})"
    if key.kind == "bool":
        parser.add_argument(
            key.flag, dest=key.name, action=argparse.BooleanOptionalAction, help=text
        )
        return
    metavar = "/".join(key.choices) if key.choices else key.metavar or unit_metavar(key)
    # Values stay text here: the loader converts and validates every layer the same way.
    if key.bare is not None:  # the flag alone means a sensible value (`--pack-bytes`)
        parser.add_argument(
            key.flag, dest=key.name, metavar=metavar, help=text, nargs="?", const=key.bare
        )
        return
    parser.add_argument(key.flag, dest=key.name, metavar=metavar, help=text)


def flags_from_args(args: argparse.Namespace, keys: Sequence[Key] = KEYS) -> dict[str, object]:
    """The flags actually given, by key name (None = not given)."""
    names = [*(key.name for key in keys), "config"]
    return {name: getattr(args, name, None) for name in names}


def run_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(flags_from_args(args))
    except ConfigError as exc:
        return usage_error(exc)
    return run_with_config(config)


def usage_error(exc: ConfigError) -> int:
    """Every usage or configuration error, whenever it is found: one plain line on stderr (also
    with JSON logs: it is for the person who typed the command), exit code 2."""
    print(f"ingest run: configuration error: {exc}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def run_with_config(config: ServiceConfig) -> int:
    # Imported here so `ingest emulator` and `--help` skip the runner's HTTP and metrics modules.
    import structlog

    from ingest.service.allocator import tune_allocator
    from ingest.service.eventloop import run as run_on_best_loop
    from ingest.service.logging import bind_run, configure_logging
    from ingest.service.prepare import prepare_run
    from ingest.service.runner import run_service

    try:
        config = prepare_run(config)  # chooses the run id, so the logs show the real one
    except ConfigError as exc:
        return usage_error(exc)
    json_logs = configure_logging(config.log_level, config.log_format)
    assert config.run_id is not None
    bind_run(run_id=config.run_id, stream=config.stream)  # every later line carries both
    structlog.get_logger(__name__).debug("allocator", malloc=tune_allocator())
    # A log pipeline reads stdout too: there the summary is one JSON object, not a table.
    json_summary = json_logs and not sys.stdout.isatty()
    try:
        return run_on_best_loop(  # uvloop's loop when the `uvloop` extra is installed
            run_service(config, unknown_env=unknown_env(os.environ), json_summary=json_summary)
        )
    except ConfigError as exc:  # found once running, e.g. the HTTP port is taken
        return usage_error(exc)
    except Exception:  # a bug: one log line with the traceback (one JSON object in JSON mode)
        structlog.get_logger(__name__).exception("run_crashed")
        return EXIT_FAILURE
