"""`ingest loadtest`: rate profiles, --find-max, live progress and reports over the producer.

A room of its own: it uses `ingest.producer`, `ingest.events` and `ingest.firehose`; nothing
there imports it.
"""
