"""`--find-max` against emulator processes with a records/s, requests/s or bytes/s quota: the
highest sustained rate it reports is within 10 % of whichever quota binds.

Small quotas keep the rates (and the CPU the test needs) low; each search holds its steps 2 s and
starts at 80 % of its quota, so that its second step (160 %) is throttled within the hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.emulator.testing import run_emulator_process
from tests.loadtest.conftest import loadtest, read_report

RECORDS_QUOTA = 2500  # records/s, events of ~150 bytes
REQUESTS_QUOTA = 8  # requests/s; --linger 1 makes every request a full batch of 500
BYTES_QUOTA = 2_000_000  # bytes/s, events of 1,000 bytes (2,000 events/s)


async def _find_max(tmp_path: Path, name: str, quota: list[str], *args: str) -> dict[str, Any]:
    report = tmp_path / f"{name}.json"
    async with run_emulator_process(tmp_path / name, *quota) as emulator:
        done = await loadtest(
            "--endpoint-url", emulator.endpoint_url, "--find-max", "--hold", "2",
            "--report", str(report), *args, timeout=120,
        )  # fmt: skip
        stats = await emulator.stats()
    assert done.code == 0, done.stderr[-2000:]
    data = read_report(report)
    data["emulator"] = stats
    data["stdout"] = done.stdout
    return data


async def test_find_max_lands_within_10_percent_of_each_kind_of_quota(tmp_path: Path) -> None:
    records = await _find_max(
        tmp_path, "records", ["--quota-records-per-s", str(RECORDS_QUOTA)], "--rate", "2000"
    )
    requests = await _find_max(
        tmp_path, "requests", ["--quota-requests-per-s", str(REQUESTS_QUOTA)],
        "--rate", "3200", "--linger", "1",
    )  # fmt: skip
    nbytes = await _find_max(
        tmp_path, "bytes", ["--quota-bytes-per-s", str(BYTES_QUOTA)],
        "--rate", "1600", "--event-size", "1000",
    )  # fmt: skip
    for data, field, quota in (
        (records, "records_per_s", RECORDS_QUOTA),
        (requests, "requests_per_s", REQUESTS_QUOTA),
        (nbytes, "bytes_per_s", BYTES_QUOTA),
    ):
        result = data["find_max"]
        best = result["best"]
        assert result["limited_by"] == "throttling"
        assert best is not None, result
        # The measured ceiling is the quota that binds; the result backs off just below it.
        assert abs(result["ceiling"][field] - quota) <= 0.1 * quota, (field, result["ceiling"])
        assert abs(best[field] - quota) <= 0.1 * quota, (field, best)
        assert best["verdict"] == "ok"
        assert any(step["verdict"] == "throttled" for step in result["steps"])
        # Next to the region's default quotas, in the table too.
        assert result["quota_defaults"]["records_per_s"] == 500_000
        assert "find-max: highest sustained" in data["stdout"]
        # The report's accounting agrees with the emulator's.
        totals = data["totals"]
        assert totals["delivered"] == data["emulator"]["records_accepted"]
        assert totals["generated"] == data["runs"][0]["events_generated"] == totals["delivered"]
    assert requests["find_max"]["best"]["rate"] <= REQUESTS_QUOTA * 500 * 1.1
