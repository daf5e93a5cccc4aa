"""The end-of-run report and the exit code, both derived from the producer's one ledger.

Rates are what Firehose accepted per second, not what was sent: a load test that counts requests
sent instead of records delivered tells the user nothing. Rates are per second of GENERATION (the
drain after it is reported separately, so a long drain cannot dilute them), and a rate below the
target is said plainly: missing a rate is a finding, not a failure, so the exit code stays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson

from ingest.cli import EXIT_FAILURE, EXIT_OK
from ingest.producer.stats import HistogramSnapshot, ProducerStats
from ingest.service.health import RunState

MIB = 1024 * 1024
#: The achieved rate may fall this far below the target before the target counts as missed
#: (pacing hands out whole chunks, so a run never lands exactly on the target).
TARGET_TOLERANCE = 0.05


@dataclass(frozen=True, kw_only=True)
class Summary:
    run_id: str
    stream: str = ""
    target_rate: float  # events/s asked; 0 = as fast as possible (no target)
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
    requests: int  # PutRecordBatch requests finished (any outcome)
    latency_p50_s: float | None  # per request, estimated from the histogram; None: no request
    latency_p99_s: float | None
    generation_s: float  # generation start to its stop
    total_s: float  # generation start to the end of the drain (start-up excluded)
    recovered: int = 0  # --durable: records found in the log at start and resent
    spooled: int = 0  # failed records written to the dead-letter spool
    bytes_sent: int = 0  # Firehose records' bytes of every attempt (packed/compressed as sent)
    bytes_billed: int = 0  # accepted Firehose records, each rounded up to 5 KB
    firehose_records: int = 0  # Firehose records accepted (fewer than events when packing)
    cpu_s: float = 0.0  # process CPU (user + system) over total_s: start-up excluded

    @property
    def events_per_record(self) -> float:
        """Events per Firehose record delivered (1 without packing)."""
        return self.delivered / self.firehose_records if self.firehose_records else 0.0

    @property
    def cpu_us_per_event(self) -> float:
        """Process CPU per event put, in µs, over generation and drain."""
        return self.cpu_s / self.put * 1e6 if self.put else 0.0

    @property
    def drain_s(self) -> float:
        """From the end of generation to the end of the drain."""
        return max(0.0, self.total_s - self.generation_s)

    @property
    def generated_per_s(self) -> float:
        return self.generated / self.generation_s if self.generation_s > 0 else 0.0

    @property
    def delivered_per_s(self) -> float:
        """Events delivered per second of generation (the drain's time is not counted)."""
        return self.delivered / self.generation_s if self.generation_s > 0 else 0.0

    @property
    def delivered_mib_per_s(self) -> float:
        """MiB (2^20 bytes) of records delivered per second of generation."""
        return self.bytes_delivered / MIB / self.generation_s if self.generation_s > 0 else 0.0

    @property
    def achieved_rate(self) -> float:
        """The lower of the generated and delivered rates: what the run really sustained."""
        return min(self.generated_per_s, self.delivered_per_s)

    @property
    def target_missed(self) -> bool:
        if self.target_rate <= 0 or self.generated == 0:
            return False
        return self.achieved_rate < self.target_rate * (1 - TARGET_TOLERANCE)

    @property
    def all_delivered(self) -> bool:
        return self.delivered == self.generated + self.recovered and not self.failed

    @property
    def exit_code(self) -> int:
        refused = self.stopped_by == "producer_refused"  # the run could not do what was asked
        return EXIT_OK if self.all_delivered and not (self.pending or refused) else EXIT_FAILURE

    def target_line(self) -> str | None:
        """One sentence when the target rate was missed, else None."""
        if not self.target_missed:
            return None
        share = self.achieved_rate / self.target_rate
        return (
            f"target missed: {self.achieved_rate:,.0f} events/s achieved, {share:.0%} of the "
            f"{self.target_rate:,.0f} events/s asked (the producer or the target could not "
            "keep up; see throttled and latency)"
        )

    def as_log(self) -> dict[str, object]:
        """Every field plus the rates, for the `run_finished` log line."""
        fields = asdict(self)
        fields["generation_s"] = round(self.generation_s, 3)
        fields["drain_s"] = round(self.drain_s, 3)
        fields["total_s"] = round(self.total_s, 3)
        fields["generated_per_s"] = round(self.generated_per_s, 1)
        fields["delivered_per_s"] = round(self.delivered_per_s, 1)
        fields["delivered_mib_per_s"] = round(self.delivered_mib_per_s, 3)
        fields["events_per_record"] = round(self.events_per_record, 2)
        fields["cpu_s"] = round(self.cpu_s, 3)
        fields["cpu_us_per_event"] = round(self.cpu_us_per_event, 3)
        for name in ("latency_p50_s", "latency_p99_s"):
            value = fields[name]
            fields[name] = None if value is None else round(float(value), 4)
        fields["target_missed"] = self.target_missed
        fields["exit_code"] = self.exit_code
        return fields

    def render_json(self) -> str:
        """The summary as one JSON line (stdout of a run whose logs are JSON)."""
        return orjson.dumps({"event": "run_summary", **self.as_log()}).decode()

    def render(self) -> str:
        """The human summary printed on stdout."""
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(self.failed_by_reason.items()))
        target = (
            f"{self.target_rate:,.0f} events/s" if self.target_rate > 0 else "as fast as possible"
        )
        lines = [
            f"ingest run {self.run_id} finished ({self.stopped_by}) in {self.total_s:.1f} s: "
            f"generation {self.generation_s:.1f} s, drain {self.drain_s:.1f} s",
            f"  target      {target}",
            f"  generated   {self.generated:>12,}  ({self.generated_per_s:,.0f} events/s "
            f"over {self.generation_s:.1f} s)",
            f"  delivered   {self.delivered:>12,}  ({self.delivered_per_s:,.0f} events/s, "
            f"{self.delivered_mib_per_s:,.2f} MiB/s, {self.bytes_delivered:,} bytes)",
            f"  latency     {_latency(self.latency_p50_s, self.latency_p99_s)}  "
            f"(per PutRecordBatch request, {self.requests:,} requests)",
            f"  failed      {self.failed:>12,}" + (f"  ({reasons})" if reasons else ""),
            f"  retried     {self.retried:>12,}",
            f"  throttled   {self.throttled:>12,}",
            f"  duplicates  {self.duplicates_possible:>12,}  (possible, after ambiguous errors)",
            f"  billed      {self.bytes_billed:>12,}  (bytes, 5 KB per record; "
            f"{self.bytes_sent:,} bytes sent, {self.events_per_record:,.1f} events per record)",
            f"  cpu         {self.cpu_s:>12,.2f}  (s of this process over generation and drain, "
            f"{self.cpu_us_per_event:,.2f} µs per event)",
        ]
        if self.spooled:
            lines.append(f"  spooled     {self.spooled:>12,}  (failed, kept for `ingest replay`)")
        if self.recovered:
            lines.append(f"  recovered   {self.recovered:>12,}  (resent from the durable log)")
        if self.pending:
            lines.append(f"  pending     {self.pending:>12,}  (unsettled: a producer bug)")
        missed = self.target_line()
        if missed:
            lines.append(f"  {missed}")
        verdict = "every event delivered" if self.exit_code == EXIT_OK else "NOT all delivered"
        lines.append(f"  result: {verdict} (exit {self.exit_code})")
        return "\n".join(lines)


def _latency(p50_s: float | None, p99_s: float | None) -> str:
    if p50_s is None or p99_s is None:
        return "n/a"
    return f"p50 {p50_s * 1000:,.0f} ms, p99 {p99_s * 1000:,.0f} ms"


def quantile(snapshot: HistogramSnapshot, q: float) -> float | None:
    """The `q` quantile (0 < q <= 1) in seconds, interpolated linearly inside its bucket as
    Prometheus' histogram_quantile does; None without observations. Past the last finite
    bound the answer is that bound (the histogram knows no more)."""
    if snapshot.count == 0:
        return None
    rank = q * snapshot.count
    lower, below = 0.0, 0
    for bound, cumulative in zip(snapshot.bounds, snapshot.counts, strict=False):
        if cumulative >= rank:
            inside = cumulative - below
            share = (rank - below) / inside if inside else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return snapshot.bounds[-1] if snapshot.bounds else None


def summarize(
    stats: ProducerStats,
    state: RunState,
    *,
    stopped_by: str,
    generation_s: float,
    total_s: float,
    run_id: str = "",
    stream: str = "",
    target_rate: float = 0.0,
    spooled: int = 0,
    cpu_s: float = 0.0,
) -> Summary:
    latency = stats.request_duration
    return Summary(
        run_id=run_id,
        stream=stream,
        target_rate=target_rate,
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
        requests=sum(stats.requests.values()),
        latency_p50_s=quantile(latency, 0.5),
        latency_p99_s=quantile(latency, 0.99),
        generation_s=generation_s,
        total_s=total_s,
        recovered=stats.records_recovered,
        spooled=spooled,
        bytes_sent=stats.bytes_sent,
        bytes_billed=stats.bytes_billed,
        firehose_records=stats.firehose_records_delivered,
        cpu_s=cpu_s,
    )
