"""Counters of what the emulator did; read them, never write them from outside."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class EmulatorStats:
    """Cumulative since start. Records are counted once per attempt that reached a decision."""

    #: operation name -> calls received (including rejected ones)
    calls: Counter[str] = field(default_factory=Counter)
    #: records stored for delivery (includes records_accepted_with_error)
    records_accepted: int = 0
    bytes_accepted: int = 0
    #: records answered with an injected per-record failure (not stored)
    records_failed: int = 0
    #: records answered "Slow down." per record because of a records/s or bytes/s quota
    records_throttled: int = 0
    #: calls answered 503 because of a quota
    calls_throttled: int = 0
    #: calls answered an injected 500/503 (nothing stored)
    calls_failed: int = 0
    #: calls whose connection was reset on purpose (nothing stored)
    connections_reset: int = 0
    #: calls whose records were stored but were answered with a 500
    calls_accepted_with_error: int = 0
    records_accepted_with_error: int = 0
    #: calls answered with a 4xx (validation, unknown stream, auth, ...)
    client_errors: int = 0
    objects_written: int = 0
    bytes_written: int = 0

    @property
    def throttled(self) -> int:
        """Records answered "Slow down." plus calls answered 503 because of a quota."""
        return self.records_throttled + self.calls_throttled

    def as_dict(self) -> dict[str, Any]:
        snapshot = asdict(self)
        snapshot["calls"] = dict(self.calls)
        snapshot["throttled"] = self.throttled
        return snapshot
