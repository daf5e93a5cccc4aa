"""Logging set-up for the service (library code only calls `structlog.get_logger`).

JSON lines rendered with orjson straight to bytes when stderr is not a terminal (containers, log
pipelines), a readable console format on a terminal. Logs go to stderr; stdout carries the summary.
A last processor scrubs the values of secret environment variables from every string, as a net
under the rule that secrets are never logged in the first place.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from ingest.service.config import REDACTED

SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
_mode = {"json": False}  # what configure_logging chose, for the messages below
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class SecretScrubber:
    """Replace known secret values found in log event strings by a redaction marker."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        # Short values would match ordinary words; real secrets are long.
        self._secrets = [environ[n] for n in SECRET_ENV if len(environ.get(n, "")) >= 8]

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        if self._secrets:
            for name, value in event_dict.items():
                event_dict[name] = self._scrub(value)
        return event_dict

    def _scrub(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, MutableMapping):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value


def use_json(log_format: str, stream: TextIO) -> bool:
    """JSON unless asked for console, or `auto` on a terminal."""
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def configure_logging(
    level: str = "info",
    log_format: str = "auto",
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Configure structlog (and route stdlib warnings, e.g. from botocore, the same way).
    Returns whether the lines are JSON."""
    out = sys.stderr if stream is None else stream
    scrubber = SecretScrubber(os.environ if environ is None else environ)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        scrubber,
    ]
    json_mode = use_json(log_format, out)
    _mode["json"] = json_mode
    renderer: Processor
    factory: Any
    if json_mode:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(file=out.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
        factory = structlog.PrintLoggerFactory(file=out)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level, json_mode, out, scrubber)
    return json_mode


def bind_run(*, run_id: str, stream: str) -> None:
    """Bind the run id and the stream once in structlog's context: every later line of the run
    carries them (tasks copy the context they are created in, so bind before asyncio.run)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, stream=stream)


def json_logs() -> bool:
    """Whether stderr carries JSON lines (then everything written there must be JSON)."""
    return _mode["json"]


def tell_user(text: str, event: str, **fields: object) -> None:
    """A final error for whoever runs us, on stderr: `ingest run: <text>` as a plain line, or
    one JSON log line (`event`, `message`, `fields`) when the logs are JSON (a plain line would
    break the pipeline's parser)."""
    if _mode["json"]:
        structlog.get_logger(__name__).error(event, message=text, **fields)
    else:
        print(f"ingest run: {text}", file=sys.stderr, flush=True)


def _route_stdlib(level: str, json_mode: bool, out: TextIO, scrubber: SecretScrubber) -> None:
    """Third-party stdlib loggers: warnings and above, rendered like our own lines."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json_mode
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,  # run_id and stream on these lines too
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrubber,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(_LEVELS[level], logging.WARNING))
