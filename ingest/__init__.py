"""ingest: an asyncio producer for Amazon Kinesis Data Firehose, with a local emulator.

Public API::

    from ingest import Producer
    async with Producer(stream="aws-ml-cert", region="us-east-1") as producer:
        receipt = await producer.put(b'{"k": 1}\\n')
"""

# Set before the imports below: service modules read it while ingest is still importing.
__version__ = "0.1.0"

from typing import TYPE_CHECKING

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

# The emulator is importable from here too (`from ingest import Emulator`), but loaded only when
# asked for: its aiohttp server stack is not needed by a producer.
_EMULATOR_NAMES = frozenset(
    {"Emulator", "EmulatorOptions", "EmulatorStats", "FaultOptions", "QuotaOptions"}
)


if TYPE_CHECKING:  # type checkers see the real classes; at run time __getattr__ loads them
    from ingest.emulator import (
        Emulator,
        EmulatorOptions,
        EmulatorStats,
        FaultOptions,
        QuotaOptions,
    )


def __getattr__(name: str) -> object:
    if name in _EMULATOR_NAMES:
        from ingest import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module 'ingest' has no attribute {name!r}")


__all__ = [
    "AccessDeniedError",
    "ClientRequestError",
    "ConfigError",
    "CredentialsError",
    "Emulator",
    "EmulatorOptions",
    "EmulatorStats",
    "EventGenerator",
    "FailedRecord",
    "FailureHandler",
    "FaultOptions",
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
    "QuotaOptions",
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
