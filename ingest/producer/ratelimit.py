"""Client-side pacing: token buckets on records/s and bytes/s, taken per batch.

Keeps the producer under a stream's throughput quota instead of learning it from throttling.
A batch larger than the burst is allowed by going into debt, which the next batches repay.
"""

from __future__ import annotations

import asyncio
import time

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """`rate_per_s` tokens per second, holding at most one second's worth (the burst)."""

    __slots__ = ("_rate", "_stamp", "_tokens")

    def __init__(self, rate_per_s: float) -> None:
        self._rate = rate_per_s
        self._tokens = rate_per_s
        self._stamp = time.monotonic()

    def take(self, amount: float, now: float) -> float:
        """Take `amount` tokens; returns the seconds to wait before the debt is repaid."""
        self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


class RateLimiter:
    """Paces batches under optional records/s and bytes/s limits (None = unlimited)."""

    def __init__(self, records_per_s: float | None, bytes_per_s: float | None) -> None:
        self._records = TokenBucket(records_per_s) if records_per_s else None
        self._bytes = TokenBucket(bytes_per_s) if bytes_per_s else None

    async def acquire(self, records: int, nbytes: int) -> None:
        """Wait (seconds, via asyncio.sleep) until a batch of this size may be sent.
        Cancellation leaves the tokens taken (the debt errs on the slow side)."""
        now = time.monotonic()
        delay = 0.0
        if self._records is not None:
            delay = max(delay, self._records.take(records, now))
        if self._bytes is not None:
            delay = max(delay, self._bytes.take(nbytes, now))
        if delay > 0:
            await asyncio.sleep(delay)
