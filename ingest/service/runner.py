"""`ingest run` from start to exit code: target, producer, HTTP server, generation, drain, summary.

Order of start: the emulator (with --local), the producer, the HTTP server, then a check that the
target stream exists (a missing stream fails fast with exit 1 instead of retrying forever).
Order of stop is the reverse, after the drain: stop generating, close the producer within the
drain deadline (it ships partial batches, awaits in-flight calls and fails what is left to the
failure handler), then stop the HTTP server and the emulator (which flushes to disk).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import structlog

from ingest import __version__
from ingest.errors import FirehoseError
from ingest.events import EventGenerator
from ingest.producer import Producer
from ingest.service.config import ServiceConfig
from ingest.service.generate import Limits, generate
from ingest.service.health import Health, RunState
from ingest.service.pacing import Pacer
from ingest.service.server import start_server
from ingest.service.signals import SignalDrain
from ingest.service.startup import Target, confirm_target, log_start, open_target, report_fatal
from ingest.service.summary import summarize

log = structlog.get_logger(__name__)

STOP_GRACE_S = 1.0  # how long generation may take to notice a stop before it is cancelled


async def run_service(
    config: ServiceConfig, *, unknown_env: Sequence[str] = (), json_summary: bool = False
) -> int:
    """Run until a limit or a signal; returns the exit code. Raises ConfigError (exit 2).

    The summary goes to stdout: a table, or with `json_summary` one JSON object."""
    events = EventGenerator(run_id=config.run_id, event_size=config.event_size)
    signals = SignalDrain()
    signals.install()
    try:
        async with AsyncExitStack() as stack:
            target = await open_target(stack, config)
            log_start(config, target, events.run_id, unknown_env)
            try:
                return await _run(stack, config, target, events, signals, json_summary)
            except FirehoseError as exc:  # the target is unusable, e.g. no credentials anywhere
                return report_fatal(exc, target)
    finally:
        signals.remove()


async def _run(
    stack: AsyncExitStack,
    config: ServiceConfig,
    target: Target,
    events: EventGenerator,
    signals: SignalDrain,
    json_summary: bool,
) -> int:
    producer = await stack.enter_async_context(_producer(config, target))
    state = RunState()
    health = Health(
        producer,
        state,
        stall_timeout_s=config.stall_timeout_s,
        unreachable_after_s=config.unreachable_after_s,
    )
    info = {"version": __version__, "run_id": events.run_id, **target.labels()}
    await start_server(stack, config, producer, state, health, info)
    check = confirm_target(
        producer, state, target, unreachable_after_s=config.unreachable_after_s
    )  # a dead endpoint ends the run here, before anything is generated into it
    code = await _unless_stopped(check, signals)
    if code is not None:
        return code
    generation_started = time.monotonic()
    stopped_by = await _generate(producer, events, config, state, signals)
    generation_s = time.monotonic() - generation_started
    state.draining = True
    await _drain(producer, config.drain_timeout_s, signals)
    summary = summarize(
        producer.stats(), state, stopped_by=stopped_by, generation_s=generation_s,
        total_s=time.monotonic() - generation_started, run_id=events.run_id,
        target_rate=config.rate,
    )  # fmt: skip
    log.info("run_finished", **summary.as_log())
    print(summary.render_json() if json_summary else summary.render(), flush=True)
    return summary.exit_code


async def _unless_stopped(check: Awaitable[int | None], signals: SignalDrain) -> int | None:
    """The start-up check, given up when a signal comes first: a silent endpoint must not hold
    a stop request for a whole request timeout. Nothing was generated yet, so nothing is lost
    (generation then sees the stop at once and the run ends with an empty drain)."""
    task = asyncio.ensure_future(check)
    if await _done_before(task, signals.stop):
        return task.result()
    await _cancel(task)
    log.info("target_check_abandoned", reason="stop requested before the target answered")
    return None


def _producer(config: ServiceConfig, target: Target) -> Producer:
    """The producer for the target."""
    return Producer(
        stream=config.stream,
        region=config.region,
        endpoint_url=target.endpoint_url,
        # The default handler logs what is given up, one line per reason; the producer's ledger
        # counts it, and the summary and /metrics read that count.
        on_failure=None,
        session=target.session,
        **config.producer_options(),
    )


async def _generate(
    producer: Producer,
    events: EventGenerator,
    config: ServiceConfig,
    state: RunState,
    signals: SignalDrain,
) -> str:
    """Generation until it ends by itself or a signal; a put blocked by backpressure is
    cancelled shortly after the signal so the drain can start."""
    limits = Limits(count=config.count, duration_s=config.duration_s)
    task = asyncio.create_task(
        generate(producer, events, Pacer(config.rate), limits, state, signals.stop)
    )
    await _done_before(task, signals.stop)
    done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_S)
    if not done:
        await _cancel(task)
    return task.result() if done else "signal"


async def _drain(producer: Producer, deadline_s: float, signals: SignalDrain) -> None:
    """Close the producer within `deadline_s`; a second signal asks it to give up at once.

    Either way the producer's close accounts for every record: delivered, or failed to the
    failure handler (reason ``close_timeout``). An in-flight call is never counted as delivered.
    """
    log.info("drain_started", deadline_s=deadline_s, **_pending(producer))
    close = asyncio.create_task(producer.close(timeout=deadline_s))
    if not await _done_before(close, signals.cut):
        # Cancelling close() makes it stop waiting; it still fails what is left before returning.
        close.cancel()
    await asyncio.gather(close, return_exceptions=True)
    log.info("drain_finished", **_pending(producer))


async def _done_before(task: asyncio.Future[Any], event: asyncio.Event) -> bool:
    """Wait until `task` is done or `event` is set; whether the task is done."""
    waiter = asyncio.create_task(event.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    return task.done()


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _pending(producer: Producer) -> dict[str, int]:
    stats = producer.stats()
    return {"queue_records": stats.queue_records, "inflight_requests": stats.inflight_requests}
