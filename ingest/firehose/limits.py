"""Hard limits and default quotas of Firehose PutRecordBatch (see docs: firehose-contract).

The limits cannot be raised on AWS; byte limits count raw bytes, before base64.
"""

import re
from typing import Final, NamedTuple

DEFAULT_STREAM: Final = "aws-ml-cert"
DEFAULT_REGION: Final = "us-east-1"
# DeliveryStreamName in the service model: 1-64 characters of [a-zA-Z0-9_.-].
STREAM_NAME_PATTERN: Final = re.compile(r"[a-zA-Z0-9_.-]{1,64}")

MAX_RECORDS_PER_BATCH: Final = 500
MAX_RECORD_BYTES: Final = 1_024_000
MAX_BATCH_BYTES: Final = 4 * 1024 * 1024
BILLING_INCREMENT_BYTES: Final = 5 * 1024


class StreamQuota(NamedTuple):
    """Per Direct PUT stream throughput quota, shared by PutRecord and PutRecordBatch."""

    records_per_s: int
    requests_per_s: int
    bytes_per_s: int


_LARGE_REGION_QUOTA: Final = StreamQuota(500_000, 2_000, 5 * 1024 * 1024)
_DEFAULT_REGION_QUOTA: Final = StreamQuota(100_000, 1_000, 1 * 1024 * 1024)
_LARGE_REGIONS: Final = frozenset({"us-east-1", "us-west-2", "eu-west-1"})


def default_quota(region: str) -> StreamQuota:
    """AWS's default per-stream quota for a region."""
    return _LARGE_REGION_QUOTA if region in _LARGE_REGIONS else _DEFAULT_REGION_QUOTA


def billed_bytes(record_size: int) -> int:
    """Bytes billed for one record: its size rounded up to the next 5 KB increment."""
    increments = max(1, -(-record_size // BILLING_INCREMENT_BYTES))
    return increments * BILLING_INCREMENT_BYTES
