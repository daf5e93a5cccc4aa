"""`--find-max`: the highest rate a stream sustains without throttling.

1. **Raise.** Hold `--rate`, then twice that, and so on, each for `--hold` seconds, until a step
   is throttled (per-record "Slow down." or a throttled call), its PutRecordBatch p99 passes
   `--max-p99`, or the client cannot generate its target (then the client is the limit).
2. **Measure the ceiling.** A quota is a token bucket holding one second of burst, so the first
   steps above the quota can pass unthrottled for a while: holding a rate is not proof. Once a
   step is throttled the bucket is empty, and holding that rate `--hold` seconds more measures
   what the stream accepts per second at saturation (records, requests and bytes): that is the
   ceiling, whichever quota binds.
3. **Back off and confirm.** After the backlog drained, hold 97 % of the ceiling; if that is
   still throttled (or too slow), back off 3 % at a time. The highest rate held without
   throttling is the result.

For latency or client limits (nothing throttled) there is no ceiling to measure: the search
bisects between the last good and the first bad step instead.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import structlog

from ingest.loadtest.generator import PacedGenerator
from ingest.loadtest.histogram import LogHistogram
from ingest.loadtest.profile import Profile
from ingest.loadtest.recorder import Recorder
from ingest.loadtest.report import MIB, quota_json
from ingest.producer import RequestObservation

log = structlog.get_logger(__name__)

BACK_OFF = 0.97  # the confirmation step holds this share of the measured ceiling
PRECISION = 0.04  # bisection ends when good and bad are this close (relative)
MAX_STEPS = 40
COOL_DOWN_LIMIT_S = 30.0  # longest wait for the backlog of a throttled step to drain
SHORT = 0.98  # a step generating less than this share of its target: the client is the limit


@dataclass(frozen=True, kw_only=True)
class Step:
    phase: str  # raise | ceiling | confirm | bisect
    rate: float
    hold_s: float
    achieved_rate: float
    records_per_s: float  # delivered
    requests_per_s: float  # answered without throttling
    bytes_per_s: float
    throttled_records: int
    throttled_requests: int
    p99_s: float | None
    verdict: str  # ok | throttled | latency | client

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "rate": round(self.rate, 1),
            "hold_s": round(self.hold_s, 3),
            "achieved_rate": round(self.achieved_rate, 1),
            "records_per_s": round(self.records_per_s, 1),
            "requests_per_s": round(self.requests_per_s, 2),
            "bytes_per_s": round(self.bytes_per_s, 1),
            "mib_per_s": round(self.bytes_per_s / MIB, 4),
            "throttled_records": self.throttled_records,
            "throttled_requests": self.throttled_requests,
            "p99_ms": None if self.p99_s is None else round(self.p99_s * 1000, 2),
            "verdict": self.verdict,
        }


class FindMax:
    def __init__(
        self,
        generator: PacedGenerator,
        recorder: Recorder,
        stop: asyncio.Event,
        *,
        start_rate: float,
        hold_s: float,
        max_p99_s: float,
        region: str,
        time_limit_s: float | None = None,
    ) -> None:
        self._gen = generator
        self._rec = recorder
        self._stop = stop
        self._start_rate = start_rate
        self._hold_s = hold_s
        self._max_p99_s = max_p99_s
        self._region = region
        self._deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        self.steps: list[Step] = []
        self.best: Step | None = None
        self.limited_by = "none"
        self.ceiling: Step | None = None
        self.stopped_by = "find_max"

    async def run(self) -> str:
        """Search; returns why it ended ("find_max", "signal", "duration", "producer_refused")."""
        rate = self._start_rate
        bad: Step | None = None
        while bad is None:
            self._rec.sent = []  # requests of this step, for the ceiling if it is throttled
            step = await self._step("raise", rate)
            if step is None:
                self._rec.sent = None
                return self.stopped_by
            if step.ok:
                self.best = step
                rate *= 2
            else:
                bad = step
        self.limited_by = "throttling" if bad.verdict == "throttled" else bad.verdict
        if bad.verdict == "throttled":
            await self._search_below_ceiling(bad)
        else:
            self._rec.sent = None
            await self._bisect(bad)
        return self.stopped_by

    async def _search_below_ceiling(self, bad: Step) -> None:
        ceiling = await self._step("ceiling", bad.rate)
        ended = time.monotonic()
        if ceiling is None:
            self._rec.sent = None
            return
        await self._cool_down()  # the answers to requests sent in the window come in
        sent, self._rec.sent = self._rec.sent or [], None
        measured = _accepted_per_s(sent, ended)
        if measured is not None:
            records, requests, nbytes = measured
            ceiling = replace(
                ceiling, records_per_s=records, requests_per_s=requests, bytes_per_s=nbytes
            )
            self.steps[-1] = ceiling
        self.ceiling = ceiling
        # Saturated: what was accepted per second is the most the stream takes, in events/s.
        rate = ceiling.records_per_s * BACK_OFF if ceiling.throttled_records else bad.rate
        # A raise step above that passed on the bucket's burst alone: it proves nothing.
        if self.best is not None and self.best.rate > rate:
            self.best = None
        floor = self.best.rate if self.best is not None else 0.0
        while len(self.steps) < MAX_STEPS:
            if rate <= floor:
                return  # a lower raise step is already the highest proven rate
            step = await self._step("confirm", rate)
            if step is None:
                return
            if step.ok:
                if self.best is None or step.rate > self.best.rate:
                    self.best = step
                return
            rate *= BACK_OFF
            await self._cool_down()

    async def _bisect(self, bad: Step) -> None:
        good = self.best
        low = good.rate if good is not None else 0.0
        high = bad.rate
        while len(self.steps) < MAX_STEPS and (low == 0 or (high - low) / low > PRECISION):
            await self._cool_down()
            rate = (low + high) / 2 if low else high / 2
            step = await self._step("bisect", rate)
            if step is None:
                return
            if step.ok:
                self.best, low = step, rate
            else:
                high = rate
                if rate < self._start_rate / 64:
                    return

    async def _step(self, phase: str, rate: float) -> Step | None:
        """Hold `rate` for `--hold` s; None when the search must end (signal, time, refusal)."""
        if self._deadline is not None and time.monotonic() + self._hold_s > self._deadline:
            self.stopped_by = "duration"
            return None
        rec = self._rec
        rec.phase = f"find-max {phase} {rate:,.0f}/s"
        before_stats = rec.stats()
        before_total = (
            rec.total.requests,
            rec.total.throttled_requests,
            rec.total.records_sent,
            rec.total.bytes_sent,
        )
        generated = rec.generated
        rec.step_latency = LogHistogram()
        started = time.monotonic()
        ended = await self._gen.run(Profile("constant", rate), duration_s=self._hold_s)
        span = max(time.monotonic() - started, 1e-9)
        after = rec.stats()
        requests = rec.total.requests - before_total[0]
        throttled_requests = rec.total.throttled_requests - before_total[1]
        throttled = after.throttled - before_stats.throttled
        p99 = rec.step_latency.quantile(0.99)
        made = rec.generated - generated
        verdict = "ok"
        if throttled:
            verdict = "throttled"
        elif p99 is not None and p99 > self._max_p99_s:
            verdict = "latency"
        elif made < rate * span * SHORT - 1:
            verdict = "client"
        records_per_s = (after.records_delivered - before_stats.records_delivered) / span
        requests_per_s = (requests - throttled_requests) / span
        bytes_per_s = (after.bytes_delivered - before_stats.bytes_delivered) / span
        sent = rec.total.records_sent - before_total[2]
        if verdict == "ok" and requests and sent:
            # Everything made was taken: the rate held IS the delivered rate. Answers still in
            # flight at the step's end would make a count over the window read low.
            records_per_s = made / span
            requests_per_s = records_per_s * requests / sent
            bytes_per_s = records_per_s * (rec.total.bytes_sent - before_total[3]) / sent
        step = Step(
            phase=phase,
            rate=rate,
            hold_s=span,
            achieved_rate=made / span,
            records_per_s=records_per_s,
            requests_per_s=requests_per_s,
            bytes_per_s=bytes_per_s,
            throttled_records=throttled,
            throttled_requests=throttled_requests,
            p99_s=p99,
            verdict=verdict,
        )
        self.steps.append(step)
        log.info("find_max_step", **step.as_json())
        if ended != "duration":
            self.stopped_by = ended
            return None
        return step

    async def _cool_down(self) -> None:
        """Generate nothing until the producer holds nothing (a throttled step leaves a
        backlog of retries that would count against the next step)."""
        self._rec.phase = "find-max cool-down"
        deadline = time.monotonic() + COOL_DOWN_LIMIT_S
        while time.monotonic() < deadline and not self._stop.is_set():
            stats = self._rec.stats()
            if stats.queue_records == 0 and stats.inflight_requests == 0:
                return
            await self._gen.pause(0.05)

    def as_json(self) -> dict[str, Any]:
        best = self.best.as_json() if self.best is not None else None
        if best is not None:
            best["rate"] = round(self.best.rate, 1) if self.best else None
        return {
            "best": best,
            "limited_by": self.limited_by,
            "ceiling": self.ceiling.as_json() if self.ceiling is not None else None,
            "steps": [step.as_json() for step in self.steps],
            "quota_defaults": quota_json(self._region),
            "hold_s": self._hold_s,
            "max_p99_ms": round(self._max_p99_s * 1000, 2),
        }


def _accepted_per_s(
    sent: list[RequestObservation], end: float
) -> tuple[float, float, float] | None:
    """Records, requests and bytes per second the stream accepted from the requests SENT from
    the first throttled one until `end` (the bucket is empty from then on; the quota decides
    when a request arrives, not when its answer is read): (records/s, requests/s, bytes/s), or
    None when too few requests were sent to tell."""
    first = next((obs.started for obs in sent if obs.throttled), None)
    if first is None:
        return None
    chosen = [obs for obs in sent if first <= obs.started < end]
    span = end - first
    if len(chosen) < 3 or span <= 0:
        return None
    records = sum(obs.delivered for obs in chosen)
    requests = sum(1 for obs in chosen if obs.outcome != "throttled")
    nbytes = sum(obs.nbytes * obs.delivered / max(obs.records, 1) for obs in chosen)
    return records / span, requests / span, nbytes / span
