"""ingest: an asyncio producer for Amazon Kinesis Data Firehose, with a local emulator.

Public API::

    from ingest import Producer
    async with Producer(stream="aws-ml-cert", region="us-east-1") as producer:
        receipt = await producer.put(b'{"k": 1}\\n')
"""

# Set before the imports below: service modules read it while ingest is still importing.
__version__ = "0.1.0"

from ingest.errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsError,
    FirehoseConnectionError,
    FirehoseError,
    IngestError,
    ProducerClosedError,
    ProducerCrashedError,
    ProducerError,
    PutTimeoutError,
    QueueFullError,
    RecordFailedError,
    RecordTooLargeError,
    StreamNotFoundError,
    ThrottledError,
)
from ingest.events import EventGenerator
from ingest.producer import (
    FailedRecord,
    Producer,
    ProducerConfig,
    ProducerStats,
    Receipt,
    Receipts,
)

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "CredentialsError",
    "EventGenerator",
    "FailedRecord",
    "FirehoseConnectionError",
    "FirehoseError",
    "IngestError",
    "Producer",
    "ProducerClosedError",
    "ProducerConfig",
    "ProducerCrashedError",
    "ProducerError",
    "ProducerStats",
    "PutTimeoutError",
    "QueueFullError",
    "Receipt",
    "Receipts",
    "RecordFailedError",
    "RecordTooLargeError",
    "StreamNotFoundError",
    "ThrottledError",
    "__version__",
]
