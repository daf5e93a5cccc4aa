"""`ingest run --pack-bytes / --pack-compression gzip` as a user runs it: gzip objects that read
back, cost figures in /metrics and the summary, plain errors for bad values."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families


def samples(body: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if not sample.labels
    }


def test_gzip_packed_run_delivers_readable_gzip_and_reports_its_cost(
    service: Any, tmp_path: Path
) -> None:
    data = tmp_path / "objects"
    run = service(
        ["--local", "--count", "30000", "--rate", "10000", "--local-data-dir", str(data),
         "--pack-bytes", "--pack-compression", "gzip", "--log-format", "json"]
    )  # fmt: skip
    body = run.wait_until(
        "/metrics",
        lambda status, text: (
            status == 200 and samples(text).get("ingest_records_delivered_total", 0) > 5000
        ),
    )
    during = samples(body)
    assert run.finish() == 0
    assert 1 <= during["ingest_inflight_limit"] <= 8
    assert during["ingest_events_per_record"] > 20  # ~5,120-byte records of ~140-byte events
    assert (
        during["ingest_billed_bytes_total"]
        == 5120 * during["ingest_firehose_records_delivered_total"]
    )
    summary = orjson.loads(run.stdout.splitlines()[-1])
    assert summary["delivered"] == 30000
    assert summary["events_per_record"] > 20
    assert summary["bytes_sent"] < summary["bytes_delivered"] / 2  # gzip: far fewer bytes sent
    objects = [p for p in data.rglob("*") if p.is_file() and ".tmp" not in p.parts]
    assert objects
    lines = [
        orjson.loads(line)
        for path in objects
        for line in gzip.decompress(path.read_bytes()).splitlines()  # multi-member gzip
    ]
    assert sorted(event["seq"] for event in lines) == list(range(30000))


def test_bad_packing_flags_exit_2_naming_the_key(tmp_path: Path) -> None:
    for flags, key in (
        (["--pack-bytes", "0"], "pack_bytes"),
        (["--pack-bytes", "2000000"], "pack_bytes"),
        (["--pack-compression", "zstd"], "pack_compression"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ingest", "run", "--local", "--count", "1", *flags],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert f"configuration error: {key}: invalid value" in result.stderr
        assert "Traceback" not in result.stderr
