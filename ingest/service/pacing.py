"""Pacing of event generation: a token bucket that hands out events in chunks.

Sleeping once per event caps the rate at what the event loop's timer can do (a few thousand
wake-ups a second) and burns CPU; instead the generator asks how many events are due, makes them
in one batch, and sleeps until the next chunk is worth waking up for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_SLEEP_S = 0.01  # at most ~100 wake-ups a second, whatever the rate
MAX_SLEEP_S = 0.1  # so a stop request or a deadline is noticed quickly
MAX_CHUNK = 500  # events made between two yields to the event loop


class Pacer:
    """Tokens accrue at `rate` per second, up to one second's worth (the burst after a stall).

    `rate` 0 means unpaced: every call grants a full chunk.
    """

    def __init__(
        self,
        rate: float,
        *,
        max_chunk: int = MAX_CHUNK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate={rate!r}: expected a number of events/s >= 0")
        self._rate = rate
        self._max_chunk = max_chunk
        self._clock = clock
        self._burst = max(1.0, rate)
        self._tokens = 0.0
        self._last = clock()

    def take(self, limit: int | None = None) -> int:
        """How many events may be made now (at most `limit` and one chunk); consumes them."""
        cap = self._max_chunk if limit is None else min(limit, self._max_chunk)
        if self._rate == 0:
            return max(cap, 0)
        self._refill()
        granted = max(0, min(cap, int(self._tokens)))
        self._tokens -= granted
        return granted

    def wait_s(self) -> float:
        """How long to sleep before the next chunk is due (0 when unpaced)."""
        if self._rate == 0:
            return 0.0
        self._refill()
        missing = max(0.0, 1.0 - self._tokens) / self._rate
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, missing))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
