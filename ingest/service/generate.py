"""The generation loop of `ingest run`: paced events into the producer until told to stop.

Stops at the first of: `count` events accepted, `duration_s` elapsed, the `stop` event (a signal),
or the producer refusing records. Backpressure is the producer's: when its queue is full the loop
awaits `put()`, so generation slows to what the target accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol

import structlog

from ingest.errors import IngestError, PutTimeoutError
from ingest.events import EventGenerator
from ingest.service.health import RunState
from ingest.service.pacing import Pacer

log = structlog.get_logger(__name__)

PUT_SLICE_S = 0.25  # longest wait for queue room before looking at the stop flag again


class RecordSink(Protocol):
    """What the loop uses of the Producer."""

    async def put_many(self, records: list[bytes], timeout: float | None = None) -> object: ...
    def stats(self) -> Ledger: ...


class Ledger(Protocol):
    @property
    def records_put(self) -> int: ...


@dataclass(frozen=True, kw_only=True)
class Limits:
    count: int | None = None
    duration_s: float | None = None


async def generate(
    sink: RecordSink,
    events: EventGenerator,
    pacer: Pacer,
    limits: Limits,
    state: RunState,
    stop: asyncio.Event,
) -> str:
    """Run until a limit or `stop`; returns why it ended ("count", "duration", "signal", ...).

    `state.events_generated` counts events the producer accepted; this loop is its only writer
    and leaves it equal to the producer's `records_put` (less the records a durable log resent,
    which this run did not generate) however it ends (a refused or cancelled
    `put_many` may have queued part of its chunk: the ledger knows how much).
    """
    deadline = None if limits.duration_s is None else time.monotonic() + limits.duration_s
    try:
        while True:
            if stop.is_set():
                return "signal"
            if deadline is not None and time.monotonic() >= deadline:
                return "duration"
            remaining = None if limits.count is None else limits.count - state.events_generated
            if remaining == 0:
                return "count"
            n = pacer.take(remaining)
            if n == 0:
                await _sleep_or_stop(stop, _until(deadline, pacer.wait_s()))
                continue
            if not await _put_all(sink, events.batch(n), state, stop):
                return "producer_refused"
            await asyncio.sleep(0)  # let the sender and the HTTP server run between chunks
    finally:
        stats = sink.stats()
        recovered: int = getattr(stats, "records_recovered", 0)  # durable log resends
        state.events_generated = stats.records_put - recovered


async def _put_all(
    sink: RecordSink, records: list[bytes], state: RunState, stop: asyncio.Event
) -> bool:
    """Hand a chunk to the producer; False when it refuses records (closed, crashed or the
    target unusable). Waits for room in short slices so a stop request is noticed; on stop the
    rest of the chunk is dropped unqueued (never accepted, so never counted)."""
    offset = 0
    while offset < len(records):
        try:
            await sink.put_many(records[offset:] if offset else records, timeout=PUT_SLICE_S)
        except PutTimeoutError as exc:
            offset += exc.accepted
            state.events_generated += exc.accepted
            if stop.is_set():
                return True
            continue
        except IngestError as exc:
            log.error("producer_refused_records", error=str(exc), kind=type(exc).__name__)
            return False
        state.events_generated += len(records) - offset
        return True
    return True


def _until(deadline: float | None, wait_s: float) -> float:
    if deadline is None:
        return wait_s
    return max(0.0, min(wait_s, deadline - time.monotonic()))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
