"""`ingest verify` output: a readable table, or one JSON object."""

from __future__ import annotations

import orjson

from ingest.verify.tally import SATURATED
from ingest.verify.verify import RunResult, VerifyResult

_SHOWN_RANGES = 5  # in the table; --json carries every range asked for


def render_json(result: VerifyResult) -> str:
    return orjson.dumps(result.as_dict()).decode()


def _n(value: int) -> str:
    return f"{value:,}"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _latency(run: RunResult) -> str:
    if run.latency_p50_s is None:
        return "-"
    return f"{run.latency_p50_s:.2f} / {run.latency_p99_s:.2f} / {run.latency_max_s:.2f} s"


def _ranges(run: RunResult) -> str:
    shown = ", ".join(
        str(first) if first == last else f"{first}-{last}"
        for first, last in run.missing_ranges[:_SHOWN_RANGES]
    )
    more = run.missing_range_count - min(len(run.missing_ranges), _SHOWN_RANGES)
    return shown + (f" and {more:,} more ranges" if more > 0 else "")


def render_table(result: VerifyResult) -> str:
    """The human report: one row per run id, details below it, then the verdict."""
    timed = "the time in object names, 1 s resolution"
    if result.objects_timed_by_name < result.objects:
        by_mtime = result.objects - result.objects_timed_by_name
        timed += f" ({_plural(by_mtime, 'object')}: modification time)"
    lines = [
        f"ingest verify: {result.source}: {_plural(result.objects, 'object')}, "
        f"{_plural(result.lines, 'line')} "
        f"(latency: event ts to {timed})"
    ]
    header = ("run id", "expected", "delivered", "missing", "duplicated", "worst",
              "malformed", "no newline", "latency p50 / p99 / max")  # fmt: skip
    rows = [header]
    for run in result.runs:
        if run.expected is not None:
            expected = _n(run.expected)
        else:
            expected = _n(0 if run.highest_seq is None else run.highest_seq + 1) + "*"
        worst = "-" if run.worst_multiplicity < 2 else f"x{run.worst_multiplicity}"
        if run.worst_multiplicity >= SATURATED:
            worst += "+"
        rows.append((run.run_id, expected, _n(run.delivered_unique), _n(run.missing),
                     _n(run.duplicated_events), worst, _n(run.malformed_lines),
                     _n(run.lines_without_newline), _latency(run)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1], strict=True)]
        cells.append(row[-1])
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            continue
        run = result.runs[index - 1]
        if run.missing:
            lines.append(f"    missing seqs: {_ranges(run)}")
        if run.beyond_expected:
            beyond = _n(run.beyond_expected)
            lines.append(f"    {beyond} events with a seq beyond the expected range")
    if any(run.expected is None for run in result.runs):
        lines.append(
            "  * expected: highest seq seen + 1 (give --expect or --report to catch a lost tail)"
        )
    if not result.runs:
        lines.append("  (no events of the run ids asked for)")
    notes = []
    if result.malformed_unattributed:
        notes.append(f"{_n(result.malformed_unattributed)} malformed lines without a run id "
                     f"({_n(result.no_newline_unattributed)} without a newline)")  # fmt: skip
    if result.ignored_events:
        notes.append(f"{_n(result.ignored_events)} events of other run ids ignored")
    if result.objects_damaged:
        notes.append(f"{_n(result.objects_damaged)} damaged objects: " + "; ".join(result.damage))
    lines += [f"  {note}" for note in notes]
    lines.append(f"  result: {verdict(result)}")
    return "\n".join(lines)


def verdict(result: VerifyResult) -> str:
    """One sentence: complete, or what is missing; with the exit code."""
    if not result.runs:
        return "NO events found (exit 1)"
    failed = [run for run in result.runs if not run.ok]
    if not failed:
        dups = sum(run.duplicated_events for run in result.runs)
        extra = f", {dups:,} duplicates" if dups else ""
        runs = _plural(len(result.runs), "run id")
        return f"every expected event arrived ({runs}{extra}) (exit 0)"
    missing = sum(run.missing for run in failed)
    return (
        f"{_plural(missing, 'event')} MISSING in {len(failed)} of "
        f"{_plural(len(result.runs), 'run id')} (exit 1)"
        if missing
        else f"NO events of {_plural(len(failed), 'run id')} (exit 1)"
    )
