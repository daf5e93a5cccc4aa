"""The end-of-run report and the exit code, both derived from the producer's one ledger.

Rates are what Firehose accepted per second, not what was sent: a load test that counts requests
sent instead of records delivered tells the user nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson

from ingest.cli import EXIT_FAILURE, EXIT_OK
from ingest.producer.stats import ProducerStats
from ingest.service.health import RunState


@dataclass(frozen=True, kw_only=True)
class Summary:
    stopped_by: str
    generated: int
    put: int
    delivered: int
    failed: int
    failed_by_reason: dict[str, int]
    pending: int
    retried: int
    throttled: int
    duplicates_possible: int
    bytes_delivered: int
    generation_s: float  # generation start to its stop
    total_s: float  # generation start to the end of the drain (start-up excluded)

    @property
    def generated_per_s(self) -> float:
        return self.generated / self.generation_s if self.generation_s > 0 else 0.0

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.total_s if self.total_s > 0 else 0.0

    @property
    def all_delivered(self) -> bool:
        return self.delivered == self.generated and not self.failed

    @property
    def exit_code(self) -> int:
        refused = self.stopped_by == "producer_refused"  # the run could not do what was asked
        return EXIT_OK if self.all_delivered and not (self.pending or refused) else EXIT_FAILURE

    def as_log(self) -> dict[str, object]:
        """Every field plus the rates, for the `run_finished` log line."""
        fields = asdict(self)
        fields["generation_s"] = round(self.generation_s, 3)
        fields["total_s"] = round(self.total_s, 3)
        fields["generated_per_s"] = round(self.generated_per_s, 1)
        fields["delivered_per_s"] = round(self.delivered_per_s, 1)
        fields["exit_code"] = self.exit_code
        return fields

    def render_json(self) -> str:
        """The summary as one JSON line (stdout of a run whose logs are JSON)."""
        return orjson.dumps({"event": "run_summary", **self.as_log()}).decode()

    def render(self) -> str:
        """The human summary printed on stdout."""
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(self.failed_by_reason.items()))
        lines = [
            f"ingest run finished ({self.stopped_by}) in {self.total_s:.1f} s",
            f"  generated   {self.generated:>12,}  ({self.generated_per_s:,.0f} events/s "
            f"over {self.generation_s:.1f} s)",
            f"  delivered   {self.delivered:>12,}  ({self.delivered_per_s:,.0f} events/s, "
            f"{self.bytes_delivered:,} bytes)",
            f"  failed      {self.failed:>12,}" + (f"  ({reasons})" if reasons else ""),
            f"  retried     {self.retried:>12,}",
            f"  throttled   {self.throttled:>12,}",
            f"  duplicates  {self.duplicates_possible:>12,}  (possible, after ambiguous errors)",
        ]
        if self.pending:
            lines.append(f"  pending     {self.pending:>12,}  (unsettled: a producer bug)")
        verdict = "every event delivered" if self.exit_code == EXIT_OK else "NOT all delivered"
        lines.append(f"  result: {verdict} (exit {self.exit_code})")
        return "\n".join(lines)


def summarize(
    stats: ProducerStats, state: RunState, *, stopped_by: str, generation_s: float, total_s: float
) -> Summary:
    return Summary(
        stopped_by=stopped_by,
        generated=state.events_generated,
        put=stats.records_put,
        delivered=stats.records_delivered,
        failed=stats.records_failed_total,
        failed_by_reason=dict(stats.records_failed),
        pending=stats.records_pending,
        retried=stats.records_retried,
        throttled=stats.throttled,
        duplicates_possible=stats.duplicates_possible,
        bytes_delivered=stats.bytes_delivered,
        generation_s=generation_s,
        total_s=total_s,
    )
