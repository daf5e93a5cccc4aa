"""`ingest verify --data-dir`: planted losses, copies and damage are found with exact counts."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from ingest.cli import main
from ingest.events import EventGenerator
from ingest.verify import verify_destination
from tests.verify.conftest import PLANTED, assert_planted, firehose_key, write_tree


def verify_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["verify", *argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_planted_damage_is_found_exactly_with_a_report(
    planted_dir: Path, report_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = verify_json(capsys, "--data-dir", str(planted_dir), "--report", str(report_file))
    assert code == 1
    assert_planted(found)
    assert found["objects_timed_by_name"] == 4  # the fifth has no time in its name: mtime
    assert found["objects_damaged"] == 0


def test_the_table_says_the_same(
    planted_dir: Path, report_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["verify", "--data-dir", str(planted_dir), "--report", str(report_file)])
    out = capsys.readouterr().out
    assert code == 1
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:2] in "A B C "}
    #        run id, expected, delivered, missing, duplicated, worst, malformed, no newline
    assert rows["A"][:8] == ["A", "2,000", "1,995", "5", "1,002", "x3", "1", "0"]
    assert rows["B"][:8] == ["B", "300", "250", "50", "0", "-", "0", "1"]
    assert rows["C"][:8] == ["C", "10", "0", "10", "0", "-", "0", "0"]
    assert "missing seqs: 100-104" in out
    assert "missing seqs: 250-299" in out
    assert "2 malformed lines without a run id (1 without a newline)" in out
    assert "65 events MISSING in 3 of 3 run ids (exit 1)" in out


def test_expect_applies_to_every_run_id_found(
    planted_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = verify_json(capsys, "--data-dir", str(planted_dir), "--expect", "2000")
    assert code == 1
    runs = {run["run_id"]: run for run in found["runs"]}
    assert sorted(runs) == ["A", "B"]  # C is only in the report
    assert runs["A"]["missing"] == 5
    assert runs["B"]["missing"] == 1750
    assert runs["B"]["missing_ranges"] == [[250, 1999]]


def test_run_id_reconciles_one_run_and_ignores_the_others(
    planted_dir: Path, report_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = verify_json(
        capsys, "--data-dir", str(planted_dir), "--expect", "250", "--run-id", "B"
    )
    assert code == 0  # B's first 250 all arrived
    assert [run["run_id"] for run in found["runs"]] == ["B"]
    assert found["runs"][0]["delivered_unique"] == 250
    assert found["ignored_events"] == 997 + 2000  # A's events, copies included

    code, found = verify_json(
        capsys, "--data-dir", str(planted_dir), "--report", str(report_file), "--run-id", "C"
    )
    assert code == 1
    assert [(run["run_id"], run["missing"]) for run in found["runs"]] == [("C", 10)]

    code, found = verify_json(capsys, "--data-dir", str(planted_dir), "--run-id", "nobody")
    assert code == 1  # nothing of it arrived and nothing says how much was expected
    assert found["runs"][0]["delivered_unique"] == 0


def test_without_expectation_the_highest_seq_seen_bounds_the_run(
    planted_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = verify_json(capsys, "--data-dir", str(planted_dir))
    assert code == 1
    runs = {run["run_id"]: run for run in found["runs"]}
    assert runs["A"]["expected"] is None
    assert runs["A"]["missing"] == 5
    assert runs["B"]["missing"] == 0  # a lost tail cannot be seen without --expect/--report
    assert runs["B"]["highest_seq"] == 249


def test_a_complete_destination_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = EventGenerator(run_id="ok").batch(5000)
    write_tree(tmp_path, {firehose_key(): b"".join(events[:2500]),
                          firehose_key(): b"".join(events[2500:])})  # fmt: skip
    code = main(["verify", "--data-dir", str(tmp_path), "--expect", "5000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "every expected event arrived (1 run id) (exit 0)" in out


def test_an_empty_destination_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--data-dir", str(tmp_path), "--expect", "10"]) == 1
    assert "NO events found (exit 1)" in capsys.readouterr().out


def test_interleaved_run_ids_and_shuffled_batches_in_one_object(tmp_path: Path) -> None:
    a = EventGenerator(run_id="A").batch(3000)
    b = EventGenerator(run_id="B").batch(3000)
    batches = [a[i : i + 500] for i in range(0, 3000, 500)]
    batches += [b[i : i + 500] for i in range(0, 3000, 500)]
    order = [5, 6, 0, 11, 1, 7, 2, 8, 3, 9, 4, 10, 3]  # batch 3 of A twice, A and B mixed
    write_tree(tmp_path, {firehose_key(): b"".join(b"".join(batches[i]) for i in order)})
    result = asyncio_run(verify_destination(data_dir=tmp_path, expected=3000))
    runs = {run.run_id: run for run in result.runs}
    assert runs["A"].missing == 0
    assert runs["B"].missing == 0
    assert runs["A"].duplicated_events == 500
    assert runs["A"].worst_multiplicity == 2
    assert runs["B"].duplicated_events == 0
    assert result.lines == 6500
    assert result.ok


def test_latency_is_measured_to_the_time_in_the_object_name(tmp_path: Path) -> None:
    events = EventGenerator(run_id="late").batch(100)
    ts_s = json.loads(events[0])["ts"]
    later = time.mktime(time.strptime(ts_s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + 7
    write_tree(tmp_path, {firehose_key(at=later): b"".join(events)})
    # An object without a time in its name is timed by its mtime.
    (tmp_path / "plain").write_bytes(b"".join(EventGenerator(run_id="mtime").batch(10)))
    os.utime(tmp_path / "plain", (time.time() + 60, time.time() + 60))
    result = asyncio_run(verify_destination(data_dir=tmp_path))
    runs = {run.run_id: run for run in result.runs}
    late = runs["late"]
    # 7 s after the event's second, minus its milliseconds (names have 1 s resolution).
    assert late.latency_samples == 100
    assert late.latency_max_s is not None
    assert 6.0 < late.latency_max_s <= 7.0
    assert late.latency_p50_s is not None
    assert 6.0 < late.latency_p50_s <= 7.0
    assert runs["mtime"].latency_p50_s is not None
    assert 58 < runs["mtime"].latency_p50_s < 62
    assert result.objects_timed_by_name == 1


def test_gzip_damage_and_overlong_lines(tmp_path: Path) -> None:
    events = EventGenerator(run_id="z").batch(1000)
    whole = gzip.compress(b"".join(events[:500]))
    write_tree(tmp_path, {
        "cut.gz": whole[: len(whole) // 2],  # truncated gzip: damaged, what was read counts
        "trailing.gz": gzip.compress(b"".join(events[500:])) + b"JUNK",
        "long": b"x" * 3_000_000 + b"\n" + events[0],  # a 3 MB line is skipped, not kept
    })  # fmt: skip
    result = asyncio_run(verify_destination(data_dir=tmp_path, expected=1000))
    assert result.objects_damaged == 2
    assert any("cut.gz" in text and "ends in the middle" in text for text in result.damage)
    assert any("trailing.gz" in text and "not gzip" in text for text in result.damage)
    run = result.runs[0]
    assert run.duplicated_events >= 1  # events[0] twice (from "long" and from "cut.gz")
    assert 500 <= run.delivered_unique < 1000
    assert result.malformed_unattributed >= 1  # the overlong line, at least


def asyncio_run(coro):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(coro)


@pytest.mark.parametrize("expected", [PLANTED["A"]["expected"]])
def test_the_python_helper_gives_the_same_counts(planted_dir: Path, expected: int) -> None:
    result = asyncio_run(verify_destination(data_dir=str(planted_dir), expected={"A": expected}))
    (run,) = result.runs
    assert (run.missing, run.duplicated_events, run.worst_multiplicity) == (5, 1002, 3)
    assert run.missing_ranges == [(100, 104)]
    assert result.ignored_events == 250


def test_gzip_records_inside_a_gzip_object(tmp_path: Path) -> None:
    """Packed, gzipped records (one gzip member each) in an object Firehose gzipped again."""
    events = EventGenerator(run_id="packed").batch(900)
    records = b"".join(gzip.compress(b"".join(events[i : i + 100])) for i in range(0, 900, 100))
    write_tree(tmp_path, {firehose_key() + ".gz": gzip.compress(records),
                          firehose_key(): records})  # fmt: skip
    result = asyncio_run(verify_destination(data_dir=tmp_path, expected=900))
    (run,) = result.runs
    assert (run.delivered_unique, run.missing, run.duplicated_events) == (900, 0, 900)
    assert result.objects_damaged == 0
    assert result.lines == 1800
