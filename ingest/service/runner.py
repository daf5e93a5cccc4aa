"""`ingest run` from start to exit code: target, producer, HTTP server, generation, drain, summary.

Order of start: the emulator (with --local), the producer, the HTTP server, then a check that the
target stream exists (a missing stream fails fast with exit 1 instead of retrying forever).
Order of stop is the reverse, after the drain: stop generating, close the producer within the
drain deadline (it ships partial batches, awaits in-flight calls and fails what is left to the
failure handler), then stop the HTTP server and the emulator (which flushes to disk).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson
import structlog

from ingest import __version__
from ingest.cli import EXIT_FAILURE
from ingest.errors import ConfigError, FirehoseError, SpoolLockedError
from ingest.events import EventGenerator
from ingest.loadtest.progress import RunProgressSource, run_progress
from ingest.producer import Producer, RequestObserver
from ingest.service.aftercheck import report_data, verify_exit_code, verify_run, write_report
from ingest.service.config import ServiceConfig
from ingest.service.generate import Limits, generate
from ingest.service.health import Health, RunState
from ingest.service.logging import json_logs
from ingest.service.pacing import Pacer
from ingest.service.server import start_server
from ingest.service.signals import SignalDrain
from ingest.service.startup import Target, confirm_target, log_start, open_target, report_fatal
from ingest.service.summary import Summary, summarize
from ingest.spool.deadletter import DeadLetterSpool

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
    spool = _dead_letter_spool(stack, config, events.run_id)
    source = RunProgressSource(rate=config.rate, duration_s=config.duration_s, count=config.count)
    producer = await _start_producer(stack, config, target, spool, source.observe)
    _resume_seqs(producer, events)
    state = RunState(spool=spool)
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
    cpu_started = time.process_time()
    started_at_s = time.time()  # objects older than this hold no event of this run
    first_seq = events.seq  # > 0 when --durable resumed the run id of an earlier process
    progress = run_progress(
        source, producer.stats, lambda: state.events_generated, every_s=config.progress_every_s,
        json_logs=json_logs(), title=f"ingest run {events.run_id}",
    )  # fmt: skip
    try:
        stopped_by = await _generate(producer, events, config, state, signals)
        generation_s = time.monotonic() - generation_started
    finally:
        await progress.stop()
    state.draining = True
    await _drain(producer, config.drain_timeout_s, signals)
    summary = summarize(
        producer.stats(), state, stopped_by=stopped_by, generation_s=generation_s,
        total_s=time.monotonic() - generation_started, run_id=events.run_id,
        stream=config.stream, target_rate=config.rate, spooled=spool.spooled_total,
        cpu_s=time.process_time() - cpu_started,
    )  # fmt: skip
    log.info("run_finished", **summary.as_log())
    print(summary.render_json() if json_summary else summary.render(), flush=True)
    return await _after_run(config, target, events.run_id, state, (first_seq, started_at_s),
                            summary, json_summary)  # fmt: skip


async def _after_run(
    config: ServiceConfig,
    target: Target,
    run_id: str,
    state: RunState,
    start: tuple[int, float],
    summary: Summary,
    json_summary: bool,
) -> int:
    """--verify (read the run's events back from the emulator) and --report; the exit code.

    `start` is the first seq this process generated and when. Seqs 0..first+generated-1 of
    the run id exist (a resumed --durable run continues an earlier process's seqs), and only
    a run that started at seq 0 may skip the objects written before it started."""
    first_seq, started_at_s = start
    generated = first_seq + state.events_generated
    code = summary.exit_code
    verified = None
    if config.verify and target.emulator is not None:
        verified = await verify_run(
            target.emulator, run_id, generated,
            since_s=started_at_s if first_seq == 0 else None, json_line=json_summary,
        )  # fmt: skip
        code = max(code, verify_exit_code(verified))
    if config.report is not None:
        data = report_data(run_id, generated, summary.as_log(), verified)
        if not await write_report(config.report, data):
            code = max(code, EXIT_FAILURE)
    return code


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


def _producer(
    config: ServiceConfig,
    target: Target,
    spool: DeadLetterSpool,
    on_request: RequestObserver | None = None,
) -> Producer:
    """The producer for the target; `on_request` sees every request (progress latency)."""
    return Producer(
        stream=config.stream,
        region=config.region,
        endpoint_url=target.endpoint_url,
        # Failed records go to the dead-letter spool (fsync'd) before they count as failed; the
        # producer's ledger counts them, and the summary and /metrics read that count.
        on_failure=spool.handle,
        session=target.session,
        on_request=on_request,
        verify=config.tls_verify(),
        **config.producer_options(),
    )


def _dead_letter_spool(
    stack: AsyncExitStack, config: ServiceConfig, run_id: str
) -> DeadLetterSpool:
    """The dead-letter spool under spool_dir (one log per run id, opened at the first failure:
    a run where nothing fails writes nothing); closed after the producer when `stack` unwinds.
    Raises ConfigError naming spool_dir when it could never be written."""
    _check_writable("spool_dir", config.spool_dir)
    spool = DeadLetterSpool(
        config.spool_dir,
        stream=config.stream,
        writer_id=run_id,
        max_bytes=config.spool_max_bytes,
        full_timeout_s=config.spool_full_timeout_s,
    )
    stack.push_async_callback(spool.close)
    return spool


def _check_writable(key: str, directory: Path) -> None:
    """`directory`, or the nearest parent that exists, must be a writable directory (nothing
    is created here)."""
    path = directory.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        what = "not a directory" if not path.is_dir() else "not writable"
        raise ConfigError(
            f"{key}: cannot use {str(directory)!r} ({path} is {what}); "
            "expected a writable directory path"
        )


async def _start_producer(
    stack: AsyncExitStack,
    config: ServiceConfig,
    target: Target,
    spool: DeadLetterSpool,
    on_request: RequestObserver | None = None,
) -> Producer:
    try:
        return await stack.enter_async_context(_producer(config, target, spool, on_request))
    except (SpoolLockedError, OSError) as exc:
        if not config.durable:
            raise
        raise _dir_error("durable_dir", config.durable_dir, exc) from None


def _dir_error(key: str, directory: Path, exc: Exception) -> ConfigError:
    if isinstance(exc, SpoolLockedError):
        return ConfigError(f"{key}: {exc}; expected a directory no other process is using")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(
        f"{key}: cannot use {str(directory)!r} ({reason}); expected a writable directory path"
    )


def _resume_seqs(producer: Producer, events: EventGenerator) -> None:
    """--durable with a fixed run id: continue the seqs after the newest event in the log, so
    a restarted run (same --run-id) never reuses a seq an earlier process accepted."""
    recovery = producer.durable_recovery
    if recovery is None or recovery.last_record is None:
        return
    try:
        last = orjson.loads(recovery.last_record)
    except orjson.JSONDecodeError:
        return  # not one of our events: an embedding app's own records
    if not isinstance(last, dict):
        return
    seq = last.get("seq")
    if last.get("producer") != events.run_id or not isinstance(seq, int) or seq < events.seq:
        return
    events.seq = seq + 1
    log.info(
        "durable_resumed",
        run_id=events.run_id,
        next_seq=events.seq,
        resent=recovery.pending_records,
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
