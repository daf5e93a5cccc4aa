"""`ingest loadtest` processes against `ingest emulator` processes: the report's counts equal the
emulator's ground truth, profiles reach their targets when they can, and a shortfall is reported
(live and in the report, exit 0) when they cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.emulator.testing import run_emulator_process
from tests.loadtest.conftest import loadtest, read_report


def _generation_seconds(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole seconds of generation (the last, partial one is left out)."""
    return [s for s in report["slices"] if s["phase"] == "generation" and s["duration_s"] > 0.9]


async def test_report_counts_equal_the_emulators_ground_truth(tmp_path: Path) -> None:
    """Quotas of both kinds and connection resets on: delivered, throttled records and
    throttled requests are exactly what the emulator counted."""
    report = tmp_path / "truth.json"
    async with run_emulator_process(
        tmp_path / "emulator", "--quota-records-per-s", "1500", "--quota-requests-per-s", "30",
        "--fault-reset-rate", "0.05", "--seed", "7",
    ) as emulator:  # fmt: skip
        done = await loadtest(
            "--endpoint-url", emulator.endpoint_url, "--rate", "2500", "--duration", "3",
            "--report", str(report), "--progress-every", "1",
        )  # fmt: skip
        truth = await emulator.stats()
    assert done.code == 0, done.stderr[-3000:]
    data = read_report(report)
    t = data["totals"]
    assert t["delivered"] == truth["records_accepted"] == t["generated"] == 7500
    # Throttling slows delivery, not generation: the constant profile held every second.
    assert not t["target_missed"]
    for second in _generation_seconds(data):
        assert abs(second["generated"] - second["target"]) <= 0.02 * second["target"] + 1
        # the target is read at the generator's wake-ups, a few ms off the slice edges
        assert abs(second["target"] / second["duration_s"] - 2500) < 0.02 * 2500
    assert t["throttled_records"] > 0
    assert t["throttled_records"] - t["records_in_throttled_requests"] == truth["records_throttled"]
    assert t["throttled_requests"] == truth["calls_throttled"]
    assert t["retried"] > 0
    assert t["failed"] == 0
    assert t["bytes_billed"] == t["delivered"] * 5120  # every small record billed 5 KB
    assert t["cost_usd"] == round(t["bytes_billed"] / 2**30 * 0.029, 6)
    assert t["request_latency_ms"]["p99_ms"] >= t["request_latency_ms"]["p50_ms"] > 0
    assert t["ack_latency_ms"]["p50_ms"] > 0
    # Progress lines every second with the fields of the live area.
    lines = done.lines("progress")
    assert len(lines) >= 2
    for field in ("elapsed_s", "remaining_s", "target_rate", "achieved_rate", "delivered",
                  "failed", "retried", "throttled", "queue_records", "latency_p50_ms",
                  "latency_p99_ms", "mib_per_s"):  # fmt: skip
        assert field in lines[0]
    assert "throttled" in done.stdout  # the table


async def test_profiles_reach_their_targets_within_2_percent_per_second(tmp_path: Path) -> None:
    async with run_emulator_process(tmp_path / "emulator") as emulator:
        url = emulator.endpoint_url
        ramp, steps = tmp_path / "ramp.json", tmp_path / "steps.json"
        done_ramp = await loadtest(
            "--endpoint-url", url, "--profile", "ramp", "--rate", "1000", "--ramp-to", "4000",
            "--duration", "4", "--report", str(ramp),
        )  # fmt: skip
        done_steps = await loadtest(
            "--endpoint-url", url, "--profile", "steps", "--rate", "1000", "--step", "1000",
            "--step-every", "1", "--ramp-to", "2500", "--duration", "4", "--report", str(steps),
        )  # fmt: skip
        truth = await emulator.stats()
    assert done_ramp.code == done_steps.code == 0, done_ramp.stderr[-2000:]
    r, s = read_report(ramp), read_report(steps)
    assert r["totals"]["generated"] == round(r["totals"]["target"]) == 10_000  # 1000..4000 over 4 s
    assert s["totals"]["generated"] == round(s["totals"]["target"]) == 1000 + 2000 + 2500 + 2500
    assert truth["records_accepted"] == r["totals"]["delivered"] + s["totals"]["delivered"]
    for report in (r, s):
        assert not report["totals"]["target_missed"]
        seconds = _generation_seconds(report)
        assert len(seconds) >= 3
        for second in seconds:
            assert abs(second["generated"] - second["target"]) <= 0.02 * second["target"] + 1
    targets = [round(sec["target"], -2) for sec in _generation_seconds(s)]
    assert targets[:3] == [1000, 2000, 2500]  # stepped, then capped by --ramp-to
    assert "target met" in done_ramp.stdout


async def test_a_target_the_pipeline_cannot_reach_is_reported_not_hidden(tmp_path: Path) -> None:
    """One request in flight, 0.2 s each, at most 1,000 records held: about 2,500 events/s
    can get through, 20,000/s are asked for. Exit 0, the shortfall live and in the report."""
    report, page = tmp_path / "short.json", tmp_path / "short.html"
    async with run_emulator_process(tmp_path / "emulator", "--fault-latency", "0.2") as emulator:
        done = await loadtest(
            "--endpoint-url", emulator.endpoint_url, "--rate", "20000", "--duration", "3",
            "--max-inflight", "1", "--max-queue-records", "1000", "--report", str(report),
            "--html", str(page), "--progress-every", "1",
        )  # fmt: skip
    assert done.code == 0, done.stderr[-2000:]
    t = read_report(report)["totals"]
    assert t["target_missed"]
    assert t["seconds_below_target"] >= 2
    assert t["achieved_rate"] < 0.5 * t["target_rate"]
    assert t["shortfall_events"] == round(t["target"]) - t["generated"] > 0
    assert t["delivered"] == t["generated"]
    assert "TARGET MISSED" in done.stdout
    assert any(line["target_missed"] for line in done.lines("progress"))
    assert "TARGET MISSED" in page.read_text(encoding="utf-8")
