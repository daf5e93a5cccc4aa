"""A fleet of three `ingest loadtest` processes against one emulator forms one test: `merge` sums
them (and names a missing index, exit 1), and the merged HTML report draws its charts in
headless Chromium, offline."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from ingest.emulator.testing import run_emulator_process
from tests.loadtest.conftest import loadtest, read_report

CHROMIUM = "/usr/bin/chromium"
TEST_ID = "fleet42"


def _merge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", "loadtest", "merge", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _render(page: Path, profile: Path) -> str:
    """The DOM of `page` after its scripts ran, from headless Chromium with no network use."""
    done = subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
            "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no name resolves
            "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def test_a_fleet_of_three_merges_into_one_report_that_renders(tmp_path: Path) -> None:
    reports = [tmp_path / f"r{i}.json" for i in range(3)]
    async with run_emulator_process(tmp_path / "emulator") as emulator:
        common = ("--endpoint-url", emulator.endpoint_url, "--rate", "3000", "--duration", "2",
                  "--fleet-size", "3", "--test-id", TEST_ID)  # fmt: skip
        done = await asyncio.gather(
            loadtest(*common, "--fleet-index", "0", "--report", str(reports[0])),
            loadtest(*common, "--fleet-index", "1", "--report", str(reports[1])),
            # As in a Kubernetes Indexed Job: the index from the environment.
            loadtest(*common, "--report", str(reports[2]), env={"JOB_COMPLETION_INDEX": "2"}),
        )
        truth = await emulator.stats()
    assert [d.code for d in done] == [0, 0, 0], done[0].stderr[-2000:]
    parts = [read_report(path) for path in reports]
    assert [p["runs"][0]["run_id"] for p in parts] == [f"{TEST_ID}-{i}" for i in range(3)]
    assert [p["config"]["rate"] for p in parts] == [1000.0] * 3  # each its share of 3,000/s
    assert [p["totals"]["target"] for p in parts] == [2000] * 3

    merged_path, page = tmp_path / "merged.json", tmp_path / "merged.html"
    merged_run = _merge(*map(str, reversed(reports)), "--report", str(merged_path),
                        "--html", str(page))  # fmt: skip
    assert merged_run.returncode == 0, merged_run.stderr
    merged = read_report(merged_path)
    assert merged["runs"] == [p["runs"][0] for p in parts]  # what `ingest verify` reads
    assert merged["fleet"] == {"size": 3, "indices": [0, 1, 2]}
    for name in ("generated", "delivered", "failed", "retried", "throttled_records",
                 "requests", "bytes_sent", "bytes_delivered", "bytes_billed"):  # fmt: skip
        assert merged["totals"][name] == sum(p["totals"][name] for p in parts), name
    assert merged["totals"]["delivered"] == truth["records_accepted"] == 6000
    assert sum(s["delivered"] for s in merged["slices"]) == 6000
    assert "merged report of 3 processes" in merged_run.stdout

    missing = _merge(str(reports[0]), str(reports[2]))
    assert missing.returncode == 1
    assert "missing fleet index 1" in missing.stderr

    dom = _render(page, tmp_path / "chromium")
    for chart in ("rate", "throttling", "latency", "throughput"):
        drawn = re.search(rf'id="chart-{chart}".*?class="main-svg"', dom, re.S)
        assert drawn is not None, chart
    assert len(re.findall(r'class="[^"]*\btrace scatter\b', dom)) >= 10
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", html)  # no script fetched from anywhere
    assert len(html) > 1_000_000  # plotly.js is inlined
