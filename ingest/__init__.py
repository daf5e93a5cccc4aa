"""ingest: an asyncio producer for Amazon Kinesis Data Firehose, with a local emulator."""

__version__ = "0.1.0"

__all__ = ["__version__"]
