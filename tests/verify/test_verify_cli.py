"""`ingest verify` usage errors: exit 2, one plain line naming the option, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.cli import main


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "dest"
    path.mkdir()
    return path


def bad_usage(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["verify", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("ingest verify: ")
    return lines[0]


def test_exactly_one_destination(dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["--data-dir", str(dest), "--s3", "s3://bucket"]):
        line = bad_usage(capsys, *argv)
        assert "--data-dir" in line
        assert "--s3" in line


@pytest.mark.parametrize(
    "url", ["bucket/prefix", "s3://", "s3://B", "http://bucket/x", "s3://bucket?x=1", "s3://a"]
)
def test_malformed_s3_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = bad_usage(capsys, "--s3", url)
    assert line == (
        f"ingest verify: --s3: invalid value {url!r}; expected s3://BUCKET or s3://BUCKET/PREFIX"
    )


def test_bad_values_name_their_option(
    dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(dest)]
    assert "--expect: invalid value '-1'" in bad_usage(capsys, *d, "--expect", "-1")
    assert "--expect: invalid value 'ten'" in bad_usage(capsys, *d, "--expect", "ten")
    assert "--ranges: invalid value 'x'" in bad_usage(capsys, *d, "--ranges", "x")
    assert "--time-zone: invalid value 'Mars/Base'" in bad_usage(
        capsys, *d, "--time-zone", "Mars/Base"
    )
    assert "--data-dir: " in bad_usage(capsys, "--data-dir", str(tmp_path / "nope"))
    assert "--s3-endpoint-url: invalid value 'ftp://x'" in bad_usage(
        capsys, "--s3", "s3://bucket", "--s3-endpoint-url", "ftp://x"
    )
    assert "--s3-endpoint-url: only used with --s3" in bad_usage(
        capsys, *d, "--s3-endpoint-url", "http://127.0.0.1:1"
    )
    assert "--run-id: invalid value ''" in bad_usage(capsys, *d, "--run-id", "")
    report = tmp_path / "r.json"
    report.write_text('{"runs": []}')
    line = bad_usage(capsys, *d, "--expect", "5", "--report", str(report))
    assert "--expect and --report" in line


def test_unreadable_or_malformed_reports(
    dest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(dest)]
    missing = tmp_path / "missing.json"
    assert f"--report: cannot read {str(missing)!r}" in bad_usage(
        capsys, *d, "--report", str(missing)
    )
    cases = {
        "not json {": "is not JSON",
        "[1, 2]": 'has no "runs" list',
        '{"runs": {}}': 'has no "runs" list',
        '{"runs": [{"run_id": "a"}]}': "runs[0] is",
        '{"runs": [{"run_id": "a", "events_generated": -1}]}': "runs[0] is",
        '{"runs": [{"run_id": 5, "events_generated": 1}]}': "runs[0] is",
    }
    for text, reason in cases.items():
        report = tmp_path / "report.json"
        report.write_text(text)
        line = bad_usage(capsys, *d, "--report", str(report))
        assert line.startswith("ingest verify: --report: ")
        assert reason in line, line
    report.write_text(json.dumps({"runs": [{"run_id": "a", "events_generated": 1}]}))
    line = bad_usage(capsys, *d, "--report", str(report), "--run-id", "b")
    assert line.startswith("ingest verify: --run-id: 'b' is not in the runs of")


def test_unknown_flags_are_argparse_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--expected", "5"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --expected 5" in capsys.readouterr().err


def test_help_says_where_the_latency_is_measured_to(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the UTC time Firehose writes in the object name" in out
    assert "S3 LastModified" in out
    assert "modification time" in out


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`ingest verify ... | head -1`: a closed stdout is not an error worth a traceback."""
    import subprocess
    import sys

    from ingest.events import EventGenerator

    (tmp_path / "obj").write_bytes(b"".join(EventGenerator(run_id="r").batch(10)))
    child = subprocess.Popen(
        [sys.executable, "-m", "ingest", "verify", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    child.stdout.close()  # the reader is gone before anything is written
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0
    assert err == b""  # no traceback, no "Exception ignored" at exit either
