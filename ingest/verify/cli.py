"""`ingest verify`: read a destination back and reconcile it with what was generated.

Exit codes: 0 nothing missing, 1 something missing (or the destination cannot be read),
2 bad usage (one plain line naming the option).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from ingest.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from ingest.verify.sources import parse_s3_url
from ingest.verify.verify import DEFAULT_RANGES, VerifyError, VerifyResult, verify_destination

_DESCRIPTION = """\
Read every object at a destination (the emulator's data directory, or an S3 bucket and prefix,
walked recursively whatever the key layout; plain or gzip objects) and reconcile the events
with what was generated, by producer run id and seq. Per run id it reports the events expected,
delivered (unique), missing (with the first missing seq ranges), duplicated (extra copies and
the worst multiplicity), malformed lines, lines without a newline, and the latency from each
event's ts to its object's time: the UTC time Firehose writes in the object name
(...-YYYY-MM-dd-HH-mm-ss-<uuid>, one-second resolution: when the oldest record in the object
arrived), or, when the name has none, the file's modification time or the S3 LastModified.
Exit codes: 0 nothing missing, 1 something missing or the destination unreadable, 2 bad usage."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `verify` subcommand to the `ingest` dispatcher."""
    p = subparsers.add_parser(
        "verify",
        allow_abbrev=False,
        help="read the destination back and count missing and duplicated events",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_argument_group("destination (exactly one)")
    where.add_argument(
        "--data-dir",
        metavar="DIR",
        help="a directory laid out as S3, e.g. the emulator's --data-dir or ingest run's "
        "--local-data-dir",
    )
    where.add_argument("--s3", metavar="s3://BUCKET/PREFIX", help="objects under this S3 prefix")
    where.add_argument(
        "--s3-endpoint-url", metavar="URL", help="S3-compatible endpoint (MinIO, moto; default AWS)"
    )
    where.add_argument(
        "--region",
        metavar="REGION",
        help="S3 region (default: AWS_REGION, AWS_DEFAULT_REGION or us-east-1)",
    )
    what = p.add_argument_group("what was generated (default: seqs 0..highest seen per run id)")
    what.add_argument("--expect", metavar="N", help="events generated per run id (seqs 0..N-1)")
    what.add_argument(
        "--report",
        metavar="FILE.json",
        help='a report of ingest run or ingest loadtest: its "runs" list gives each run id and '
        "its events_generated",
    )
    what.add_argument("--run-id", metavar="ID", help="reconcile only this run id")
    out = p.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    out.add_argument(
        "--ranges",
        metavar="N",
        default=str(DEFAULT_RANGES),
        help=f"missing seq ranges listed per run id in --json (default {DEFAULT_RANGES})",
    )
    out.add_argument(
        "--time-zone",
        metavar="ZONE",
        default="UTC",
        help="zone of the time in object names: the stream's CustomTimeZone (default UTC)",
    )
    p.set_defaults(handler=verify_command)


class UsageError(Exception):
    """A bad option value: the message names the option, the value and what was expected."""


def _int(option: str, text: str | None, what: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise UsageError(f"{option}: invalid value {text!r}; expected {what}")
    return value


def _http_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"--s3-endpoint-url: invalid value {text!r}; expected an http:// or https:// URL"
        )
    return text


def read_report(path: str) -> dict[str, int]:
    """Run id -> events generated, from a report's "runs" list. Raises UsageError."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"--report: cannot read {path!r}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"--report: {path!r} is not JSON: {exc}") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list):
        raise UsageError(f'--report: {path!r} has no "runs" list; expected a report of ingest run')
    expected: dict[str, int] = {}
    for index, entry in enumerate(runs):
        run_id = entry.get("run_id") if isinstance(entry, dict) else None
        count = entry.get("events_generated") if isinstance(entry, dict) else None
        if not isinstance(run_id, str) or not run_id or type(count) is not int or count < 0:
            raise UsageError(
                f"--report: {path!r} runs[{index}] is {_short(entry)}; expected "
                '{"run_id": "<text>", "events_generated": <int >= 0>}'
            )
        # A run id listed twice (should not happen): the larger count is the one to meet.
        expected[run_id] = max(count, expected.get(run_id, 0))
    return expected


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """verify_destination's keyword arguments from the flags. Raises UsageError."""
    if (args.data_dir is None) == (args.s3 is None):
        raise UsageError("give exactly one destination: --data-dir DIR or --s3 s3://BUCKET/PREFIX")
    options: dict[str, Any] = {"run_id": args.run_id}
    if args.data_dir is not None:
        if args.s3_endpoint_url is not None:
            raise UsageError("--s3-endpoint-url: only used with --s3, not with --data-dir")
        if not Path(args.data_dir).is_dir():
            raise UsageError(f"--data-dir: {args.data_dir!r} is not a directory")
        options["data_dir"] = args.data_dir
    else:
        try:
            parse_s3_url(args.s3)
        except ValueError:
            raise UsageError(
                f"--s3: invalid value {args.s3!r}; expected s3://BUCKET or s3://BUCKET/PREFIX"
            ) from None
        options["s3_url"] = args.s3
        if args.s3_endpoint_url is not None:
            options["s3_endpoint_url"] = _http_url(args.s3_endpoint_url)
        options["region"] = args.region
    if args.run_id is not None and not args.run_id:
        raise UsageError("--run-id: invalid value ''; expected a producer run id")
    if args.expect is not None and args.report is not None:
        raise UsageError("--expect and --report: give one of them, not both")
    options["expected"] = _int("--expect", args.expect, "an integer >= 0 (events per run id)")
    if args.report is not None:
        expected = read_report(args.report)
        if args.run_id is not None and args.run_id not in expected:
            raise UsageError(f"--run-id: {args.run_id!r} is not in the runs of {args.report!r}")
        options["expected"] = expected
    options["max_ranges"] = _int("--ranges", args.ranges, "an integer >= 0")
    try:
        options["time_zone"] = ZoneInfo(args.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--time-zone: invalid value {args.time_zone!r}; expected a zone such as UTC or "
            "Europe/Paris"
        ) from None
    return options


def verify_command(args: argparse.Namespace) -> int:
    try:
        options = _options(args)
    except UsageError as exc:
        print(f"ingest verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(verify_destination(**options))
    except VerifyError as exc:
        print(f"ingest verify: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    code = EXIT_OK if result.ok else EXIT_FAILURE
    try:
        print(render(result, as_json=args.json), flush=True)
    except BrokenPipeError:  # `ingest verify ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return code


def render(result: VerifyResult, *, as_json: bool) -> str:
    from ingest.verify.render import render_json, render_table

    return render_json(result) if as_json else render_table(result)
