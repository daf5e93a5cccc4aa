"""The report as one self-contained HTML file with interactive charts (plotly).

plotly.js is inlined once (from the installed `plotly` package), so the file opens offline and
fetches nothing: no CDN, no fonts, no network. Charts: rate (target, achieved, delivered),
throttling and failures, latency (PutRecordBatch p50/p90/p99/max and put-to-acknowledged
p50/p99), throughput (MiB/s, requests/s, queue depth), and the --find-max steps when present.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ingest.loadtest.report import Report

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table.totals { border-collapse: collapse; }
table.totals td { padding: 2px 12px 2px 0; vertical-align: top; }
table.totals td:first-child { font-weight: 600; }
.missed { color: #b00020; font-weight: 700; } .met { color: #1b5e20; }
.chart { width: 100%; height: 420px; }
"""


MIN_CHARTED_SLICE_S = 0.5


def _series(slices: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    return [piece[name] for piece in slices]


def _latency(slices: Sequence[Mapping[str, Any]], kind: str, key: str) -> list[Any]:
    return [piece[kind][key] for piece in slices]


def _figure(title: str, traces: list[dict[str, Any]], y_title: str) -> dict[str, Any]:
    return {
        "data": traces,
        "layout": {
            "title": {"text": title},
            "xaxis": {"title": {"text": "seconds since start"}},
            "yaxis": {"title": {"text": y_title}, "rangemode": "tozero"},
            "hovermode": "x unified",
            "margin": {"t": 50, "l": 70, "r": 70, "b": 90},
            "legend": {"orientation": "h", "y": -0.3},
        },
    }


def _line(x: list[Any], y: list[Any], name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines+markers", "x": x, "y": y, "name": name, **extra}


def figures(report: Report) -> list[tuple[str, dict[str, Any]]]:
    """(id, figure) pairs, one per chart. Slices shorter than half a second (the tail of the
    generation, a quick drain) are left out of the charts: a rate over a few milliseconds is
    noise drawn as a spike. The tables and the JSON keep every slice."""
    slices = [s for s in report["slices"] if s["duration_s"] >= MIN_CHARTED_SLICE_S]
    x = _series(slices, "start_s")
    per_s = [max(piece["duration_s"], 1e-9) for piece in slices]

    def rate(name: str) -> list[float]:
        return [round(v / d, 2) for v, d in zip(_series(slices, name), per_s, strict=True)]

    out = [
        ("rate", _figure("Rate: target vs achieved vs delivered", [
            _line(x, rate("target"), "target events/s", line={"dash": "dash"}),
            _line(x, _series(slices, "achieved_rate"), "generated events/s"),
            _line(x, _series(slices, "delivered_rate"), "delivered records/s"),
        ], "events per second")),
        ("throttling", _figure("Throttling and failures", [
            _line(x, rate("throttled_records"), "throttled records/s"),
            _line(x, rate("throttled_requests"), "throttled requests/s", yaxis="y2"),
            _line(x, rate("failed"), "failed records/s"),
            _line(x, rate("retried"), "retried records/s"),
        ], "records per second")),
        ("latency", _figure("Latency", [
            _line(x, _latency(slices, "request_latency_ms", "p50_ms"), "PutRecordBatch p50"),
            _line(x, _latency(slices, "request_latency_ms", "p90_ms"), "PutRecordBatch p90"),
            _line(x, _latency(slices, "request_latency_ms", "p99_ms"), "PutRecordBatch p99"),
            _line(x, _latency(slices, "request_latency_ms", "max_ms"), "PutRecordBatch max"),
            _line(x, _latency(slices, "ack_latency_ms", "p50_ms"), "put-to-ack p50",
                  line={"dash": "dot"}),
            _line(x, _latency(slices, "ack_latency_ms", "p99_ms"), "put-to-ack p99",
                  line={"dash": "dot"}),
        ], "milliseconds")),
        ("throughput", _figure("Throughput and queue", [
            _line(x, _series(slices, "mib_per_s"), "delivered MiB/s"),
            _line(x, _series(slices, "requests_rate"), "requests/s", yaxis="y2"),
            _line(x, _series(slices, "queue_records"), "queue (records)", yaxis="y3",
                  visible="legendonly"),
        ], "MiB per second")),
    ]  # fmt: skip
    for name, figure in out:
        if name in ("throttling", "throughput"):
            figure["layout"]["yaxis2"] = {
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "title": {"text": "per second"},
            }
            figure["layout"]["yaxis3"] = {"overlaying": "y", "side": "right", "visible": False}
    found = report.get("find_max")
    if found and found.get("steps"):
        steps = found["steps"]
        n = list(range(1, len(steps) + 1))
        colors = ["#1b5e20" if s["verdict"] == "ok" else "#b00020" for s in steps]
        out.append(("find_max", _figure("--find-max steps (green: sustained, red: not)", [
            {"type": "bar", "x": n, "y": [s["rate"] for s in steps], "name": "target events/s",
             "marker": {"color": colors}, "text": [s["verdict"] for s in steps]},
            _line(n, [s["records_per_s"] for s in steps], "delivered records/s"),
        ], "events per second")))  # fmt: skip
        out[-1][1]["layout"]["xaxis"] = {"title": {"text": "step"}}
    return out


def _totals_table(report: Report) -> str:
    t = report["totals"]
    rl, al = t["request_latency_ms"], t["ack_latency_ms"]
    rows = [
        ("run id(s)", ", ".join(report["run_ids"])),
        ("target", f"{report['target']['stream']} in {report['target']['region']}"),
        ("generation / drain", f"{t['generation_s']:,.1f} s / {t['drain_s']:,.1f} s"),
        ("target rate", f"{t['target_rate']:,.0f} events/s"),
        ("achieved rate", f"{t['achieved_rate']:,.0f} events/s ({t['generated']:,} generated)"),
        ("delivered", f"{t['delivered']:,} ({t['delivered_rate']:,.0f}/s, "
                      f"{t['mib_per_s']:,.3f} MiB/s)"),
        ("failed", f"{t['failed']:,} {t['failed_by_reason'] or ''}"),
        ("retried", f"{t['retried']:,}"),
        ("throttled", f"{t['throttled_records']:,} records, {t['throttled_requests']:,} requests"),
        ("requests", f"{t['requests']:,} ({t['records_per_request'] or 0:,.1f} records each)"),
        ("PutRecordBatch latency", f"p50 {rl['p50_ms']} ms, p90 {rl['p90_ms']} ms, "
                                   f"p99 {rl['p99_ms']} ms, max {rl['max_ms']} ms"),
        ("put-to-ack latency", f"p50 {al['p50_ms']} ms, p99 {al['p99_ms']} ms"),
        ("bytes sent / billed", f"{t['bytes_sent']:,} / {t['bytes_billed']:,} (5 KB units)"),
        ("cost estimate", f"{t['cost_usd']:,.6f} USD at {t['price_per_gb']} USD/GB"),
        ("versions", ", ".join(f"{k} {v}" for k, v in report.get("versions", {}).items())),
    ]  # fmt: skip
    body = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(value))}</td></tr>"
        for label, value in rows
    )
    return f'<table class="totals">{body}</table>'


def render_html(report: Report) -> str:
    import plotly.io as pio

    t = report["totals"]
    verdict = (
        f'<p class="missed">TARGET MISSED in {t["seconds_below_target"]} of '
        f"{t['seconds_with_target']} seconds ({t['shortfall_events']:,} events short)</p>"
        if t["target_missed"]
        else '<p class="met">target met: every second within 2 % of the profile</p>'
    )
    charts = []
    for position, (name, figure) in enumerate(figures(report)):
        charts.append(
            pio.to_html(
                figure,
                include_plotlyjs=position == 0,  # inline once, never from a CDN
                full_html=False,
                div_id=f"chart-{name}",
                config={"displaylogo": False, "responsive": True},
                default_height="420px",
                validate=True,
            )
        )
    title = f"ingest loadtest report {', '.join(report['run_ids'])}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{verdict}{_totals_table(report)}"
        + "".join(f'<div class="chart">{chart}</div>' for chart in charts)
        + "</body></html>\n"
    )


def write_html(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(render_html(report), encoding="utf-8")
    partial.replace(path)
