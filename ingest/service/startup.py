"""Start-up steps of `ingest run`: choose the target, log the effective set-up, confirm the stream.

A missing stream, or credentials Firehose refuses, end the run at once with exit code 1 and one
clear message. DescribeDeliveryStream being forbidden is not fatal (write-only IAM policies are
common): readiness then waits for the first delivered batch. A target that cannot be reached at
all (connection refused, unknown host, no answer in time) is asked again for
`unreachable_after_s`; if it never answers, the run ends with exit 1 and one line before a
single event is generated into a dead endpoint. Once the run is under way, an outage is the
producer's retries' business and readiness says 503 meanwhile.
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
from ingest.errors import (
    AccessDeniedError,
    ConfigError,
    FirehoseConnectionError,
    FirehoseError,
    IngestError,
    RequestTimeoutError,
)
from ingest.service.config import ServiceConfig, redact_url
from ingest.service.health import RunState
from ingest.service.logging import json_logs, tell_user

log = structlog.get_logger(__name__)

RECHECK_INTERVAL_S = 5.0  # DescribeDeliveryStream is capped at 5 calls/s per account: go slow
FIRST_RETRY_S = 0.25  # start-up asks again after this, doubling up to MAX_RETRY_S (well under 5/s)
MAX_RETRY_S = 2.0
#: What to do about a fatal reason, for the one line that ends the run.
HINTS = {
    "stream_not_found": "create it, or check --stream and --region",
    "access_denied": "allow firehose:PutRecordBatch and firehose:DescribeDeliveryStream on it",
    "credentials": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any non-empty values for "
    "a local emulator), AWS_PROFILE, or run with an IAM role",
    "tls": "point AWS_CA_BUNDLE (or the profile's ca_bundle) at the CA that signed the "
    "endpoint's certificate (behind a TLS-inspecting proxy: the proxy's CA)",
}
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local-emulator"}


@dataclass(frozen=True)
class Target:
    kind: str  # "emulator" (in-process), "endpoint" (explicit URL) or "aws"
    endpoint_url: str | None
    stream: str
    region: str
    credentials: str  # where credentials come from (never their values)
    session: aioboto3.Session | None = None  # None: botocore's default credential chain
    emulator: Emulator | None = None  # the in-process emulator (kind "emulator")

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
    emulator = Emulator(options)
    try:
        await emulator.start()
    except OSError as exc:
        if config.local_data_dir is None:
            raise
        raise ConfigError(
            f"local_data_dir: cannot use {str(config.local_data_dir)!r} "
            f"({exc.strerror or exc}); expected a writable directory path"
        ) from None
    stack.push_async_callback(_stop_emulator, emulator)
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
        "emulator",
        emulator.endpoint_url,
        config.stream,
        config.region,
        "dummy (emulator)",
        session,
        emulator,
    )


async def _stop_emulator(emulator: Emulator) -> None:
    """Stop the in-process emulator, which writes what it buffers (retrying a failing disk for
    its stop timeout); records it still cannot write are one error line, not a traceback."""
    try:
        await emulator.stop()
    except OSError as exc:
        log.error(
            "emulator_flush_failed",
            error=str(exc),
            destination=emulator.destination,
            consequence="records counted as delivered were not written",
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
    url = target.endpoint_url
    if not config.verify_ssl and (url is None or url.startswith("https:")):
        log.warning(
            "tls_verification_off",
            endpoint=redact_url(url) if url else "aws",
            consequence="the endpoint's certificate is not checked (--no-verify-ssl)",
        )


class TargetChecker(Protocol):
    """What `confirm_target` needs from the Producer."""

    async def check_target(self) -> object: ...


async def confirm_target(
    producer: TargetChecker,
    state: RunState,
    target: Target,
    *,
    unreachable_after_s: float | None = None,
    recheck_interval_s: float = RECHECK_INTERVAL_S,
) -> int | None:
    """DescribeDeliveryStream; an exit code if the target is unusable, else None.

    With `unreachable_after_s`, a target that cannot be reached is asked again (backing off from
    FIRST_RETRY_S) until then, and is unusable (exit 1) if it never answered. Any other transient
    error proves something answers: the run goes on and the target is asked again every
    `recheck_interval_s` in the background until it answers."""
    try:
        await _reach(producer, target, unreachable_after_s)
    except _Unreachable as exc:
        return report_unreachable(exc.error, target, exc.waited_s)
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


class _Unreachable(Exception):
    def __init__(self, error: FirehoseError, waited_s: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.waited_s = waited_s


def _unreachable(exc: FirehoseError) -> bool:
    """Nothing answered: refused, unknown host, or no answer in time."""
    return isinstance(exc, FirehoseConnectionError | RequestTimeoutError)


async def _reach(producer: TargetChecker, target: Target, give_up_after_s: float | None) -> None:
    """`check_target()`, asked again while nothing answers, for up to `give_up_after_s`.
    Raises _Unreachable when that time ran out, else what the check raised."""
    if give_up_after_s is None:
        await producer.check_target()
        return
    started = time.monotonic()
    delay = FIRST_RETRY_S
    while True:
        left = give_up_after_s - (time.monotonic() - started)
        try:
            await asyncio.wait_for(producer.check_target(), timeout=max(left, 0.001))
            return
        except TimeoutError:
            error: FirehoseError = RequestTimeoutError(
                "RequestTimeout", f"no answer within {give_up_after_s:g} s"
            )
        except FirehoseError as exc:
            if not _unreachable(exc):
                raise
            error = exc
        waited = time.monotonic() - started
        if waited >= give_up_after_s:
            raise _Unreachable(error, waited)
        log.debug("target_not_answering", error=str(error), target=target.describe())
        await asyncio.sleep(min(delay, give_up_after_s - waited))
        delay = min(delay * 2, MAX_RETRY_S)


def report_unreachable(exc: FirehoseError, target: Target, waited_s: float) -> int:
    """One line saying the target never answered at start; the exit code."""
    hint = "check endpoint_url, region and the network (or raise unreachable_after_s)"
    tell_user(
        f"{target.describe()} is unreachable: no answer for {waited_s:.1f} s ({exc}); {hint}",
        "target_unreachable",
        error=str(exc),
        target=target.describe(),
        waited_s=round(waited_s, 3),
        hint=hint,
    )
    return EXIT_FAILURE


def report_fatal(exc: FirehoseError, target: Target) -> int:
    """Log and print why the target cannot be used; the exit code."""
    hint = HINTS.get(exc.reason)
    details = {"hint": hint} if hint else {}
    log.error(
        "target_unusable", reason=exc.reason, error=str(exc), target=target.describe(), **details
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
