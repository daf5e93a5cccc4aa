"""`ingest loadtest` from start to exit code: target, producer, profile or --find-max, drain,
report (table, JSON, HTML).

The same target set-up as `ingest run` (``--local`` emulator, endpoint or AWS; the stream is
confirmed with DescribeDeliveryStream first), the same producer with the same knobs. The clock of
the test starts when generation starts; slices run on through the drain, so records still in
flight at the end are counted in the second they were delivered.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import structlog

from ingest import __version__
from ingest.cli import EXIT_FAILURE, EXIT_OK
from ingest.errors import FirehoseError
from ingest.events import EventGenerator
from ingest.firehose.limits import BILLING_INCREMENT_BYTES
from ingest.loadtest.findmax import FindMax
from ingest.loadtest.generator import PacedGenerator
from ingest.loadtest.profile import Profile
from ingest.loadtest.progress import Progress, use_live
from ingest.loadtest.recorder import Recorder, slice_every_second
from ingest.loadtest.report import (
    REPORT_FORMAT,
    REPORT_KIND,
    Report,
    quota_json,
    render_table,
    slice_json,
    totals,
)
from ingest.loadtest.settings import LoadtestSettings
from ingest.producer import Producer
from ingest.service.config import ServiceConfig
from ingest.service.health import RunState
from ingest.service.signals import SignalDrain
from ingest.service.startup import Target, confirm_target, log_start, open_target, report_fatal

log = structlog.get_logger(__name__)


async def run_loadtest(
    config: ServiceConfig,
    settings: LoadtestSettings,
    events: EventGenerator,
    *,
    json_logs: bool,
    unknown_env: list[str],
) -> int:
    """Run the test; returns the exit code (0 the test ran and reported, whatever it found;
    1 it could not run: target unusable, producer refused records; 2 is raised as ConfigError).
    """
    signals = SignalDrain()
    signals.install()
    try:
        async with AsyncExitStack() as stack:
            target = await open_target(stack, config)
            log_start(config, target, events.run_id, unknown_env)
            try:
                return await _run(stack, config, settings, target, events, signals, json_logs)
            except FirehoseError as exc:
                return report_fatal(exc, target)
    finally:
        signals.remove()


async def _run(
    stack: AsyncExitStack,
    config: ServiceConfig,
    settings: LoadtestSettings,
    target: Target,
    events: EventGenerator,
    signals: SignalDrain,
    json_logs: bool,
) -> int:
    holder: dict[str, Recorder] = {}
    producer = Producer(
        stream=config.stream,
        region=config.region,
        endpoint_url=target.endpoint_url,
        session=target.session,
        on_request=lambda obs: holder["recorder"].observe(obs),
        verify=config.tls_verify(),
        **config.producer_options(),
    )
    await stack.enter_async_context(producer)
    recorder = holder["recorder"] = Recorder(producer.stats, time.monotonic)
    code = await confirm_target(
        producer, RunState(), target, unreachable_after_s=config.unreachable_after_s
    )
    if code is not None:
        return code
    profile = _profile(config, settings)
    generator = PacedGenerator(producer, events, recorder, signals.stop)
    finder: FindMax | None = None
    started_unix = time.time()
    recorder.restart()
    recorder.phase = "generation" if not profile.unpaced else "unpaced"
    recorder.remaining = _remaining(config, settings, recorder, profile)
    progress = Progress(
        recorder,
        every_s=config.progress_every_s,
        live=use_live(json_logs),
        title=f"ingest loadtest {events.run_id}",
    )
    slicing_done = asyncio.Event()
    slicer = asyncio.create_task(slice_every_second(recorder, slicing_done))
    progress.start()
    try:
        if settings.find_max:
            finder = FindMax(
                generator, recorder, signals.stop, start_rate=config.rate,
                hold_s=settings.hold_s, max_p99_s=settings.max_p99_s, region=config.region,
                time_limit_s=config.duration_s,
            )  # fmt: skip
            stopped_by = await finder.run()
        else:
            stopped_by = await generator.run(
                profile, count=config.count, duration_s=config.duration_s
            )
        generation_s = recorder.elapsed()
        recorder.cut()  # the generation's last (partial) second ends exactly here
        recorder.phase = "drain"
        recorder.target_rate = 0.0
        await _drain(producer, config.drain_timeout_s, signals)
        await recorder.settle()
    finally:
        await progress.stop()
        slicing_done.set()
        await asyncio.gather(slicer, return_exceptions=True)
    recorder.cut()  # the last, partial second
    drain_s = recorder.elapsed() - generation_s
    if generator.refused is not None:
        log.error("producer_refused_records", error=str(generator.refused))
    report = build_report(
        config=config,
        settings=settings,
        target=target,
        run_id=events.run_id,
        events_generated=producer.stats().records_put,
        recorder=recorder,
        profile=profile,
        finder=finder,
        stopped_by=stopped_by,
        started_unix=started_unix,
        generation_s=generation_s,
        drain_s=drain_s,
    )
    write_outputs(report, config.report, settings.html)
    log.info("loadtest_finished", **_log_fields(report))
    if stopped_by == "producer_refused":
        return EXIT_FAILURE
    return EXIT_OK


def _profile(config: ServiceConfig, settings: LoadtestSettings) -> Profile:
    return Profile(
        settings.profile,
        config.rate,
        ramp_to=settings.ramp_to,
        ramp_s=config.duration_s,
        step=settings.step,
        step_every_s=settings.step_every_s,
    )


def _remaining(
    config: ServiceConfig, settings: LoadtestSettings, recorder: Recorder, profile: Profile
) -> Any:
    def remaining() -> float | None:
        if settings.find_max:
            return None
        if config.duration_s is not None:
            return max(0.0, config.duration_s - recorder.elapsed())
        if config.count is not None and not profile.unpaced and recorder.target_rate > 0:
            return max(0.0, (config.count - recorder.generated) / recorder.target_rate)
        return None

    return remaining


async def _drain(producer: Producer, deadline_s: float, signals: SignalDrain) -> None:
    """Close the producer within the drain deadline; a second signal cuts it short."""
    log.info("drain_started", deadline_s=deadline_s, queue_records=producer.stats().queue_records)
    close = asyncio.create_task(producer.close(timeout=deadline_s))
    cut = asyncio.create_task(signals.cut.wait())
    await asyncio.wait({close, cut}, return_when=asyncio.FIRST_COMPLETED)
    cut.cancel()
    if not close.done():
        close.cancel()
    await asyncio.gather(close, return_exceptions=True)


def versions() -> dict[str, str]:
    out = {"ingest": __version__, "python": platform.python_version()}
    for name in ("aioboto3", "botocore", "aiohttp"):
        with suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def build_report(
    *,
    config: ServiceConfig,
    settings: LoadtestSettings,
    target: Target,
    run_id: str,
    events_generated: int,
    recorder: Recorder,
    profile: Profile,
    finder: FindMax | None,
    stopped_by: str,
    started_unix: float,
    generation_s: float,
    drain_s: float,
) -> Report:
    slices = [slice_json(piece) for piece in recorder.slices]
    index = settings.fleet_index if settings.fleet_index is not None else 0
    return {
        "kind": REPORT_KIND,
        "format": REPORT_FORMAT,
        "runs": [{"run_id": run_id, "events_generated": events_generated}],
        "run_ids": [run_id],
        "test_id": settings.test_id,
        "fleet": {"size": settings.fleet_size, "indices": [index]},
        "started_at": datetime.fromtimestamp(started_unix, UTC).isoformat(timespec="milliseconds"),
        "started_unix": started_unix,
        "stopped_by": stopped_by,
        "versions": versions(),
        "target": {
            "kind": target.kind,
            "stream": target.stream,
            "region": target.region,
            "endpoint": target.labels()["endpoint_host"],
        },
        "config": {**config.redacted(), **settings.as_dict()},
        "profile": profile.describe(),
        "quota_defaults": quota_json(config.region),
        "billing": {"increment_bytes": BILLING_INCREMENT_BYTES, "unit": "Firehose record"},
        "find_max": finder.as_json() if finder is not None else None,
        "totals": totals(
            slices,
            generation_s=generation_s,
            drain_s=drain_s,
            price_per_gb=settings.price_per_gb,
        ),
        "slices": slices,
    }


def write_outputs(report: Report, json_path: Path | None, html_path: Path | None) -> None:
    """The table on stdout; JSON and HTML files when asked."""
    print(render_table(report), end="", flush=True)
    if json_path is not None:
        write_json(report, json_path)
    if html_path is not None:
        from ingest.loadtest.html_report import write_html

        write_html(report, html_path)


def write_json(report: Report, path: Path) -> None:
    """Atomically: a half-written report must never be merged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    partial.replace(path)


def _log_fields(report: Report) -> dict[str, object]:
    t = report["totals"]
    keep = ("generated", "delivered", "failed", "throttled_records", "throttled_requests",
            "achieved_rate", "target_rate", "target_missed", "cost_usd")  # fmt: skip
    fields: dict[str, object] = {name: t[name] for name in keep}
    fields["stopped_by"] = report["stopped_by"]
    if report.get("find_max") and report["find_max"]["best"]:
        fields["find_max_rate"] = report["find_max"]["best"]["rate"]
    return fields


def print_error(text: str) -> None:
    print(f"ingest loadtest: {text}", file=sys.stderr, flush=True)
