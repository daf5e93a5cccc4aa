"""The README documents every configuration key and metric the code has."""

from __future__ import annotations

from pathlib import Path

from ingest.service.keys import KEYS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
METRICS = (
    "ingest_records_put_total", "ingest_records_delivered_total", "ingest_records_failed_total",
    "ingest_records_retried_total", "ingest_requests_total", "ingest_throttled_total",
    "ingest_bytes_delivered_total", "ingest_records_throttled_total",
    "ingest_delivered_bytes_total", "ingest_queue_records", "ingest_inflight_requests",
    "ingest_request_duration_seconds",
)  # fmt: skip


def test_every_key_is_in_the_configuration_table() -> None:
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for key in KEYS:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{key.name}` |"))
        assert f"`{key.flag}`" in row
        for env in (key.env, *key.aws_env):
            assert f"`{env}`" in row


def test_sections_and_metrics_are_documented() -> None:
    for heading in ("## Running the service", "## Configuration", "## Docker"):
        assert heading in README
    for name in METRICS:
        assert f"`{name}" in README
