"""A local Firehose-compatible endpoint: exact limits, quotas, faults, S3-style files on disk.

``from ingest.emulator import Emulator, EmulatorOptions, FaultOptions, QuotaOptions``

- Protocol: Firehose JSON 1.1 on ``POST /`` (CreateDeliveryStream, DescribeDeliveryStream,
  ListDeliveryStreams, DeleteDeliveryStream, PutRecord, PutRecordBatch); any other target gets
  400 ``UnknownOperationException``; no ``Authorization`` header gets 400
  ``MissingAuthenticationTokenException`` (any credentials are accepted). Bodies over 8 MiB are
  refused with 413 before being read whole. ``GET /_emulator/stats`` returns the counters.
- Limits (see ``ingest.firehose.limits``): >500 records or a record >1,024,000 raw bytes -> 400
  ``ValidationException``; >4 MiB raw per call -> 400 ``InvalidArgumentException``; malformed
  JSON or base64 -> 400 ``SerializationException``; missing fields -> 400 ``ValidationException``;
  BufferingHints outside 1-128 MB / 0-900 s -> 400 ``ValidationException``. An unexpected bug
  is answered 500 ``InternalFailure`` (JSON, with ``x-amzn-RequestId``), never a bare 500.
- Delivery: per stream, records are buffered and written as one object when the buffer reaches
  its size or its oldest record its interval (``BufferingHints`` of CreateDeliveryStream, else
  the emulator's defaults), on ``flush()``, on delete and on stop: to ``data_dir`` (staged in
  ``<data_dir>/.tmp/``, renamed into place; readers skip it) or, with ``s3_bucket``, to an
  S3-compatible store (one PutObject each; ``destinations.py``). Keys follow Firehose's real
  layout (``layout.py``): ``<prefix>YYYY/MM/dd/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid><ext>``,
  with ``!{timestamp:...}``/``!{firehose:...}`` expressions, ErrorOutputPrefix, FileExtension,
  CustomTimeZone and GZIP. A failed write keeps its records and is retried; past twice the size
  hint, calls get a retriable 503 (``streams.py``).
- Quotas (``quotas.py``): requests/s exhausted -> 503 for the call; records/s or bytes/s ->
  per-record ``ServiceUnavailableException`` "Slow down." in a 200, or a 503 if nothing fits.
- Faults (``faults.py``): data calls only; seeded; failed records are never stored, records of an
  "accepted but answered with an error" call always are.
- Ground truth: ``stored_records`` / ``stored_counts`` (in-process, ``record_log=True``) and
  ``stats``; the CLI keeps only the counters so that a long run stays within bounded memory.
"""

from ingest.emulator.emulator import Emulator
from ingest.emulator.options import EmulatorOptions, FaultOptions, QuotaOptions
from ingest.emulator.stats import EmulatorStats

__all__ = ["Emulator", "EmulatorOptions", "EmulatorStats", "FaultOptions", "QuotaOptions"]
