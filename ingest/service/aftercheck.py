"""What `ingest run` does after the drain when asked: read its own events back from the
embedded emulator's files (`--verify`) and write the run's JSON report (`--report FILE`).

The report is the cross-tool contract read by `ingest verify --report`: a top-level "runs" list
of {"run_id", "events_generated"}, plus the run summary ("summary") and, with --verify, the
verification ("verify").
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson
import structlog

from ingest.cli import EXIT_FAILURE, EXIT_OK
from ingest.emulator import Emulator
from ingest.verify import VerifyError, VerifyResult, verify_destination

log = structlog.get_logger(__name__)


async def verify_run(
    emulator: Emulator, run_id: str, generated: int, *, since_s: float | None, json_line: bool
) -> VerifyResult | None:
    """Flush the emulator (what its buffer interval would do, without the wait), then count
    how many of this run's `generated` events reached its files; print one line (or one JSON
    object with `json_line`) and log `verify_finished`. None (logged as `verify_failed`, and
    printed) when the files could not be written or read."""
    try:
        await emulator.flush()
        result = await verify_destination(
            data_dir=emulator.data_dir, expected={run_id: generated}, since_s=since_s
        )
    except (OSError, ValueError, VerifyError) as exc:
        log.error("verify_failed", error=str(exc))
        if json_line:
            print(orjson.dumps({"event": "verify_summary", "ok": False, "error": str(exc)})
                  .decode(), flush=True)  # fmt: skip
        else:
            print(f"verify: could not check the emulator's files: {exc}", flush=True)
        return None
    run = result.runs[0]
    fields = {
        "run_id": run_id,
        "data_dir": str(emulator.data_dir),
        "objects": result.objects,
        "expected": generated,
        "delivered_unique": run.delivered_unique,
        "missing": run.missing,
        "missing_ranges": [list(pair) for pair in run.missing_ranges],
        "duplicated_events": run.duplicated_events,
        "malformed_lines": run.malformed_lines + result.malformed_unattributed,
        "latency_p50_s": run.latency_p50_s,
        "latency_p99_s": run.latency_p99_s,
        "latency_max_s": run.latency_max_s,
        "ok": run.ok,
    }
    log.info("verify_finished", **fields)
    if json_line:
        print(orjson.dumps({"event": "verify_summary", **fields}).decode(), flush=True)
    else:
        print(_sentence(result, generated, str(emulator.data_dir)), flush=True)
    return result


def _sentence(result: VerifyResult, generated: int, where: str) -> str:
    run = result.runs[0]
    text = (
        f"verify: {run.delivered_unique:,} of {generated:,} events reached the emulator's files "
        f"in {where} ({result.objects:,} object{'' if result.objects == 1 else 's'})"
    )
    details = []
    if run.missing:
        first = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in run.missing_ranges[:3])
        details.append(f"{run.missing:,} MISSING (first seqs: {first})")
    if run.duplicated_events:
        details.append(f"{run.duplicated_events:,} duplicates")
    if run.malformed_lines or result.malformed_unattributed:
        details.append(f"{run.malformed_lines + result.malformed_unattributed:,} malformed lines")
    if run.latency_p50_s is not None:
        details.append(f"latency p50 {run.latency_p50_s:.2f} s, p99 {run.latency_p99_s:.2f} s")
    return text + (f"; {'; '.join(details)}" if details else "")


def verify_exit_code(result: VerifyResult | None) -> int:
    return EXIT_OK if result is not None and result.ok else EXIT_FAILURE


def report_data(
    run_id: str, generated: int, summary: dict[str, object], verified: VerifyResult | None
) -> dict[str, Any]:
    """The report's content: the contract's "runs" entry, the summary, the verification."""
    data: dict[str, Any] = {
        "runs": [{"run_id": run_id, "events_generated": generated}],
        "summary": summary,
    }
    if verified is not None:
        data["verify"] = verified.as_dict()
    return data


async def write_report(path: Path, data: dict[str, Any]) -> bool:
    """Write `data` as JSON to `path` atomically (a temporary file renamed into place); False
    (and a `report_failed` log line) when it cannot be written."""

    def write() -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(tmp, path)

    try:
        await asyncio.to_thread(write)
    except OSError as exc:
        log.error("report_failed", path=str(path), error=exc.strerror or str(exc))
        return False
    log.info("report_written", path=str(path))
    return True
