"""Quotas answered as Firehose does: per-record "Slow down." in a 200, or a 503 for the call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from ingest.emulator import Emulator, QuotaOptions
from ingest.emulator.quotas import StreamQuota, TokenBucket
from ingest.firehose.limits import default_quota

STREAM = "aws-ml-cert"
Batch = Callable[..., dict[str, Any]]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_region_defaults_come_from_the_limits_module() -> None:
    for region in ("us-east-1", "eu-central-1"):
        quota = default_quota(region)
        assert QuotaOptions.for_region(region) == QuotaOptions(
            records_per_s=quota.records_per_s,
            requests_per_s=quota.requests_per_s,
            bytes_per_s=quota.bytes_per_s,
        )
    assert QuotaOptions.for_region("us-east-1").records_per_s == 500_000
    assert QuotaOptions.for_region("ap-south-1").bytes_per_s == 1024 * 1024


def test_token_bucket_allows_one_second_of_burst_then_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock)
    assert bucket.take(10)
    assert not bucket.take(1)
    clock.now = 0.5
    assert bucket.take(5)
    assert not bucket.take(1)
    clock.now = 100.0
    assert bucket.available() == 10


@given(
    rate=st.integers(1, 1000),
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=500),
)
def test_records_quota_admits_exactly_the_records_that_fit_in_order(
    rate: int, sizes: list[int]
) -> None:
    quota = StreamQuota(QuotaOptions(records_per_s=rate), FakeClock())
    throttled = quota.admit_records([b"x" * n for n in sizes])
    accepted = len(sizes) - len(throttled)
    assert accepted == min(rate, len(sizes))
    assert throttled == list(range(accepted, len(sizes)))


@given(
    rate=st.integers(1, 5000),
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=100),
)
def test_bytes_quota_never_admits_more_bytes_than_the_burst(rate: int, sizes: list[int]) -> None:
    quota = StreamQuota(QuotaOptions(bytes_per_s=rate), FakeClock())
    throttled = set(quota.admit_records([b"x" * n for n in sizes]))
    admitted = [n for i, n in enumerate(sizes) if i not in throttled]
    assert sum(admitted) <= rate
    # Anything refused really did not fit in what was left at its turn.
    left = rate
    for i, n in enumerate(sizes):
        if i in throttled:
            assert n > left
        else:
            left -= n


async def test_records_quota_fails_the_excess_records_with_slow_down(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    emulator.set_quotas(QuotaOptions(records_per_s=100))
    datas = [b"%d\n" % i for i in range(300)]
    status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch(datas))
    assert status == 200
    assert body["FailedPutCount"] == 200
    entries = body["RequestResponses"]
    assert all("RecordId" in e for e in entries[:100])
    assert {(e["ErrorCode"], e["ErrorMessage"]) for e in entries[100:]} == {
        ("ServiceUnavailableException", "Slow down.")
    }
    assert emulator.stored_records(STREAM) == datas[:100]
    assert emulator.stats.records_throttled == 200
    assert emulator.stats.throttled == 200


async def test_a_batch_in_which_nothing_fits_gets_a_503(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    emulator.set_quotas(QuotaOptions(bytes_per_s=10))
    status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch([b"x" * 11] * 3))
    assert (status, body["__type"], body["message"]) == (
        503,
        "ServiceUnavailableException",
        "Slow down.",
    )
    assert emulator.stored_records(STREAM) == []
    assert emulator.stats.calls_throttled == 1


async def test_requests_quota_throttles_the_whole_call(
    emulator: Emulator, call: Any, batch: Batch
) -> None:
    """One call fits in the burst; the next ones only as the bucket refills (one per second)."""
    emulator.set_quotas(QuotaOptions(requests_per_s=1))
    statuses = [
        (await call(emulator.endpoint_url, "PutRecordBatch", batch([b"x"])))[0] for _ in range(5)
    ]
    assert statuses[0] == 200
    assert 503 in statuses[1:]
    stored = len(emulator.stored_records(STREAM))
    assert stored == statuses.count(200)


async def test_put_record_over_quota_gets_a_503(emulator: Emulator, firehose: Any) -> None:
    """A record bigger than the whole bytes/s burst can never fit: the call gets a 503."""
    emulator.set_quotas(QuotaOptions(bytes_per_s=5))
    await firehose.put_record(DeliveryStreamName=STREAM, Record={"Data": b"abcd"})
    with pytest.raises(ClientError) as raised:
        await firehose.put_record(DeliveryStreamName=STREAM, Record={"Data": b"efghij"})
    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert response["Error"]["Code"] == "ServiceUnavailableException"
    assert emulator.stored_records(STREAM) == [b"abcd"]


async def test_quotas_are_off_by_default(emulator: Emulator, call: Any, batch: Batch) -> None:
    for _ in range(5):
        status, body = await call(emulator.endpoint_url, "PutRecordBatch", batch([b"x"] * 500))
        assert (status, body["FailedPutCount"]) == (200, 0)
    assert len(emulator.stored_records(STREAM)) == 2500
