"""Against the emulator with faults on: nothing lost, only failed entries resent, duplicates only
from ambiguous outcomes and always counted."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ingest.emulator import Emulator, FaultOptions, QuotaOptions
from ingest.events import EventGenerator
from ingest.producer import FailedRecord, Producer, ProducerStats

STREAM = "aws-ml-cert"
FAST_RETRY: dict[str, Any] = {
    "backoff_base_s": 0.005,
    "backoff_cap_s": 0.05,
    "max_attempts": 40,
    "linger_s": 0.005,
}


async def send(emulator: Emulator, events: list[bytes], **options: Any) -> tuple[
    ProducerStats, list[FailedRecord], Counter[bytes]
]:  # fmt: skip
    """Put `events` through a producer into the emulator; return stats, failures, stored."""
    handed: list[FailedRecord] = []
    config = {**FAST_RETRY, **options}
    async with Producer(
        endpoint_url=emulator.endpoint_url, on_failure=handed.extend, **config
    ) as producer:
        receipts = await producer.put_many(events)
    assert sorted(await receipts.wait()) == sorted(handed)
    await emulator.flush()
    return producer.stats(), handed, emulator.stored_counts(STREAM)


def assert_accounted(
    events: list[bytes], stats: ProducerStats, failed: list[FailedRecord], stored: Counter[bytes]
) -> None:
    """Every event is delivered (stored) or failed, exactly once in the ledger; every extra
    stored copy is covered by duplicates_possible."""
    failed_data = Counter(record.data for record in failed)
    assert stats.records_put == len(events)
    assert stats.records_pending == 0
    assert stats.records_delivered + stats.records_failed_total == len(events)
    assert sum(failed_data.values()) == stats.records_failed_total
    for event in events:
        assert stored[event] >= 1 or failed_data[event] == 1, "event neither stored nor failed"
    assert set(stored) <= set(events)
    extra_copies = sum(count - 1 for count in stored.values())
    assert extra_copies <= stats.duplicates_possible


@pytest.fixture
def events() -> list[bytes]:
    return EventGenerator("faults", event_size=150).batch(3000)


async def test_no_faults_every_event_stored_once_in_order(
    emulator: Emulator, events: list[bytes]
) -> None:
    stats, failed, _ = await send(emulator, events, max_inflight=1)
    assert failed == []
    assert emulator.stored_records(STREAM) == events
    assert stats.requests == {"ok": 6}
    assert stats.bytes_delivered == 150 * len(events)
    assert stats.duplicates_possible == 0


async def test_per_record_failures_resend_only_the_failed_entries(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(FaultOptions(seed=3, record_failure_rate=0.2))
    stats, failed, stored = await send(emulator, events)
    assert failed == []
    assert stored == Counter(events)  # resending whole batches would have stored duplicates
    assert stats.records_retried >= 300
    assert stats.records_retried == emulator.stats.records_failed
    assert stats.requests["partial"] > 0
    assert stats.duplicates_possible == 0


async def test_throttling_quota_is_absorbed_by_backoff(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_quotas(QuotaOptions(records_per_s=1500))
    stats, failed, stored = await send(emulator, events[:2500], backoff_base_s=0.05)
    assert failed == []
    assert stored == Counter(events[:2500])
    assert stats.throttled > 0
    assert stats.duplicates_possible == 0


async def test_client_side_pacing_stays_under_the_quota(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_quotas(QuotaOptions(records_per_s=2000))
    stats, failed, stored = await send(emulator, events, records_per_s=1500)
    assert failed == []
    assert stored == Counter(events)
    assert stats.throttled == 0


async def test_500_and_503_bursts_are_retried_and_500s_counted_as_possible_duplicates(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(FaultOptions(seed=1, call_error_rate=0.5))
    stats, failed, stored = await send(emulator, events)
    assert failed == []
    assert stored == Counter(events)  # the emulator stores nothing for these errors
    assert stats.requests.get("server_error", 0) + stats.requests.get("throttled", 0) > 0
    assert_accounted(events, stats, failed, stored)


async def test_connection_resets_are_retried_without_loss(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(FaultOptions(seed=7, reset_rate=0.3))
    stats, failed, stored = await send(emulator, events)
    assert failed == []
    assert stats.requests["connection_error"] > 0
    assert stats.duplicates_possible > 0
    assert_accounted(events, stats, failed, stored)


async def test_accepted_but_answered_with_error_makes_counted_duplicates(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(FaultOptions(seed=2, accepted_error_rate=0.5))
    stats, failed, stored = await send(emulator, events)
    assert failed == []
    extra = sum(count - 1 for count in stored.values())
    assert extra > 0
    assert extra <= stats.duplicates_possible
    assert_accounted(events, stats, failed, stored)


async def test_latency_beyond_the_timeout_is_ambiguous_and_never_loses_events(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(FaultOptions(seed=13, latency_s=0.02, latency_jitter_s=0.3))
    stats, failed, stored = await send(emulator, events[:1500], request_timeout_s=0.15)
    assert stats.requests.get("timeout", 0) > 0
    assert_accounted(events[:1500], stats, failed, stored)


async def test_all_faults_at_once_keep_the_ledger_closed(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(
        FaultOptions(
            seed=17, record_failure_rate=0.1, call_error_rate=0.1, reset_rate=0.1,
            accepted_error_rate=0.1, latency_jitter_s=0.01,
        )
    )  # fmt: skip
    stats, failed, stored = await send(emulator, events, max_attempts=3, max_inflight=3)
    assert_accounted(events, stats, failed, stored)
    assert {record.reason for record in failed} <= {
        "throttled", "server_error", "connection_error",
    }  # fmt: skip


async def test_records_that_exhaust_their_attempts_fail_with_the_last_reason(
    emulator: Emulator, events: list[bytes]
) -> None:
    emulator.set_faults(FaultOptions(seed=19, call_error_rate=1.0))
    stats, failed, stored = await send(emulator, events[:600], max_attempts=2)
    assert stored == Counter()
    assert len(failed) == 600
    assert all(record.attempts == 2 for record in failed)
    assert all("gave up after 2 attempt(s)" in record.message for record in failed)
    assert stats.records_failed_total == 600
