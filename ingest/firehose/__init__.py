"""The only code in `ingest` that speaks to AWS Firehose."""

from ingest.firehose.client import FirehoseClient, StreamDescription
from ingest.firehose.wire import EntryFailure, PutBatchResult

__all__ = ["EntryFailure", "FirehoseClient", "PutBatchResult", "StreamDescription"]
