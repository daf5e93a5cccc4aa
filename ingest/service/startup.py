"""Start-up steps of `ingest run`: choose the target, log the effective set-up, confirm the stream.

A missing stream, or credentials Firehose refuses, end the run at once with exit code 1 and one
clear message. DescribeDeliveryStream being forbidden is not fatal (write-only IAM policies are
common): readiness then waits for the first delivered batch. An unreachable target is not fatal
either: the producer's retries and deadlines decide, and readiness says 503 meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import aioboto3
import structlog

from ingest.cli import EXIT_FAILURE
from ingest.emulator import Emulator, EmulatorOptions
from ingest.errors import AccessDeniedError, ConfigError, FirehoseError, IngestError
from ingest.service.config import ServiceConfig, redact_url
from ingest.service.health import RunState
from ingest.service.logging import json_logs

log = structlog.get_logger(__name__)

RECHECK_INTERVAL_S = 5.0  # DescribeDeliveryStream is capped at 5 calls/s per account: go slow
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local-emulator"}


@dataclass(frozen=True)
class Target:
    kind: str  # "emulator" (in-process), "endpoint" (explicit URL) or "aws"
    endpoint_url: str | None
    stream: str
    region: str
    credentials: str  # where credentials come from (never their values)
    session: aioboto3.Session | None = None  # None: botocore's default credential chain

    def describe(self) -> str:
        where = redact_url(self.endpoint_url) if self.endpoint_url else "AWS"
        return f"stream {self.stream!r} in {self.region} at {where} ({self.kind})"

    def labels(self) -> dict[str, str]:
        """Metric labels: the endpoint's host only (never user info or a query string)."""
        host = urlsplit(self.endpoint_url).hostname if self.endpoint_url else None
        return {"target": self.kind, "stream": self.stream, "region": self.region,
                "endpoint_host": host or f"firehose.{self.region}.amazonaws.com"}  # fmt: skip


async def open_target(stack: AsyncExitStack, config: ServiceConfig) -> Target:
    """With `local`, start the emulator (stopped, and flushed, when `stack` unwinds)."""
    if not config.local:
        kind = "endpoint" if config.endpoint_url else "aws"
        return Target(kind, config.endpoint_url, config.stream, config.region, credentials_source())
    if config.endpoint_url:
        log.warning("endpoint_url_ignored", reason="local is set: sending to the emulator")
    # No in-memory record log: a long-lived run must stay within the buffering hints' memory.
    options = EmulatorOptions(
        streams=(config.stream,), data_dir=config.local_data_dir, record_log=False
    )
    try:
        emulator = await stack.enter_async_context(Emulator(options))
    except OSError as exc:
        if config.local_data_dir is None:
            raise
        raise ConfigError(
            f"local_data_dir: cannot use {str(config.local_data_dir)!r} "
            f"({exc.strerror or exc}); expected a writable directory path"
        ) from None
    log.info(
        "emulator_started",
        url=emulator.endpoint_url,
        data_dir=str(emulator.data_dir),
        # Without local_data_dir the objects live in a temporary directory removed at exit.
        data_dir_kept=config.local_data_dir is not None,
    )
    # The emulator ignores signatures, but botocore signs nothing without credentials; dummy
    # ones also keep real credentials away from a local endpoint.
    session = aioboto3.Session(**LOCAL_CREDENTIALS, region_name=config.region)
    return Target(
        "emulator", emulator.endpoint_url, config.stream, config.region, "dummy (emulator)", session
    )


def credentials_source() -> str:
    """Where botocore will look first, for the start-up log (never the values themselves)."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        return "environment"
    if os.environ.get("AWS_PROFILE"):
        return f"profile {os.environ['AWS_PROFILE']}"
    return "botocore default chain"


def log_start(
    config: ServiceConfig, target: Target, run_id: str, unknown_env: Sequence[str]
) -> None:
    for name in unknown_env:
        log.warning("unknown_environment_variable", name=name, hint="not a configuration key")
    log.info(
        "service_starting",
        config=config.redacted(),
        target=target.kind,
        stream=target.stream,
        region=target.region,
        endpoint=redact_url(target.endpoint_url) if target.endpoint_url else "aws",
        credentials=target.credentials,
        run_id=run_id,
    )


class TargetChecker(Protocol):
    """What `confirm_target` needs from the Producer."""

    async def check_target(self) -> object: ...


async def confirm_target(
    producer: TargetChecker,
    state: RunState,
    target: Target,
    *,
    recheck_interval_s: float = RECHECK_INTERVAL_S,
) -> int | None:
    """DescribeDeliveryStream once; an exit code if the target is unusable, else None.
    An unreachable target is asked again every `recheck_interval_s` until it answers."""
    try:
        await producer.check_target()
    except AccessDeniedError as exc:
        log.warning("describe_not_permitted", detail=str(exc), readiness="first delivered batch")
    except FirehoseError as exc:
        if exc.fatal:
            return report_fatal(exc, target)
        log.warning("target_unreachable", error=str(exc), target=target.describe())
        _recheck_later(producer, state, recheck_interval_s)
    else:
        state.target_confirmed_monotonic = time.monotonic()
        log.info("target_confirmed", target=target.describe())
    return None


def report_fatal(exc: FirehoseError, target: Target) -> int:
    """Log and print why the target cannot be used; the exit code."""
    hint = "create it, or check --stream and --region" if exc.reason == "stream_not_found" else ""
    log.error(
        "target_unusable", reason=exc.reason, error=str(exc), target=target.describe(), hint=hint
    )
    if not json_logs():  # on a terminal, end with one plain sentence; JSON logs said it all
        detail = f" ({hint})" if hint else ""
        print(f"ingest run: {target.describe()} is unusable: {exc}{detail}", file=sys.stderr)
    return EXIT_FAILURE


_background: set[asyncio.Task[None]] = set()


def _recheck_later(producer: TargetChecker, state: RunState, interval_s: float) -> None:
    task = asyncio.create_task(_recheck(producer, state, interval_s))
    _background.add(task)  # keep a reference: the loop holds tasks only weakly
    task.add_done_callback(_background.discard)


async def _recheck(producer: TargetChecker, state: RunState, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        if state.target_confirmed_monotonic is not None or state.draining:
            return  # confirmed meanwhile, or the run is ending
        try:
            await producer.check_target()
        except FirehoseError:
            continue
        except IngestError:  # the producer closed or crashed meanwhile: nothing left to confirm
            return
        state.target_confirmed_monotonic = time.monotonic()
        log.info("target_confirmed", late=True)
        return
