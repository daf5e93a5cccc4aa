"""The `ingest` command: one entry point, one module per subcommand.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (a function taking the parsed namespace and returning the exit code).
Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ingest import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from ingest.emulator import cli as emulator_cli
    from ingest.loadtest import cli as loadtest_cli
    from ingest.service import cli as service_cli
    from ingest.spool import cli as spool_cli
    from ingest.verify import cli as verify_cli

    parser = argparse.ArgumentParser(
        prog="ingest",
        description="Stream events into Amazon Kinesis Data Firehose, or emulate Firehose locally.",
    )
    parser.add_argument("--version", action="version", version=f"ingest {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    service_cli.register(subparsers)
    emulator_cli.register(subparsers)
    verify_cli.register(subparsers)
    spool_cli.register(subparsers)
    loadtest_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # Report against the subcommand, so its own usage (and flags) are shown, exit code 2.
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[command]
            return found
    return parser


def entry() -> None:
    sys.exit(main())
