"""Live progress of `ingest loadtest` and `ingest run`.

On a terminal (stderr is a TTY and the logs are not forced to JSON): one refreshing status area
drawn with `rich` — elapsed and remaining time, target vs achieved rate, delivered, failed,
retried, throttled, queue depth, p50/p99 request latency and MiB/s. Otherwise (CI, containers,
pipes): one JSON log line ``{"event": "progress", ...}`` every `every_s` seconds with the same
fields. Rates and latencies are over the interval since the previous line, counts are totals.
A missed target is flagged (``target_missed``), never hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

import structlog

from ingest.loadtest.histogram import LogHistogram
from ingest.producer import ProducerStats, RequestObservation

if TYPE_CHECKING:
    from rich.panel import Panel

log = structlog.get_logger("ingest.progress")

MIB = 1024 * 1024
TOLERANCE = 0.02  # achieved below target by more than this is a missed target
LIVE_REFRESH_S = 0.25
LIVE_SAMPLE_S = 1.0


@dataclass(frozen=True, kw_only=True)
class Sample:
    """Cumulative figures at one instant."""

    at: float  # time.monotonic()
    elapsed_s: float
    remaining_s: float | None
    target_rate: float | None  # events/s asked for now (None: as fast as possible)
    target_due: float | None  # events due so far (None: as fast as possible)
    generated: int
    stats: ProducerStats
    phase: str = ""


class Source(Protocol):
    """Where progress reads from: the load test's recorder, or `RunProgressSource`."""

    def sample(self) -> Sample: ...
    def take_latency(self) -> LogHistogram: ...


@dataclass(frozen=True, kw_only=True)
class View:
    """One progress line (what the JSON line and the status area show)."""

    elapsed_s: float
    remaining_s: float | None
    target_rate: float | None
    achieved_rate: float
    target_missed: bool
    generated: int
    delivered: int
    failed: int
    retried: int
    throttled: int
    queue_records: int
    inflight_requests: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    mib_per_s: float
    phase: str

    def fields(self) -> dict[str, object]:
        out = asdict(self)
        for name in ("elapsed_s", "remaining_s", "target_rate", "achieved_rate", "mib_per_s"):
            if isinstance(out[name], float):
                out[name] = round(out[name], 2 if name == "mib_per_s" else 1)
        if not self.phase:
            del out["phase"]
        return out


def view_between(old: Sample, new: Sample, latency: LogHistogram) -> View:
    """The view of the interval from `old` to `new`."""
    span = max(new.at - old.at, 1e-9)
    made = new.generated - old.generated
    achieved = made / span
    missed = False
    if new.target_due is not None and old.target_due is not None:
        due = new.target_due - old.target_due
        missed = due > 0 and made < due * (1 - TOLERANCE) - 1
    stats = new.stats
    p50, p99 = latency.quantile(0.5), latency.quantile(0.99)
    return View(
        elapsed_s=new.elapsed_s,
        remaining_s=new.remaining_s,
        target_rate=new.target_rate,
        achieved_rate=achieved,
        target_missed=missed,
        generated=new.generated,
        delivered=stats.records_delivered,
        failed=stats.records_failed_total,
        retried=stats.records_retried,
        throttled=stats.throttled,
        queue_records=stats.queue_records,
        inflight_requests=stats.inflight_requests,
        latency_p50_ms=None if p50 is None else round(p50 * 1000, 2),
        latency_p99_ms=None if p99 is None else round(p99 * 1000, 2),
        mib_per_s=(stats.bytes_delivered - old.stats.bytes_delivered) / span / MIB,
        phase=new.phase,
    )


def use_live(json_logs: bool, stream: object = None) -> bool:
    """The rich status area only on a terminal whose logs are readable text."""
    target = sys.stderr if stream is None else stream
    isatty = getattr(target, "isatty", None)
    return not json_logs and callable(isatty) and bool(isatty())


class Progress:
    """Runs until `stop()`: JSON lines every `every_s`, or the live area on a terminal."""

    def __init__(self, source: Source, *, every_s: float, live: bool, title: str) -> None:
        self._source = source
        self._every_s = every_s
        self._live = live
        self._title = title
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last: View | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest-progress")

    async def stop(self) -> None:
        """Stop and, for JSON lines, write a last one covering the time since the previous."""
        self._done.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        if self._live:
            await self._run_live()
        else:
            await self._run_lines()

    async def _run_lines(self) -> None:
        previous = self._source.sample()
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout=self._every_s)
            current = self._source.sample()
            self.last = view_between(previous, current, self._source.take_latency())
            log.info("progress", **self.last.fields())
            previous = current

    async def _run_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(stderr=True)
        previous = self._source.sample()
        self.last = view_between(previous, previous, LogHistogram())
        next_sample = time.monotonic() + LIVE_SAMPLE_S
        with (
            Live(
                render(self.last, self._title),
                console=console,
                auto_refresh=False,
                transient=False,
                redirect_stderr=True,
            ) as live,
            _logs_above(),
        ):
            while not self._done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), timeout=LIVE_REFRESH_S)
                if time.monotonic() >= next_sample or self._done.is_set():
                    current = self._source.sample()
                    self.last = view_between(previous, current, self._source.take_latency())
                    previous = current
                    next_sample = time.monotonic() + LIVE_SAMPLE_S
                live.update(render(self.last, self._title), refresh=True)


@contextlib.contextmanager
def _logs_above() -> Iterator[None]:
    """Log lines written while the area is live go through rich's stderr proxy (installed by
    Live), which prints them above the area instead of through it."""
    factory = structlog.get_config()["logger_factory"]
    if isinstance(factory, structlog.PrintLoggerFactory):
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    try:
        yield
    finally:
        structlog.configure(logger_factory=factory)


def render(view: View, title: str) -> Panel:
    """The status area: a two-column grid of labels and values."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_column(style="bold")
    table.add_column()
    remaining = "—" if view.remaining_s is None else f"{view.remaining_s:,.0f} s"
    target = "max" if view.target_rate is None else f"{view.target_rate:,.0f}/s"
    achieved = Text(f"{view.achieved_rate:,.0f}/s")
    if view.target_missed:
        achieved.stylize("bold red")
        achieved.append("  BELOW TARGET", style="bold red")
    p50 = "—" if view.latency_p50_ms is None else f"{view.latency_p50_ms:,.1f} ms"
    p99 = "—" if view.latency_p99_ms is None else f"{view.latency_p99_ms:,.1f} ms"
    phase = f"  ({view.phase})" if view.phase else ""
    table.add_row("elapsed", f"{view.elapsed_s:,.0f} s", "remaining", remaining)
    table.add_row("target", target, "achieved", achieved)
    table.add_row("delivered", f"{view.delivered:,}", "MiB/s", f"{view.mib_per_s:,.2f}")
    table.add_row("failed", f"{view.failed:,}", "retried", f"{view.retried:,}")
    table.add_row("throttled", f"{view.throttled:,}", "queue", f"{view.queue_records:,}")
    table.add_row("p50 latency", p50, "p99 latency", p99)
    return Panel(table, title=escape(f"{title}{phase}"), expand=False)


class RunProgressSource:
    """Progress of `ingest run`: the producer's ledger, the run's count of events generated and
    the target rate; its `observe` is the producer's `on_request` hook (latency)."""

    def __init__(self, *, rate: float, duration_s: float | None, count: int | None) -> None:
        self._stats: Callable[[], ProducerStats] | None = None
        self._generated: Callable[[], int] = lambda: 0
        self._rate = rate
        self._duration_s = duration_s
        self._count = count
        self._started = time.monotonic()
        self._latency = LogHistogram()

    def start(self, stats: Callable[[], ProducerStats], generated: Callable[[], int]) -> None:
        """Generation starts now (start-up is not counted): read `stats` and `generated`."""
        self._stats = stats
        self._generated = generated
        self._started = time.monotonic()

    def observe(self, obs: RequestObservation) -> None:
        self._latency.add(obs.seconds)

    def take_latency(self) -> LogHistogram:
        taken, self._latency = self._latency, LogHistogram()
        return taken

    def sample(self) -> Sample:
        assert self._stats is not None, "start() first"
        now = time.monotonic()
        elapsed = now - self._started
        generated = self._generated()
        remaining = None
        if self._duration_s is not None:
            remaining = max(0.0, self._duration_s - elapsed)
        elif self._count is not None and self._rate > 0:
            remaining = max(0.0, (self._count - generated) / self._rate)
        paced = self._rate > 0
        return Sample(
            at=now,
            elapsed_s=elapsed,
            remaining_s=remaining,
            target_rate=self._rate if paced else None,
            target_due=self._rate * elapsed if paced else None,
            generated=generated,
            stats=self._stats(),
        )


def run_progress(
    source: RunProgressSource,
    stats: Callable[[], ProducerStats],
    generated: Callable[[], int],
    *,
    every_s: float,
    json_logs: bool,
    title: str,
) -> Progress:
    """Start the progress of `ingest run` (generation starts now); `stop()` it at the drain."""
    source.start(stats, generated)
    progress = Progress(source, every_s=every_s, live=use_live(json_logs), title=title)
    progress.start()
    return progress
