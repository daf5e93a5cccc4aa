"""The contiguous low-water mark: seq runs resolve in any order; the mark only moves over a
gapless prefix (a partial-failure retry finishing late must never let the mark skip it)."""

from __future__ import annotations

__all__ = ["LowWaterMark"]


class LowWaterMark:
    """Every seq below `value` is resolved. `resolve(start, count)` marks one run; runs are
    disjoint. Costs O(1) per run, memory per run resolved ahead of the mark."""

    __slots__ = ("_ahead", "value")

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self._ahead: dict[int, int] = {}  # run start -> run end, for runs above the mark

    def resolve(self, start: int, count: int) -> bool:
        """Mark seqs [start, start + count) resolved; whether the mark moved."""
        if count <= 0:
            return False
        end = start + count
        if start != self.value:
            if end > self.value:
                self._ahead[max(start, self.value)] = end
            return False
        value = end
        ahead = self._ahead
        while value in ahead:
            value = ahead.pop(value)
        self.value = value
        return True

    @property
    def runs_ahead(self) -> int:
        return len(self._ahead)
