from hypothesis import given
from hypothesis import strategies as st

from ingest.firehose import limits


def test_limits_match_the_firehose_contract() -> None:
    assert limits.MAX_RECORDS_PER_BATCH == 500
    assert limits.MAX_RECORD_BYTES == 1_024_000
    assert limits.MAX_BATCH_BYTES == 4_194_304


def test_default_quota_depends_on_region() -> None:
    assert limits.default_quota("us-east-1").records_per_s == 500_000
    assert limits.default_quota("eu-central-1").bytes_per_s == 1024 * 1024


@given(st.integers(min_value=0, max_value=limits.MAX_RECORD_BYTES))
def test_billed_bytes_rounds_up_to_5kb(size: int) -> None:
    billed = limits.billed_bytes(size)
    assert billed % 5120 == 0
    assert billed >= max(size, 5120)
    assert billed - size < 5120 or size == 0


def test_stream_name_pattern_is_the_service_models() -> None:
    assert limits.STREAM_NAME_PATTERN.fullmatch("aws-ml-cert")
    assert limits.STREAM_NAME_PATTERN.fullmatch("a" * 64)
    assert not limits.STREAM_NAME_PATTERN.fullmatch("a" * 65)
    assert not limits.STREAM_NAME_PATTERN.fullmatch("")
    assert not limits.STREAM_NAME_PATTERN.fullmatch("has space")
