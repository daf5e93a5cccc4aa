"""The service's failure handler: counts what the producer gave up on, one log line per call.

The producer calls it with every record whose fate is final and not delivered (retries
exhausted, non-retriable errors, the drain deadline). One warning per call, never per record;
the records themselves are not logged (they are user data). A dead-letter spool comes later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)


class Failed(Protocol):
    """The fields of `FailedRecord` read here."""

    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...


class FailureTally:
    """Callable `on_failure` handler; `by_reason` totals what it was given."""

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()

    def __call__(self, records: Sequence[Failed]) -> None:
        if not records:
            return
        reasons = Counter(record.reason for record in records)
        self.by_reason.update(reasons)
        log.warning(
            "records_failed",
            count=len(records),
            reasons=dict(reasons),
            example=records[0].message,
        )

    @property
    def total(self) -> int:
        return sum(self.by_reason.values())
