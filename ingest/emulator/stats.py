"""Counters of what the emulator did; read them, never write them from outside.

Records and requests are counted apart. Throttling as a client sees it is `throttled_records`
(records answered ServiceUnavailableException "Slow down." inside a 200) and
`throttled_requests` (whole calls answered 503 ServiceUnavailableException): both count the
quotas' doing AND injected ServiceUnavailableException faults, because a client cannot tell
them apart and backs off the same way. `records_throttled`/`calls_throttled` are the quotas'
share alone; `injected_failures` counts every injected fault by kind (INJECTED_KINDS).
`throttled` (records plus calls, quotas only) is deprecated: it adds two different units.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

#: Kinds of injected fault in `injected_failures` (all present, 0 until one happens).
INJECTED_KINDS: Final = (
    "record_slow_down",  # a record answered ServiceUnavailableException in a 200
    "record_internal_failure",  # a record answered InternalFailure in a 200
    "call_slow_down",  # a whole call answered 503 ServiceUnavailableException
    "call_internal_failure",  # a whole call answered 500 InternalFailure
    "connection_reset",  # a call whose connection was reset (nothing stored)
    "accepted_with_error",  # a call whose records were stored but answered 500
)
_KIND_BY_CODE: Final = {
    "ServiceUnavailableException": "slow_down",
    "InternalFailure": "internal_failure",
}


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
    #: requests whose client disconnected before sending its whole body (nothing stored)
    client_disconnects: int = 0
    objects_written: int = 0
    bytes_written: int = 0
    #: object writes that failed (disk full, S3 unreachable); their records stayed buffered
    write_failures: int = 0
    #: calls answered 503 because the destination failed and the buffer was at its bound
    calls_destination_unavailable: int = 0
    #: injected per-record and per-call errors, by "record_<kind>"/"call_<kind>" (see above)
    injected: Counter[str] = field(default_factory=Counter)

    def count_injected(self, scope: str, codes: Iterable[str]) -> None:
        """Count injected errors of `scope` ("record" or "call") by their AWS error code."""
        for code in codes:
            self.injected[f"{scope}_{_KIND_BY_CODE.get(code, 'internal_failure')}"] += 1

    @property
    def throttled_records(self) -> int:
        """Records answered "Slow down." in a 200: by a quota or injected."""
        return self.records_throttled + self.injected["record_slow_down"]

    @property
    def throttled_requests(self) -> int:
        """Calls answered 503 "Slow down.": by a quota or injected."""
        return self.calls_throttled + self.injected["call_slow_down"]

    def injected_failures(self) -> dict[str, int]:
        """Every injected fault, by kind (INJECTED_KINDS)."""
        counts = dict.fromkeys(INJECTED_KINDS, 0)
        counts.update(self.injected)
        counts["connection_reset"] = self.connections_reset
        counts["accepted_with_error"] = self.calls_accepted_with_error
        return counts

    @property
    def throttled(self) -> int:
        """Deprecated (mixes records and calls): use throttled_records and throttled_requests."""
        return self.records_throttled + self.calls_throttled

    def as_dict(self) -> dict[str, Any]:
        snapshot = asdict(self)
        snapshot["calls"] = dict(self.calls)
        del snapshot["injected"]
        snapshot["throttled_records"] = self.throttled_records
        snapshot["throttled_requests"] = self.throttled_requests
        snapshot["injected_failures"] = self.injected_failures()
        snapshot["throttled"] = self.throttled  # deprecated, kept one release
        return snapshot
