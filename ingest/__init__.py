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
    ClientRequestError,
    ConfigError,
    CredentialsError,
    FirehoseConnectionError,
    FirehoseError,
    IngestError,
    InvalidArgumentError,
    ProducerClosedError,
    ProducerCrashedError,
    ProducerError,
    PutTimeoutError,
    QueueFullError,
    RecordFailedError,
    RecordTooLargeError,
    RequestTimeoutError,
    RequestValidationError,
    ServerError,
    StreamNotFoundError,
    ThrottledError,
    TlsError,
)
from ingest.events import EventGenerator
from ingest.firehose import StreamDescription
from ingest.producer import (
    FailedRecord,
    FailureHandler,
    HistogramSnapshot,
    Producer,
    ProducerConfig,
    ProducerStats,
    Receipt,
    Receipts,
    log_failures,
)

__all__ = [
    "AccessDeniedError",
    "ClientRequestError",
    "ConfigError",
    "CredentialsError",
    "EventGenerator",
    "FailedRecord",
    "FailureHandler",
    "FirehoseConnectionError",
    "FirehoseError",
    "HistogramSnapshot",
    "IngestError",
    "InvalidArgumentError",
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
    "RequestTimeoutError",
    "RequestValidationError",
    "ServerError",
    "StreamDescription",
    "StreamNotFoundError",
    "ThrottledError",
    "TlsError",
    "__version__",
    "log_failures",
]
