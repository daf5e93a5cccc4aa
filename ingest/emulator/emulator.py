"""The in-process emulator: ``async with Emulator(...) as emulator: emulator.endpoint_url``.

Library code: it never installs signal handlers or configures logging (the CLI does the former).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from ingest.bounded_http import BoundedServer
from ingest.emulator.app import FirehoseHandler
from ingest.emulator.backend import Backend
from ingest.emulator.delivery import ObjectWriter
from ingest.emulator.destinations import (
    Destination,
    DestinationError,
    DirectoryDestination,
    S3Destination,
)
from ingest.emulator.options import EmulatorOptions, FaultOptions, QuotaOptions
from ingest.emulator.protocol import ApiError
from ingest.emulator.stats import EmulatorStats
from ingest.emulator.streams import Stream
from ingest.firehose.limits import STREAM_NAME_PATTERN

SHUTDOWN_TIMEOUT_S = 10.0


class Emulator:
    """A Firehose-compatible endpoint on ``options.host:options.port`` (0 picks a free port).

    ``Emulator(options, **overrides)`` takes an ``EmulatorOptions`` and/or its fields as keywords.
    """

    def __init__(self, options: EmulatorOptions | None = None, **overrides: Any) -> None:
        self.options = dataclasses.replace(options or EmulatorOptions(), **overrides)
        self.stats = EmulatorStats()
        self._directory: DirectoryDestination | None = None
        self._sink: Destination
        if self.options.s3_bucket is not None:
            self._sink = S3Destination(
                self.options.s3_bucket, self.options.s3_endpoint_url, self.options.region
            )
        else:
            self._sink = self._directory = DirectoryDestination(self.options.data_dir or Path())
        self._backend = Backend(self.options, self._sink, self.stats)
        self._runner: web.ServerRunner | None = None
        self._handler: FirehoseHandler | None = None
        self._owned_dir: Path | None = None
        self._endpoint_url: str | None = None
        for name in self.options.streams:
            self.create_stream(name)

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` (``https://`` with TLS) once started; RuntimeError before."""
        if self._endpoint_url is None:
            raise RuntimeError("the emulator is not started: call `await emulator.start()`")
        return self._endpoint_url

    @property
    def data_dir(self) -> Path:
        """Where objects are delivered (a temporary directory if none was given).

        RuntimeError when objects go to S3 (``s3_bucket``)."""
        return self._writer().data_dir

    @property
    def destination(self) -> str:
        """Where objects go, for people: ``directory PATH`` or ``s3://BUCKET at URL``."""
        return self._sink.describe()

    def _writer(self) -> ObjectWriter:
        if self._directory is None:
            raise RuntimeError(f"objects go to {self._sink.describe()}, not to a directory")
        return self._directory.writer

    async def start(self) -> None:
        """Open the destination (create the data dir, or reach the bucket), then listen.

        Raises OSError if the address is unavailable, DestinationError (an OSError) if the
        destination cannot be used."""
        if self._runner is not None:
            return
        if self._directory is not None and self.options.data_dir is None:
            self._owned_dir = Path(tempfile.mkdtemp(prefix="ingest-emulator-"))
            self._directory.writer.data_dir = self._owned_dir
        await self._sink.open()
        handler = FirehoseHandler(self._backend)
        server = BoundedServer(
            handler,
            name="emulator",
            limits=self.options.server_limits,
            request_factory=handler.request_factory,
            access_log=None,
        )
        handler.server = server
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.options.host,
            self.options.port,
            backlog=self.options.server_limits.backlog,  # the cap leaves room for this burst
            ssl_context=self.options.ssl_context(),
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            await self._sink.close()
            raise
        self._runner, self._handler = runner, handler
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host  # an IPv6 address needs brackets in a URL
        scheme = "http" if self.options.tls_cert is None else "https"
        self._endpoint_url = f"{scheme}://{host}:{port}"

    async def stop(self) -> None:
        """Stop listening, then write every buffered record.

        In-flight calls are completed (injected latency is cut short), within 10 s. A write that
        fails is retried for up to ``options.stop_timeout_s``; every stream is flushed even if
        one cannot be written, and the first DestinationError (an OSError) is re-raised.

        A temporary data dir the emulator created itself is deleted.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._handler is not None:
            self._handler.stopping.set()
        server = runner.server
        await runner.cleanup()
        if isinstance(server, BoundedServer):
            server.close()  # logs the last refusal counts
        failures: list[OSError] = []
        for stream in list(self._backend.streams.values()):
            try:
                await stream.close(self.options.stop_timeout_s)
            except DestinationError as error:  # still flush the other streams
                failures.append(error)
        await self._sink.close()
        self._endpoint_url = None
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None
        if failures:
            raise failures[0]

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def create_stream(self, name: str) -> None:
        """Create a DirectPut stream with the default S3-style destination and buffering."""
        if STREAM_NAME_PATTERN.fullmatch(name) is None:
            raise ValueError(f"stream name {name!r}: expected 1-64 characters of [a-zA-Z0-9_.-]")
        try:
            self._backend.add_stream(name)
        except ApiError as error:
            raise ValueError(f"stream name {name!r}: {error.message}") from None

    def set_faults(self, faults: FaultOptions) -> None:
        """Inject these faults from the next call on (the seed restarts the decisions)."""
        self._backend.set_faults(faults)

    def set_quotas(self, quotas: QuotaOptions) -> None:
        """Apply these quotas to every stream, with full buckets."""
        self._backend.set_quotas(quotas)

    async def flush(self, stream: str | None = None) -> None:
        """Write the buffered records of ``stream`` (or of all streams) now.

        DestinationError if a write fails; its records stay buffered and are retried."""
        names = list(self._backend.streams) if stream is None else [stream]
        for name in names:
            await self._stream(name).flush()

    def stored_records(self, stream: str) -> list[bytes]:
        """Every record stored for ``stream`` (buffered or written), in order, duplicates included.

        Needs ``record_log=True`` (the in-process default). KeyError for an unknown stream.
        """
        records = self._stream(stream).records
        if records is None:
            raise RuntimeError("stored_records needs EmulatorOptions(record_log=True)")
        return list(records)

    def stored_counts(self, stream: str) -> Counter[bytes]:
        """How many times each distinct record was stored for ``stream``."""
        return Counter(self.stored_records(stream))

    def buffered_bytes(self, stream: str) -> int:
        """Bytes accepted for ``stream`` and not yet written to an object."""
        return self._stream(stream).buffered_bytes

    def delivered_objects(self, stream: str | None = None) -> list[Path]:
        """Files written so far (for ``stream`` only if given), sorted by key.

        RuntimeError when objects go to S3."""
        objects = self._writer().objects()
        if stream is None:
            return objects
        own = re.compile(re.escape(stream) + r"-1-\d{4}(-\d\d){5}-[0-9a-f-]{36}(\.[^/]*)?")
        return [path for path in objects if own.fullmatch(path.name)]

    def _stream(self, name: str) -> Stream:
        try:
            return self._backend.streams[name]
        except KeyError:
            raise KeyError(f"no stream named {name!r} in the emulator") from None
