"""Seeded fault decisions for data calls (PutRecord, PutRecordBatch).

Per call, decisions are drawn in a fixed order (reset, call error, accepted-but-error, then one
draw per record), and only for faults that are switched on, so the same seed and the same
sequence of calls give the same faults.
"""

from __future__ import annotations

import random
from collections.abc import Container
from dataclasses import dataclass

from ingest.emulator.options import FaultOptions
from ingest.emulator.protocol import (
    INTERNAL_FAILURE_MESSAGE,
    SLOW_DOWN,
    ApiError,
    internal_failure,
    slow_down,
)

RECORD_FAILURES = (
    ("ServiceUnavailableException", SLOW_DOWN),
    ("InternalFailure", INTERNAL_FAILURE_MESSAGE),
)
CALL_ERRORS = (slow_down, internal_failure)


@dataclass(frozen=True, slots=True)
class CallFaults:
    """What happens to one call: at most one of reset / error / accepted_error is set."""

    reset: bool = False
    error: ApiError | None = None
    accepted_error: ApiError | None = None
    delay_s: float = 0.0


NO_FAULTS = CallFaults()


class FaultInjector:
    def __init__(self, options: FaultOptions) -> None:
        self.options = options
        self._rng = random.Random(options.seed)

    def for_call(self) -> CallFaults:
        options = self.options
        if not options.enabled:
            return NO_FAULTS
        delay = options.latency_s
        if options.latency_jitter_s:
            delay += self._rng.uniform(0.0, options.latency_jitter_s)
        if self._hit(options.reset_rate):
            return CallFaults(reset=True, delay_s=delay)
        if self._hit(options.call_error_rate):
            return CallFaults(error=self._rng.choice(CALL_ERRORS)(), delay_s=delay)
        if self._hit(options.accepted_error_rate):
            return CallFaults(accepted_error=internal_failure(), delay_s=delay)
        return CallFaults(delay_s=delay)

    def record_failures(self, count: int, skip: Container[int]) -> dict[int, tuple[str, str]]:
        """Entry index -> (ErrorCode, ErrorMessage) for injected record failures.

        Indices in ``skip`` (already failed) are never chosen."""
        rate = self.options.record_failure_rate
        if not rate:
            return {}
        rng = self._rng
        return {
            i: rng.choice(RECORD_FAILURES)
            for i in range(count)
            if rng.random() < rate and i not in skip
        }

    def _hit(self, rate: float) -> bool:
        return rate > 0.0 and self._rng.random() < rate
