"""Segment logs on disk: the dead-letter spool, the `--durable` log, `ingest replay`, `ingest spool
check`.

The storage engine (`files`, `log`, `writer`, `marks`) imports only the standard library and
`ingest.errors`, so the producer can use it for `durable_dir` without importing anything above
it; the dead-letter spool, replay and the CLI build on the producer. This module imports nothing,
so importing the engine never pulls the producer in.
"""
