"""Per run id bookkeeping: one saturating count byte per seq, and a bounded latency sketch.

Memory is bounded by the range of seqs (one byte each, grown on demand up to the expected count
or `MAX_TRACKED_SEQS`), never by the number of objects, lines or duplicates: a copy of an event
only bumps its byte, and the number of extra copies is kept as one exact counter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Without an expected count, seqs from 0 up to this bound are tracked (one byte each, 256 MiB
#: at most); a higher seq is counted as beyond the tracked range, not reconciled.
MAX_TRACKED_SEQS = 1 << 28
#: A count byte saturates here: a seq seen this many times or more shows this multiplicity.
SATURATED = 255
_INCREMENT = bytes(min(value + 1, SATURATED) for value in range(256))
_ZERO_RUNS = re.compile(rb"\x00+")
_BUCKETS_PER_E = 50  # latency buckets per factor e: about 2 % relative resolution


@dataclass(frozen=True, kw_only=True)
class LatencySummary:
    """End-to-end latency percentiles in seconds (None when no event had a readable ts)."""

    samples: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


class LatencySketch:
    """A log-bucketed histogram of latencies in milliseconds: about 2 % resolution, about 1,000
    buckets at most whatever the number of samples, and the exact maximum."""

    __slots__ = ("_buckets", "_max_ms", "_samples")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._samples = 0
        self._max_ms = 0

    def add(self, latency_ms: int, count: int = 1) -> None:
        """Record `count` events with this latency (negative values count as 0)."""
        latency_ms = max(latency_ms, 0)
        bucket = int(math.log1p(latency_ms) * _BUCKETS_PER_E)
        self._buckets[bucket] = self._buckets.get(bucket, 0) + count
        self._samples += count
        self._max_ms = max(self._max_ms, latency_ms)

    def quantile_ms(self, q: float) -> float | None:
        """The `q` quantile (0 < q <= 1) in ms, None without samples."""
        if not self._samples:
            return None
        rank = max(1, math.ceil(q * self._samples))
        seen = 0
        for bucket in sorted(self._buckets):
            seen += self._buckets[bucket]
            if seen >= rank:
                middle = math.expm1((bucket + 0.5) / _BUCKETS_PER_E)
                return min(middle, float(self._max_ms))
        return float(self._max_ms)  # pragma: no cover - the ranks always fall in a bucket

    def summary(self) -> LatencySummary:
        def seconds(ms: float | None) -> float | None:
            return None if ms is None else round(ms / 1000, 3)

        return LatencySummary(
            samples=self._samples,
            p50_s=seconds(self.quantile_ms(0.5)),
            p99_s=seconds(self.quantile_ms(0.99)),
            max_s=seconds(float(self._max_ms) if self._samples else None),
        )


class RunTally:
    """What arrived for one producer run id: seq counts, duplicates, damage and latency.

    `expected` is the number of seqs generated (0..expected-1), or None when unknown: then the
    seqs 0..highest seen are expected, so a lost tail cannot be noticed.
    """

    __slots__ = (
        "_counts",
        "_limit",
        "beyond",
        "duplicates",
        "events",
        "expected",
        "latency",
        "malformed",
        "no_newline",
        "run_id",
        "unique",
    )

    def __init__(self, run_id: str, expected: int | None) -> None:
        self.run_id = run_id
        self.expected = expected
        self._limit = MAX_TRACKED_SEQS if expected is None else expected
        self._counts = bytearray()
        self.events = 0  # well-formed lines of this run id, copies included
        self.unique = 0  # distinct seqs within the tracked range
        self.duplicates = 0  # extra copies: events of a seq already seen
        self.beyond = 0  # events with a seq at or above the limit (not deduplicated)
        self.malformed = 0
        self.no_newline = 0
        self.latency = LatencySketch()

    def add_range(self, first: int, count: int) -> None:
        """Count one event for each seq in first..first+count-1 (C speed for the whole range)."""
        self.events += count
        end = first + count
        if end > self._limit:
            self.beyond += end - max(first, self._limit)
            end = self._limit
            if first >= end:
                return
        counts = self._counts
        if end > len(counts):  # grow geometrically, never past the limit
            counts.extend(bytes(min(max(end, 2 * len(counts)), self._limit) - len(counts)))
        before = counts[first:end]
        fresh = before.count(0)
        self.unique += fresh
        self.duplicates += (end - first) - fresh
        counts[first:end] = before.translate(_INCREMENT)

    @property
    def highest(self) -> int:
        """One past the highest tracked seq seen (0 when none)."""
        stripped = self._counts.rstrip(b"\x00")
        return len(stripped)

    def missing_ranges(self, limit: int) -> tuple[int, list[tuple[int, int]]]:
        """(number of missing ranges, the first `limit` of them as inclusive (first, last))."""
        total_end = self.expected if self.expected is not None else self.highest
        counts = self._counts
        seen_end = min(len(counts), total_end)
        ranges: list[tuple[int, int]] = []
        number = 0
        last_end = -1  # one past the last zero run found
        for match in _ZERO_RUNS.finditer(counts, 0, seen_end):
            number += 1
            last_end = match.end()
            if len(ranges) < limit:
                ranges.append((match.start(), last_end - 1))
        if seen_end < total_end:  # the never-grown tail is missing too
            if last_end == seen_end:  # ... and continues the last zero run
                if number == len(ranges):
                    ranges[-1] = (ranges[-1][0], total_end - 1)
            else:
                number += 1
                if len(ranges) < limit:
                    ranges.append((seen_end, total_end - 1))
        return number, ranges

    def missing(self) -> int:
        total_end = self.expected if self.expected is not None else self.highest
        return max(total_end - self.unique, 0)

    def duplicated_seqs(self) -> int:
        counts = self._counts
        return len(counts) - counts.count(0) - counts.count(1)

    def worst_multiplicity(self) -> int:
        """Most copies of one seq (SATURATED means that many or more); 0 when none arrived."""
        return max(self._counts, default=0)
