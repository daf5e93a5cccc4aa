"""Per-stream throughput quotas as token buckets (records/s, requests/s, bytes/s).

How a breach is answered (as Firehose does):
- requests/s exhausted: the whole call gets 503 ``ServiceUnavailableException`` "Slow down.";
- records/s or bytes/s: PutRecordBatch accepts, in order, the records that still fit and
  answers the rest with per-record ``ServiceUnavailableException`` "Slow down." in a 200;
  if not a single record fits (and for PutRecord) the whole call gets the 503.
Each bucket holds one second of its rate (the burst) and starts full.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ingest.emulator.options import QuotaOptions

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second, at most ``rate`` banked."""

    __slots__ = ("_clock", "_last", "_tokens", "rate")

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._last = clock()

    def available(self) -> float:
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        return self._tokens

    def take(self, amount: float) -> bool:
        """Take ``amount`` tokens if all are available; otherwise take none."""
        if self.available() < amount:
            return False
        self._tokens -= amount
        return True


def _bucket(rate: int | None, clock: Clock) -> TokenBucket | None:
    return None if rate is None else TokenBucket(rate, clock)


class StreamQuota:
    """The three buckets of one stream; a None bucket is unlimited."""

    def __init__(self, options: QuotaOptions, clock: Clock = time.monotonic) -> None:
        self._requests = _bucket(options.requests_per_s, clock)
        self._records = _bucket(options.records_per_s, clock)
        self._bytes = _bucket(options.bytes_per_s, clock)

    def admit_call(self) -> bool:
        """Count one request; False when the requests/s quota is exhausted."""
        return self._requests is None or self._requests.take(1)

    def admit_records(self, datas: Sequence[bytes]) -> list[int]:
        """Indices of the records that exceed the records/s or bytes/s quota (taken in order)."""
        if self._records is None and self._bytes is None:
            return []  # the common, unlimited case: not even the sizes are summed
        total = sum(map(len, datas))
        if self._fits(len(datas), total):
            self._take(len(datas), total)
            return []
        throttled: list[int] = []
        for index, data in enumerate(datas):
            if self._fits(1, len(data)):
                self._take(1, len(data))
            else:
                throttled.append(index)
        return throttled

    def _fits(self, records: int, size: int) -> bool:
        return (self._records is None or self._records.available() >= records) and (
            self._bytes is None or self._bytes.available() >= size
        )

    def _take(self, records: int, size: int) -> None:
        if self._records is not None:
            self._records.take(records)
        if self._bytes is not None:
            self._bytes.take(size)
