"""What the probes answer, decided from the producer's counters and the run's own state.

Kept apart from the HTTP layer so the rules can be tested with a made-up stats snapshot. The only
thing read from the producer is `stats()`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ingest.producer.stats import ProducerStats


class StatsSource(Protocol):
    """Anything with a cheap `stats()` snapshot: the Producer, or a fake in tests."""

    def stats(self) -> ProducerStats: ...


class SpoolGauges(Protocol):
    """What /metrics reads of the dead-letter spool."""

    @property
    def spooled(self) -> dict[str, int]: ...  # records written, by failure reason
    @property
    def bytes(self) -> int: ...  # bytes in its files


@dataclass
class RunState:
    """What the run loop knows that the producer does not; mutated only by the run loop."""

    events_generated: int = 0
    target_confirmed_monotonic: float | None = None  # when DescribeDeliveryStream answered
    draining: bool = False
    spool: SpoolGauges | None = None  # the dead-letter spool, once open


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


class Health:
    """Liveness and readiness rules.

    Live: the sender makes progress, i.e. it is idle or a request completed (with any outcome)
    within `stall_timeout_s`. Ready: the target answered once, no drain is under way, and while
    work is pending a request succeeded within `unreachable_after_s`.
    """

    def __init__(
        self,
        source: StatsSource,
        state: RunState,
        *,
        stall_timeout_s: float,
        unreachable_after_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._state = state
        self._stall_timeout_s = stall_timeout_s
        self._unreachable_after_s = unreachable_after_s
        self._clock = clock

    def live(self) -> Verdict:
        stats = self._source.stats()
        if stats.closed and not self._state.draining:
            return Verdict(False, "producer stopped unexpectedly")
        pending = stats.queue_records + stats.inflight_requests
        idle_s = self._clock() - stats.last_progress_monotonic
        if pending and idle_s > self._stall_timeout_s:
            return Verdict(False, f"sender wedged: no progress for {idle_s:.1f} s, work pending")
        return Verdict(True, "ok")

    def ready(self) -> Verdict:
        stats = self._source.stats()
        if self._state.draining or stats.closing or stats.closed:
            return Verdict(False, "draining")
        answered = [
            t
            for t in (self._state.target_confirmed_monotonic, stats.last_success_monotonic)
            if t is not None
        ]
        if not answered:
            return Verdict(False, "target has not answered yet")
        quiet_s = self._clock() - max(answered)
        pending = stats.queue_records + stats.inflight_requests
        if pending and quiet_s > self._unreachable_after_s:
            return Verdict(False, f"target unreachable: no success for {quiet_s:.1f} s")
        return Verdict(True, "ok")
