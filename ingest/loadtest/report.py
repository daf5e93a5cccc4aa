"""The load-test report: per 1-second slice and in total, as JSON, a table, and (html.py) charts.

One shape for a single process and for a merged fleet: a JSON object whose top level always has
``runs`` (one ``{"run_id", "events_generated"}`` per process, read by ``ingest verify``), plus
``slices`` (one per second, counts and mergeable latency histograms) and ``totals`` derived from
them. Rates are what Firehose accepted, not what was sent. Bytes billed round every record up to
the next 5 KB (5,120 bytes), as Firehose bills ingestion; the cost is bytes billed / 2^30 times
the price per GB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ingest.firehose.limits import default_quota
from ingest.loadtest.histogram import LogHistogram
from ingest.loadtest.recorder import Slice

REPORT_KIND = "ingest.loadtest.report"
REPORT_FORMAT = 1
GIB = 1024**3
MIB = 1024**2
MAX_TABLE_SLICES = 120  # longer tests keep their per-second figures to --report and --html
TOLERANCE = 0.02  # a second whose events generated fall short of its target by more missed it

# Counts that add up across slices and across fleet members.
SUMMED = (
    "target", "generated", "delivered", "failed", "retried", "throttled_records",
    "throttled_requests", "records_in_throttled_requests", "requests", "records_sent",
    "bytes_sent", "bytes_delivered", "bytes_billed", "firehose_records", "queue_records",
    "inflight_requests",
)  # fmt: skip

Report = dict[str, Any]


def slice_json(piece: Slice) -> dict[str, Any]:
    """One slice as JSON, with its histograms (so a merge can recompute percentiles)."""
    w = piece.window
    out: dict[str, Any] = {
        "start_s": round(piece.start_s, 3),
        "duration_s": round(piece.duration_s, 3),
        "phase": piece.phase,
        "target_rate": round(piece.target_rate, 3),
        "target": round(piece.target, 3),
        "generated": piece.generated,
        "delivered": piece.delivered,
        "failed": piece.failed,
        "failed_by_reason": dict(piece.failed_by_reason),
        "retried": piece.retried,
        "throttled_records": piece.throttled_records,
        "throttled_requests": w.throttled_requests,
        "records_in_throttled_requests": w.records_in_throttled_requests,
        "requests": w.requests,
        "requests_by_outcome": dict(w.requests_by_outcome),
        "records_sent": w.records_sent,
        "bytes_sent": piece.bytes_sent,
        "bytes_delivered": piece.bytes_delivered,
        "bytes_billed": piece.bytes_billed,
        "firehose_records": piece.firehose_records,
        "queue_records": piece.queue_records,
        "inflight_requests": piece.inflight_requests,
        "histograms": {"request": w.request_latency.to_json(), "ack": w.ack_latency.to_json()},
    }
    return derive_slice(out)


def derive_slice(out: dict[str, Any]) -> dict[str, Any]:
    """Rates, shortfall and percentiles of a slice, from its counts and histograms."""
    span = out["duration_s"] or 1e-9
    out["achieved_rate"] = round(out["generated"] / span, 1)
    out["delivered_rate"] = round(out["delivered"] / span, 1)
    out["requests_rate"] = round(out["requests"] / span, 1)
    out["mib_per_s"] = round(out["bytes_delivered"] / span / MIB, 4)
    out["records_per_request"] = (
        round(out["records_sent"] / out["requests"], 1) if out["requests"] else None
    )
    shortfall = out["target"] - out["generated"]
    out["shortfall"] = round(shortfall, 1) if shortfall > out["target"] * TOLERANCE + 1 else 0
    request = LogHistogram.from_json(out["histograms"]["request"])
    ack = LogHistogram.from_json(out["histograms"]["ack"])
    out["request_latency_ms"] = request.summary_ms()
    out["ack_latency_ms"] = ack.summary_ms((0.5, 0.99))
    return out


def totals(
    slices: Sequence[Mapping[str, Any]],
    *,
    generation_s: float,
    drain_s: float,
    price_per_gb: float,
    achieved_rate: float | None = None,
    delivered_rate: float | None = None,
) -> dict[str, Any]:
    """The whole test, from its slices (rates over the generation time unless given)."""
    out: dict[str, Any] = dict.fromkeys(SUMMED, 0)
    failed: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    request, ack = LogHistogram(), LogHistogram()
    for piece in slices:
        for name in SUMMED:
            if name not in ("queue_records", "inflight_requests"):
                out[name] += piece[name]
        for reason, n in piece["failed_by_reason"].items():
            failed[reason] = failed.get(reason, 0) + n
        for outcome, n in piece["requests_by_outcome"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
        request.merge(LogHistogram.from_json(piece["histograms"]["request"]))
        ack.merge(LogHistogram.from_json(piece["histograms"]["ack"]))
    del out["queue_records"], out["inflight_requests"]
    gen = max(generation_s, 1e-9)
    generating = [s for s in slices if s["phase"] != "drain" and s["target"] > 0]
    below = [s for s in generating if s["shortfall"] > 0]
    out["target"] = round(out["target"], 1)
    out.update(
        generation_s=round(generation_s, 3),
        drain_s=round(drain_s, 3),
        failed_by_reason=failed,
        requests_by_outcome=outcomes,
        target_rate=round(out["target"] / gen, 1),
        achieved_rate=round(out["generated"] / gen if achieved_rate is None else achieved_rate, 1),
        delivered_rate=round(
            out["delivered"] / gen if delivered_rate is None else delivered_rate, 1
        ),
        requests_rate=round(out["requests"] / gen, 1),
        mib_per_s=round(out["bytes_delivered"] / gen / MIB, 4),
        records_per_request=round(out["records_sent"] / out["requests"], 1)
        if out["requests"]
        else None,
        shortfall_events=max(0, round(out["target"] - out["generated"])),
        seconds_below_target=len(below),
        seconds_with_target=len(generating),
        request_latency_ms=request.summary_ms(),
        ack_latency_ms=ack.summary_ms((0.5, 0.99)),
        cost_usd=round(out["bytes_billed"] / GIB * price_per_gb, 6),
        price_per_gb=price_per_gb,
    )
    out["target_missed"] = bool(below) or (
        out["target"] > 0 and out["generated"] < out["target"] * (1 - TOLERANCE) - 1
    )
    out["histograms"] = {"request": request.to_json(), "ack": ack.to_json()}
    return out


def quota_json(region: str) -> dict[str, Any]:
    quota = default_quota(region)
    return {
        "region": region,
        "records_per_s": quota.records_per_s,
        "requests_per_s": quota.requests_per_s,
        "bytes_per_s": quota.bytes_per_s,
        "mib_per_s": round(quota.bytes_per_s / MIB, 2),
    }


# -- merge -----------------------------------------------------------------------------------


class MergeError(Exception):
    """Reports that cannot form one test (missing index, other test, wrong shape)."""


def merge(reports: Sequence[Report]) -> Report:
    """One report for a fleet: slices aligned by wall-clock second and summed, totals from them.

    Raises MergeError naming every missing fleet index (and for mixed tests)."""
    if not reports:
        raise MergeError("no reports to merge")
    tests = {r.get("test_id") for r in reports}
    if len(tests) > 1:
        raise MergeError(f"reports of different tests: {sorted(map(str, tests))}")
    sizes = {r["fleet"]["size"] for r in reports}
    if len(sizes) > 1:
        raise MergeError(f"reports with different fleet sizes: {sorted(sizes)}")
    size = sizes.pop()
    indices: list[int] = sorted(i for r in reports for i in r["fleet"]["indices"])
    missing = sorted(set(range(size)) - set(indices))
    if missing:
        raise MergeError(
            f"missing fleet index {', '.join(map(str, missing))} of {size} "
            f"(have {', '.join(map(str, indices)) or 'none'})"
        )
    duplicated = sorted({i for i in indices if indices.count(i) > 1})
    if duplicated:
        raise MergeError(f"fleet index {', '.join(map(str, duplicated))} given more than once")
    first_start = min(r["started_unix"] for r in reports)
    merged_slices: dict[int, dict[str, Any]] = {}
    for report in reports:
        offset = round(report["started_unix"] - first_start)
        for position, piece in enumerate(report["slices"]):
            _add_slice(merged_slices, offset + position, piece)
    slices = [derive_slice(merged_slices[i]) for i in sorted(merged_slices)]
    price = reports[0]["totals"]["price_per_gb"]
    out: Report = {key: value for key, value in reports[0].items() if key not in _PER_RUN}
    out.update(
        runs=[run for r in sorted(reports, key=_index) for run in r["runs"]],
        fleet={"size": size, "indices": indices},
        run_ids=[run["run_id"] for r in sorted(reports, key=_index) for run in r["runs"]],
        started_unix=first_start,
        started_at=min(r["started_at"] for r in reports),
        stopped_by=sorted({r["stopped_by"] for r in reports}),
        merged_from=len(reports),
        slices=slices,
        find_max=None,
        totals=totals(
            slices,
            generation_s=max(r["totals"]["generation_s"] for r in reports),
            drain_s=max(r["totals"]["drain_s"] for r in reports),
            price_per_gb=price,
            achieved_rate=sum(r["totals"]["achieved_rate"] for r in reports),
            delivered_rate=sum(r["totals"]["delivered_rate"] for r in reports),
        ),
    )
    return out


_PER_RUN = frozenset({"runs", "run_ids", "slices", "totals", "find_max", "started_unix"})


def _index(report: Report) -> int:
    indices: list[int] = report["fleet"]["indices"]
    return min(indices)


def _add_slice(merged: dict[int, dict[str, Any]], index: int, piece: Mapping[str, Any]) -> None:
    into = merged.get(index)
    if into is None:
        merged[index] = {
            **{name: piece[name] for name in SUMMED},
            "start_s": float(index),
            "duration_s": piece["duration_s"],
            "phase": piece["phase"],
            "target_rate": piece["target_rate"],
            "failed_by_reason": dict(piece["failed_by_reason"]),
            "requests_by_outcome": dict(piece["requests_by_outcome"]),
            "histograms": dict(piece["histograms"]),
        }
        return
    for name in (*SUMMED, "target_rate"):
        into[name] += piece[name]
    into["duration_s"] = max(into["duration_s"], piece["duration_s"])
    if into["phase"] != piece["phase"]:
        into["phase"] = "generation" if "generation" in (into["phase"], piece["phase"]) else "mixed"
    for field in ("failed_by_reason", "requests_by_outcome"):
        for key, n in piece[field].items():
            into[field][key] = into[field].get(key, 0) + n
    for kind in ("request", "ack"):
        hist = LogHistogram.from_json(into["histograms"][kind])
        hist.merge(LogHistogram.from_json(piece["histograms"][kind]))
        into["histograms"][kind] = hist.to_json()


def check_shape(report: object, name: str) -> Report:
    """The parts of a report that merge reads; ValueError naming what is wrong."""
    if not isinstance(report, dict) or report.get("kind") != REPORT_KIND:
        raise ValueError(f'{name}: not an ingest loadtest report (no "kind": {REPORT_KIND!r})')
    for key in ("runs", "slices", "totals", "fleet", "started_unix", "started_at"):
        if key not in report:
            raise ValueError(f"{name}: report has no {key!r}")
    try:
        for piece in report["slices"]:
            LogHistogram.from_json(piece["histograms"]["request"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{name}: malformed slice ({exc})") from None
    return report


# -- the table -------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def render_table(report: Report) -> str:
    """The readable summary printed at the end (plain text; rich only lays it out)."""
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    t = report["totals"]
    buffer = StringIO()
    console = Console(file=buffer, width=150, force_terminal=False, color_system=None)
    head = Table(title=_title(report), show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold", min_width=28)
    head.add_column()
    reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(t["failed_by_reason"].items()))
    rl, al = t["request_latency_ms"], t["ack_latency_ms"]
    rows = [
        ("run id(s)", ", ".join(report["run_ids"])),
        ("target", f"{report['target']['stream']} in {report['target']['region']} "
                   f"({report['target']['kind']})"),
        ("profile", _profile_text(report)),
        ("generation / drain", f"{t['generation_s']:,.1f} s / {t['drain_s']:,.1f} s "
                               f"(stopped by {_stopped(report)})"),
        ("target rate", f"{t['target_rate']:,.0f} events/s ({t['target']:,.0f} events)"),
        ("achieved rate", f"{t['achieved_rate']:,.0f} events/s ({t['generated']:,} generated)"),
        ("delivered", f"{t['delivered']:,} ({t['delivered_rate']:,.0f}/s, "
                      f"{t['mib_per_s']:,.3f} MiB/s)"),
        ("failed", f"{t['failed']:,}" + (f" ({reasons})" if reasons else "")),
        ("retried", f"{t['retried']:,}"),
        ("throttled", f"{t['throttled_records']:,} records, {t['throttled_requests']:,} "
                      f"requests ({t['records_in_throttled_requests']:,} records in them)"),
        ("requests", f"{t['requests']:,} ({t['requests_rate']:,.1f}/s, "
                     f"{t['records_per_request'] or 0:,.1f} records per request)"),
        ("PutRecordBatch latency ms", f"p50 {_ms(rl['p50_ms'])}  p90 {_ms(rl['p90_ms'])}  "
                                      f"p99 {_ms(rl['p99_ms'])}  max {_ms(rl['max_ms'])}"),
        ("put-to-ack latency ms", f"p50 {_ms(al['p50_ms'])}  p99 {_ms(al['p99_ms'])}"),
        ("Firehose records", f"{t['firehose_records']:,} accepted (events are packed when "
                             "fewer than delivered)"),
        ("bytes sent / delivered", f"{t['bytes_sent']:,} / {t['bytes_delivered']:,}"),
        ("bytes billed (5 KB units)", f"{t['bytes_billed']:,}"),
        ("cost estimate", f"{t['cost_usd']:,.6f} USD at {t['price_per_gb']} USD/GB"),
    ]  # fmt: skip
    for label, value in rows:
        head.add_row(label, value)
    console.print(head)
    if t["target_missed"]:
        console.print(
            f"TARGET MISSED: {t['seconds_below_target']} of {t['seconds_with_target']} seconds "
            f"more than {TOLERANCE:.0%} below target; {t['shortfall_events']:,} events short "
            f"({t['achieved_rate']:,.0f} of {t['target_rate']:,.0f} events/s)"
        )
    else:
        console.print(f"target met: every second within {TOLERANCE:.0%} of the profile")
    if report.get("find_max"):
        console.print(_find_max_table(report["find_max"]))
    if len(report["slices"]) <= MAX_TABLE_SLICES:
        console.print(_slices_table(report["slices"]))
    else:
        console.print(
            f"({len(report['slices'])} seconds: the per-second table is in the JSON "
            "and HTML reports)"
        )
    return buffer.getvalue().rstrip() + "\n"


def _title(report: Report) -> str:
    merged = report.get("merged_from")
    what = f"merged report of {merged} processes" if merged else "load test report"
    return f"ingest loadtest: {what} (test {report.get('test_id') or report['run_ids'][0]})"


def _stopped(report: Report) -> str:
    stopped = report["stopped_by"]
    return ", ".join(stopped) if isinstance(stopped, list) else str(stopped)


def _profile_text(report: Report) -> str:
    p = report["profile"]
    if report.get("find_max"):
        return f"find-max from {p['rate']:,.0f} events/s"
    if p["kind"] == "constant":
        return "constant, as fast as possible" if p["rate"] == 0 else f"constant {p['rate']:,.0f}/s"
    if p["kind"] == "ramp":
        return f"ramp {p['rate']:,.0f}/s to {p['ramp_to']:,.0f}/s over {p['ramp_s']:,.0f} s"
    cap = "" if p.get("ramp_to") is None else f" up to {p['ramp_to']:,.0f}/s"
    return f"steps from {p['rate']:,.0f}/s, +{p['step']:,.0f}/s every {p['step_every_s']} s{cap}"


def _find_max_table(result: Mapping[str, Any]) -> Any:
    from rich.table import Table

    q = result["quota_defaults"]
    best = result.get("best")
    if best:
        records = _pct(best["records_per_s"], q["records_per_s"])
        requests = _pct(best["requests_per_s"], q["requests_per_s"])
        mib = _pct(best["mib_per_s"], q["mib_per_s"])
        title = (
            f"find-max: highest sustained {best['rate']:,.0f} events/s: "
            f"{best['records_per_s']:,.0f} records/s ({records} of the {q['region']} default "
            f"quota), {best['requests_per_s']:,.1f} requests/s ({requests}), "
            f"{best['mib_per_s']:,.3f} MiB/s ({mib}); limited by {result['limited_by']}"
        )
    else:
        title = f"find-max: no rate was sustained (limited by {result['limited_by']})"
    table = Table(title=title, title_justify="left")
    for name in ("step", "phase", "rate/s", "achieved/s", "delivered/s", "requests/s", "MiB/s",
                 "throttled", "p99 ms", "verdict"):  # fmt: skip
        table.add_column(name, justify="right")
    for i, step in enumerate(result["steps"]):
        table.add_row(
            str(i + 1), step["phase"], f"{step['rate']:,.0f}", f"{step['achieved_rate']:,.0f}",
            f"{step['records_per_s']:,.0f}", f"{step['requests_per_s']:,.1f}",
            f"{step['mib_per_s']:,.3f}",
            f"{step['throttled_records']:,}/{step['throttled_requests']:,}",
            _ms(step["p99_ms"]), step["verdict"],
        )  # fmt: skip
    return table


def _pct(value: float, of: float) -> str:
    return f"{value / of:.1%}" if of else "—"


def _slices_table(slices: Iterable[Mapping[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="per second", title_justify="left", box=None, header_style="bold")
    for name in ("s", "phase", "target", "generated", "delivered", "failed", "retried",
                 "throttled rec/req", "req", "rec/req", "p50 ms", "p99 ms", "ack p99 ms",
                 "MiB/s"):  # fmt: skip
        table.add_column(name, justify="right")
    for s in slices:
        short = " !" if s["shortfall"] else ""
        table.add_row(
            f"{s['start_s']:.1f}", s["phase"], f"{s['target']:,.0f}",
            f"{s['generated']:,}{short}", f"{s['delivered']:,}", f"{s['failed']:,}",
            f"{s['retried']:,}", f"{s['throttled_records']:,}/{s['throttled_requests']:,}",
            f"{s['requests']:,}", f"{s['records_per_request'] or 0:,.0f}",
            _ms(s["request_latency_ms"]["p50_ms"]), _ms(s["request_latency_ms"]["p99_ms"]),
            _ms(s["ack_latency_ms"]["p99_ms"]), f"{s['mib_per_s']:,.3f}",
        )  # fmt: skip
    return table


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
