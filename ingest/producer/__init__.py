"""The embeddable producer: facade, accumulator, sender, ledger (no CLI, no config files)."""

from ingest.producer.batch import Receipt, Receipts
from ingest.producer.config import ProducerConfig
from ingest.producer.ledger import FailureHandler, log_failures
from ingest.producer.producer import Producer
from ingest.producer.stats import (
    FailedRecord,
    HistogramSnapshot,
    ProducerStats,
    RequestObservation,
    RequestObserver,
)

__all__ = [
    "FailedRecord",
    "FailureHandler",
    "HistogramSnapshot",
    "Producer",
    "ProducerConfig",
    "ProducerStats",
    "Receipt",
    "Receipts",
    "RequestObservation",
    "RequestObserver",
    "log_failures",
]
