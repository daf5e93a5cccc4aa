"""A destination with planted losses, duplicates and damage, and the exact counts to find."""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.events import EventGenerator


def firehose_key(stream: str = "aws-ml-cert", *, at: float | None = None) -> str:
    """A key as Firehose names objects: YYYY/MM/dd/HH/<stream>-1-YYYY-MM-dd-HH-mm-ss-<uuid>."""
    when = time.gmtime(time.time() if at is None else at)
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", when)
    return f"{time.strftime('%Y/%m/%d/%H', when)}/{stream}-1-{stamp}-{uuid.uuid4()}"


def planted_objects() -> dict[str, bytes]:
    """Objects of three run ids with known damage (see PLANTED for what must be found).

    run A, 2,000 events: seqs 100-104 deleted; seq 200 copied twice more; 1000-1999 in a gzip
    object of two members, and that whole object copied; a line with a string seq (malformed,
    names A). run B, 300 padded events: only 0-249 arrived, 249 as an object's last line
    without its newline. Unattributed: a line that is not JSON, and a truncated last line.
    run C: in the report, nothing at the destination.
    """
    a = EventGenerator(run_id="A").batch(2000)
    b = EventGenerator(run_id="B", event_size=400).batch(250)
    first = [e for seq, e in enumerate(a[:1000]) if not 100 <= seq <= 104] + [a[200], a[200]]
    members = gzip.compress(b"".join(a[1000:1500])) + gzip.compress(b"".join(a[1500:]))
    broken = b'not json\n{"id":"x","ts":"2026-01-01T00:00:00.000Z","seq":"7","producer":"A"}\n'
    broken += a[5][:60]  # cut mid-line, no newline
    copy_key = firehose_key() + ".gz"
    return {
        firehose_key(): b"".join(first),
        firehose_key() + ".gz": members,
        copy_key: members,
        "manual/odd-lines.ndjson": broken,  # no time in the name: its mtime is its time
        firehose_key("other-stream"): b"".join(b[:249]) + b[249].rstrip(b"\n"),
    }


REPORT = {"runs": [{"run_id": "A", "events_generated": 2000},
                   {"run_id": "B", "events_generated": 300},
                   {"run_id": "C", "events_generated": 10}]}  # fmt: skip

PLANTED: dict[str, dict[str, Any]] = {
    "A": {"expected": 2000, "delivered_unique": 1995, "missing": 5, "missing_ranges": [[100, 104]],
          "duplicated_events": 1002, "duplicated_seqs": 1001, "worst_multiplicity": 3,
          "malformed_lines": 1, "lines_without_newline": 0},
    "B": {"expected": 300, "delivered_unique": 250, "missing": 50, "missing_ranges": [[250, 299]],
          "duplicated_events": 0, "duplicated_seqs": 0, "worst_multiplicity": 1,
          "malformed_lines": 0, "lines_without_newline": 1},
    "C": {"expected": 10, "delivered_unique": 0, "missing": 10, "missing_ranges": [[0, 9]],
          "duplicated_events": 0, "duplicated_seqs": 0, "worst_multiplicity": 0,
          "malformed_lines": 0, "lines_without_newline": 0},
}  # fmt: skip
PLANTED_TOTALS = {"objects": 5, "lines": 997 + 1000 + 1000 + 3 + 250,
                  "malformed_unattributed": 2, "no_newline_unattributed": 1}  # fmt: skip


def assert_planted(found: dict[str, Any]) -> None:
    """`found` (verify's JSON) holds exactly the planted counts."""
    runs = {run["run_id"]: run for run in found["runs"]}
    assert sorted(runs) == ["A", "B", "C"]
    for run_id, want in PLANTED.items():
        got = {name: runs[run_id][name] for name in want}
        assert got == want, run_id
    for name, want in PLANTED_TOTALS.items():
        assert found[name] == want, name
    assert found["missing"] == 65
    assert found["ok"] is False


def write_tree(root: Path, objects: dict[str, bytes]) -> Path:
    for key, data in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def planted_dir(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "dest", planted_objects())
    (root / ".tmp").mkdir()
    (root / ".tmp" / "half-written.part").write_bytes(b'{"garbage')  # skipped, as readers must
    return root


@pytest.fixture
def report_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(REPORT))
    return path
