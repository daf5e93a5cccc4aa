"""A mergeable latency histogram with log-spaced buckets (2 % wide), stored sparsely.

Percentiles of a load test must add up across a fleet: exact percentiles of several processes
cannot be combined, bucket counts can. Each bucket is 2 % wider than the one below it, so a
percentile read from it is within 2 % of the true value; the maximum is kept exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

GROWTH = 1.02
FLOOR_S = 1e-5  # 10 µs: everything below lands in bucket 0
_LOG_GROWTH = math.log(GROWTH)


class LogHistogram:
    """Durations in seconds; `add` is O(1), `quantile` walks the few non-empty buckets."""

    __slots__ = ("buckets", "count", "max_s", "sum_s")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum_s = 0.0
        self.max_s = 0.0

    def add(self, seconds: float, weight: int = 1) -> None:
        if weight <= 0:
            return
        index = 0 if seconds <= FLOOR_S else int(math.log(seconds / FLOOR_S) / _LOG_GROWTH) + 1
        self.buckets[index] = self.buckets.get(index, 0) + weight
        self.count += weight
        self.sum_s += seconds * weight
        if seconds > self.max_s:
            self.max_s = seconds

    def merge(self, other: LogHistogram) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        self.sum_s += other.sum_s
        self.max_s = max(self.max_s, other.max_s)

    def quantile(self, q: float) -> float | None:
        """The `q` quantile (0..1) in seconds (the bucket's upper edge, never above the
        maximum), or None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return min(FLOOR_S * GROWTH**index, self.max_s)
        return self.max_s

    def summary_ms(self, quantiles: Iterable[float] = (0.5, 0.9, 0.99)) -> dict[str, float | None]:
        """{"p50_ms": ..., ..., "max_ms": ...}, rounded to 0.01 ms (None when empty)."""
        out: dict[str, float | None] = {}
        for q in quantiles:
            value = self.quantile(q)
            out[f"p{round(q * 100):d}_ms"] = None if value is None else round(value * 1000, 2)
        out["max_ms"] = round(self.max_s * 1000, 2) if self.count else None
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "growth": GROWTH,
            "floor_s": FLOOR_S,
            "count": self.count,
            "sum_s": self.sum_s,
            "max_s": self.max_s,
            "buckets": {str(i): n for i, n in sorted(self.buckets.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LogHistogram:
        """Inverse of `to_json`; ValueError when the shape is wrong."""
        if data.get("growth") != GROWTH or data.get("floor_s") != FLOOR_S:
            raise ValueError("histogram with other bucket bounds")
        hist = cls()
        buckets = data.get("buckets")
        if not isinstance(buckets, Mapping):
            raise ValueError("histogram without buckets")
        hist.buckets = {int(i): int(n) for i, n in buckets.items()}
        hist.count = int(data["count"])  # type: ignore[call-overload]
        hist.sum_s = float(data["sum_s"])  # type: ignore[arg-type]
        hist.max_s = float(data["max_s"])  # type: ignore[arg-type]
        return hist
