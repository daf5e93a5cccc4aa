"""The generation loop and the summary, against an in-process stand-in for the producer's intake
(the producer's own network path is tested elsewhere and never replaced here)."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from ingest.errors import ProducerClosedError, PutTimeoutError
from ingest.events import EventGenerator
from ingest.producer.stats import Counters, ProducerStats
from ingest.service.generate import Limits, generate
from ingest.service.health import RunState
from ingest.service.pacing import Pacer
from ingest.service.summary import summarize


@dataclass
class Ledger:
    records_put: int = 0


class Intake:
    """Takes records; `room` limits how many fit before a put times out, `closed` refuses."""

    def __init__(self, room: int | None = None, closed_after: int | None = None) -> None:
        self.records: list[bytes] = []
        self.room = room
        self.closed_after = closed_after

    async def put_many(self, records: list[bytes], timeout: float | None = None) -> object:
        if self.closed_after is not None and len(self.records) >= self.closed_after:
            raise ProducerClosedError("closed")
        if self.room is not None and len(records) > self.room:
            taken = max(self.room, 0)
            self.records += records[:taken]
            self.room = 0
            await asyncio.sleep(timeout or 0)
            raise PutTimeoutError("full", taken)
        self.records += records
        return None

    def stats(self) -> Ledger:
        return Ledger(len(self.records))


async def run(intake: Intake, limits: Limits, stop: asyncio.Event | None = None) -> RunState:
    state = RunState()
    await generate(intake, EventGenerator(), Pacer(0), limits, state, stop or asyncio.Event())
    return state


async def test_stops_at_count_with_every_event_in_order() -> None:
    intake = Intake()
    state = await run(intake, Limits(count=1234))
    assert state.events_generated == len(intake.records) == 1234
    assert intake.records[0].startswith(b'{"id":"')
    assert b'"seq":1233,' in intake.records[-1]


async def test_stops_at_duration() -> None:
    intake = Intake()
    state = RunState()
    pacer = Pacer(1000)
    reason = await generate(intake, EventGenerator(), pacer, Limits(duration_s=0.2), state,
                            asyncio.Event())  # fmt: skip
    assert reason == "duration"
    assert 0 < state.events_generated <= 1000 * 0.2 + 1000  # rate x time + one burst at most


async def test_stop_while_blocked_counts_only_accepted_records() -> None:
    intake = Intake(room=100)
    stop = asyncio.Event()
    task = asyncio.create_task(run(intake, Limits(), stop))
    await asyncio.sleep(0.05)
    stop.set()
    state = await asyncio.wait_for(task, timeout=5)
    assert state.events_generated == len(intake.records) == 100


async def test_cancel_while_blocked_still_counts_what_the_producer_queued() -> None:
    """The runner cancels a generation stuck in backpressure; the part of the chunk the
    producer took is accepted, so it is counted."""
    intake = Intake(room=100)
    state = RunState()
    task = asyncio.create_task(
        generate(intake, EventGenerator(), Pacer(0), Limits(), state, asyncio.Event())
    )
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert state.events_generated == len(intake.records) == 100


async def test_refusal_ends_generation_and_resyncs_with_the_ledger() -> None:
    intake = Intake(closed_after=1000)
    state = await run(intake, Limits(count=5000))
    assert state.events_generated == len(intake.records) == 1000


def stats(**changes: Any) -> ProducerStats:
    base = ProducerStats.capture(
        Counters(0.0), queue_records=0, queue_bytes=0, now=0.0, closing=False, closed=True
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("delivered", "failed", "code"),
    [(100, {}, 0), (99, {"close_timeout": 1}, 1), (90, {}, 1)],
)
def test_exit_code_says_whether_everything_was_delivered(
    delivered: int, failed: dict[str, int], code: int
) -> None:
    state = RunState(events_generated=100)
    final = stats(records_put=100, records_delivered=delivered, records_failed=failed)
    summary = summarize(final, state, stopped_by="count", generation_s=2.0, total_s=2.5)
    assert summary.exit_code == code
    assert summary.pending == 100 - delivered - sum(failed.values())
    text = summary.render()
    assert "generated" in text
    assert f"exit {code}" in text
    # Per second of generation: the 0.5 s drain does not dilute the rate; it is shown apart.
    assert summary.as_log()["delivered_per_s"] == round(delivered / 2.0, 1)
    assert summary.as_log()["drain_s"] == 0.5
