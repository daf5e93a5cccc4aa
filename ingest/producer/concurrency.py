"""Adaptive concurrency: how many PutRecordBatch requests may be in flight right now.

One small object the sender asks "may I start another request?" (`acquire`) and tells every
outcome (`observe`). The limit moves by AIMD within ``1..max_inflight``:

- additive increase: +1 per `limit` requests answered fast and without throttling or server
  error (about +1 per round trip while the window is used), up to `max_inflight`;
- multiplicative decrease: x0.5 on throttling (a 503/429 call or "Slow down." entries), on a
  5xx and on a timeout, at most once per window: the requests that were already in flight when
  the limit dropped carry old news, so their failures do not shrink it again;
- hold: an answer much slower than the fastest recent ones (queueing somewhere) neither grows
  nor shrinks the limit.

It starts at `max_inflight` (an unloaded target costs nothing to probe) and the producer's
`stats().inflight_limit` and the service's ``ingest_inflight_limit`` show its current value.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Final

__all__ = ["ConcurrencyLimit", "Signal"]

DECREASE_FACTOR: Final = 0.5
#: An answer slower than this multiple of the recent fastest one (plus a small absolute slack
#: for scheduler noise) is "slow": the limit holds instead of growing.
SLOW_FACTOR: Final = 2.0
SLOW_SLACK_S: Final = 0.005
#: Fastest answer of the last this-many answers is the baseline (old minima expire, so a
#: target that became slower for good sets a new baseline).
BASELINE_WINDOW: Final = 100


class Signal(Enum):
    """What one answer says about the target's capacity."""

    OK = "ok"  # answered in full (or with per-record failures that are not congestion)
    CONGESTED = "congested"  # throttled, 5xx or timed out: back off
    NEUTRAL = "neutral"  # says nothing about capacity (a 4xx, a refused connection)


class ConcurrencyLimit:
    """AIMD limit on requests in flight, between 1 and `max_limit` (see the module doc)."""

    __slots__ = (
        "_baseline_s",
        "_epoch",
        "_limit",
        "_max",
        "_seen",
        "_waiter",
        "_window_min_s",
        "inflight",
    )

    def __init__(self, max_limit: int) -> None:
        self._max = max_limit
        self._limit = float(max_limit)
        self.inflight = 0
        self._epoch = 0  # bumped on every decrease
        self._waiter: asyncio.Future[None] | None = None
        self._baseline_s = float("inf")
        self._window_min_s = float("inf")
        self._seen = 0

    @property
    def limit(self) -> int:
        """Requests that may be in flight now."""
        return int(self._limit)

    def may_start(self) -> bool:
        """Whether one more request may start now."""
        return self.inflight < int(self._limit)

    async def acquire(self) -> None:
        """Wait until one more request may start, and count it as started."""
        while self.inflight >= int(self._limit):
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)
        self.inflight += 1

    def release(self) -> None:
        """A request (with all its resends) is over."""
        self.inflight -= 1
        self._wake()

    def epoch(self) -> int:
        """Mark taken when an attempt starts; give it back to `observe`."""
        return self._epoch

    def observe(self, signal: Signal, latency_s: float, epoch: int) -> None:
        """Tell the limit what an attempt started at `epoch` came back with."""
        if signal is Signal.CONGESTED:
            if epoch == self._epoch:  # the first bad news since the last decrease
                self._limit = max(1.0, self._limit * DECREASE_FACTOR)
                self._epoch += 1
            return
        if signal is not Signal.OK:
            return
        self._track_latency(latency_s)
        if latency_s > self._baseline_s * SLOW_FACTOR + SLOW_SLACK_S:
            return
        if self._limit < self._max:
            self._limit = min(float(self._max), self._limit + 1.0 / self._limit)
            self._wake()

    def _track_latency(self, latency_s: float) -> None:
        self._window_min_s = min(self._window_min_s, latency_s)
        self._baseline_s = min(self._baseline_s, latency_s)
        self._seen += 1
        if self._seen == BASELINE_WINDOW:
            self._baseline_s = self._window_min_s
            self._window_min_s = float("inf")
            self._seen = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self.inflight < int(self._limit):
            waiter.set_result(None)
