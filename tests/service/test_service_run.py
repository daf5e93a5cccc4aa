"""`ingest run` end to end over real processes: probes, metrics, accounting, signals, exit codes."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

EXACT_NAMES = {
    "ingest_records_put_total",
    "ingest_records_delivered_total",
    "ingest_records_failed_total",
    "ingest_records_retried_total",
    "ingest_requests_total",
    "ingest_throttled_total",
    "ingest_bytes_delivered_total",
    "ingest_queue_records",
    "ingest_inflight_requests",
    "ingest_request_duration_seconds_bucket",
    "ingest_request_duration_seconds_sum",
    "ingest_request_duration_seconds_count",
}


def samples(text: str) -> dict[str, float]:
    """Unlabelled samples by name, labelled ones summed (e.g. failed over every reason)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" not in sample.labels:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def delivered_more_than(n: int) -> Any:
    return lambda status, body: (
        status == 200 and samples(body).get("ingest_records_delivered_total", 0) > n
    )


def stored_events(data_dir: Path) -> list[dict[str, Any]]:
    """Every event the emulator delivered under `data_dir` (objects only, not its .tmp)."""
    events = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and ".tmp" not in path.relative_to(data_dir).parts:
            events.extend(orjson.loads(line) for line in path.read_bytes().splitlines())
    return events


def test_local_run_serves_probes_and_metrics_and_delivers_every_event(
    service: Any, tmp_path: Path
) -> None:
    data = tmp_path / "objects"
    run = service(["--local", "--count", "20000", "--rate", "5000", "--local-data-dir", str(data)])
    assert run.wait_until("/healthz", lambda status, _: status == 200)
    run.wait_until("/readyz", lambda status, _: status == 200)
    text = run.wait_until("/metrics", delivered_more_than(0))
    families = list(text_string_to_metric_families(text))
    names = {s.name for family in families for s in family.samples}
    # A labelled counter with no series yet (no failure so far) still declares its family.
    names |= {f"{f.name}_total" for f in families if f.type == "counter"}
    assert names >= EXACT_NAMES
    assert {"ingest_events_generated_total", "ingest_info"} <= names
    during = samples(text)
    assert during["ingest_records_delivered_total"] <= during["ingest_records_put_total"]
    assert run.get("/nope")[0] == 404

    assert run.finish() == 0
    summary = run.summary()
    assert summary["stopped_by"] == "count"
    assert summary["generated"] == summary["put"] == summary["delivered"] == 20000
    assert summary["failed"] == summary["pending"] == 0
    # Its own CPU over generation and drain (paced at 5,000/s for 4 s: far below the span).
    assert 0 < summary["cpu_s"] < summary["total_s"]
    assert summary["cpu_us_per_event"] == pytest.approx(summary["cpu_s"] / 20000 * 1e6, rel=0.01)
    # Off a terminal both streams are JSON lines, so a log pipeline that merges them (as a
    # container runtime does) parses every line; stdout carries the summary as one object.
    (report,) = [orjson.loads(line) for line in run.stdout.splitlines()]
    assert report["event"] == "run_summary"
    assert {k: v for k, v in report.items() if k != "event"} == {
        k: v for k, v in summary.items() if k not in ("event", "level", "timestamp")
    }
    for line in run.stderr.splitlines():
        assert isinstance(orjson.loads(line), dict), line
    # Per-batch detail is debug-only: at info the log does not grow with the event count.
    assert len(run.stderr.splitlines()) < 20
    events = stored_events(data)
    assert sorted(e["seq"] for e in events) == list(range(20000))
    assert len({e["id"] for e in events}) == 20000


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_and_accounts_for_every_generated_event(
    service: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    data = tmp_path / "objects"
    run = service(["--local", "--rate", "3000", "--local-data-dir", str(data)])
    run.wait_until("/metrics", delivered_more_than(1000))
    run.signal(sig)
    code = run.finish()
    summary = run.summary()
    assert summary["stopped_by"] == "signal"
    assert summary["generated"] == summary["delivered"] + summary["failed"]
    assert summary["pending"] == 0
    assert code == (0 if summary["failed"] == 0 else 1)
    assert len({e["id"] for e in stored_events(data)}) == summary["delivered"]
    events = [e["event"] for e in run.log_events()]
    assert events.index("drain_requested") < events.index("drain_finished")


def test_wedged_sender_fails_healthz_and_second_signal_cuts_the_drain(
    service: Any, slow_emulator: str
) -> None:
    """Every PutRecordBatch takes 5 s: /healthz turns 503 after --stall-timeout, and a second
    SIGTERM ends a 60 s drain at once, failing what was in flight instead of losing it."""
    run = service([
        "--endpoint-url", slow_emulator, "--rate", "2000", "--stall-timeout", "1",
        "--unreachable-after", "1", "--drain-timeout", "60", "--request-timeout", "30",
    ])  # fmt: skip
    run.wait_until("/metrics", lambda s, b: s == 200 and samples(b)["ingest_records_put_total"])
    body = run.wait_until("/healthz", lambda status, _: status == 503, timeout=20)
    assert "wedged" in body
    run.wait_until("/readyz", lambda status, body: status == 503 and "unreachable" in body)
    run.signal(signal.SIGTERM)
    run.wait_until("/readyz", lambda status, body: status == 503 and "draining" in body)
    run.signal(signal.SIGTERM)
    assert run.finish(timeout=30) == 1
    summary = run.summary()
    assert summary["failed_by_reason"].get("close_timeout", 0) > 0
    assert summary["generated"] == summary["delivered"] + summary["failed"]
    assert "drain_cut_short" in [e["event"] for e in run.log_events()]


def test_missing_stream_fails_fast_with_exit_1(service: Any, moto: str) -> None:
    run = service(["--endpoint-url", moto, "--stream", "no-such-stream", "--count", "10"])
    assert run.finish(timeout=30) == 1
    assert "no-such-stream" in run.stderr
    assert "unusable" in run.stderr
    assert "Traceback" not in run.stderr
    assert "run_finished" not in run.stderr


def test_signal_during_the_start_up_check_ends_the_run_without_waiting_for_it(
    service: Any,
) -> None:
    """The endpoint accepts connections and never answers: the start-up DescribeDeliveryStream
    would wait for the whole 120 s request timeout. A SIGTERM must end the run long before."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        run = service(["--endpoint-url", url, "--request-timeout", "120"])
        run.wait_until("/readyz", lambda status, body: status == 503 and "not answered" in body)
        run.signal(signal.SIGTERM)
        assert run.finish(timeout=60) == 0
    summary = run.summary()
    assert (summary["stopped_by"], summary["generated"], summary["failed"]) == ("signal", 0, 0)
    assert "target_check_abandoned" in [e["event"] for e in run.log_events()]
