"""What the HTML report's charts plot (the rendering itself is checked in headless Chromium)."""

from __future__ import annotations

from typing import Any

from ingest.loadtest.html_report import figures


def _slice(start_s: float, duration_s: float, generated: int, phase: str) -> dict[str, Any]:
    latency = {"p50_ms": 2.0, "p90_ms": 3.0, "p99_ms": 4.0, "max_ms": 5.0}
    return {
        "start_s": start_s, "duration_s": duration_s, "phase": phase, "target": generated,
        "generated": generated, "delivered": generated, "failed": 0, "retried": 0,
        "throttled_records": 0, "throttled_requests": 0, "queue_records": 0,
        "achieved_rate": generated / duration_s, "delivered_rate": generated / duration_s,
        "requests_rate": 1 / duration_s, "mib_per_s": 0.1,
        "request_latency_ms": latency, "ack_latency_ms": latency,
    }  # fmt: skip


def test_a_few_milliseconds_of_tail_or_drain_are_not_drawn_as_a_rate_spike() -> None:
    whole = [_slice(float(s), 1.0, 1000, "generation") for s in range(3)]
    tails = [_slice(3.0, 0.002, 20, "generation"), _slice(3.0, 0.01, 165, "drain")]
    charts = dict(figures({"slices": [*whole, *tails]}))
    rate = charts["rate"]["data"]
    assert [trace["x"] for trace in rate] == [[0.0, 1.0, 2.0]] * 3
    assert max(max(trace["y"]) for trace in rate) == 1000
