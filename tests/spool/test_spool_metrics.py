"""/metrics shows the dead-letter spool: ingest_records_spooled_total{reason} (every known
reason from 0) and ingest_spool_bytes, read from the spool at scrape time."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from ingest import Producer
from ingest.producer.stats import FailedRecord
from ingest.service.health import Health, RunState
from ingest.service.metrics import ProducerCollector, build_registry
from ingest.spool.deadletter import DeadLetterSpool


def scrape(producer: Producer, state: RunState) -> str:
    health = Health(producer, state, stall_timeout_s=30, unreachable_after_s=10)
    registry = build_registry(ProducerCollector(producer, state, health, {"version": "0"}))
    return generate_latest(registry).decode()


async def test_spool_metrics_start_at_zero_and_follow_the_spool(tmp_path: Path) -> None:
    spool = DeadLetterSpool(tmp_path / "spool", stream="s", writer_id="m")
    state = RunState(spool=spool)
    producer = Producer()
    text = scrape(producer, state)
    assert 'ingest_records_spooled_total{reason="throttled"} 0.0' in text
    assert "ingest_spool_bytes 0.0" in text
    await spool.handle([FailedRecord(b"x\n", "throttled", "slow down", 3)] * 2)
    text = scrape(producer, state)
    assert 'ingest_records_spooled_total{reason="throttled"} 2.0' in text
    assert f"ingest_spool_bytes {float(spool.bytes)}" in text
    assert spool.bytes > 0
    await spool.close()
