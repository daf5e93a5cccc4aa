"""Helpers for tests and benchmarks that need the emulator in its own process.

In-process use needs nothing from here: ``async with Emulator(data_dir=...) as emulator``.
``run_emulator_process`` runs ``python -m ingest emulator --port 0`` instead, for tests of a
program against an emulator it does not share a loop with (ground truth: files + counters).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ingest.emulator.app import STATS_PATH
from ingest.emulator.delivery import ObjectWriter

READY_LINE = re.compile(r"emulator listening on (http://\S+)")


class EmulatorProcess:
    """A running ``ingest emulator`` subprocess."""

    def __init__(
        self, process: asyncio.subprocess.Process, endpoint_url: str, data_dir: Path | None
    ):
        self.process = process
        self.endpoint_url = endpoint_url
        self.data_dir = data_dir

    async def stats(self) -> dict[str, Any]:
        """The emulator's counters (``EmulatorStats`` as a dict), from ``GET /_emulator/stats``."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.endpoint_url + STATS_PATH) as response,
        ):
            response.raise_for_status()
            stats: dict[str, Any] = orjson.loads(await response.read())
            return stats

    def objects(self) -> list[Path]:
        """Objects delivered so far, sorted by key (buffered records are not there yet).

        RuntimeError when the emulator writes to S3 (started with data_dir=None)."""
        if self.data_dir is None:
            raise RuntimeError("this emulator writes to S3: list the bucket instead")
        return ObjectWriter(self.data_dir).objects()

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the flush and exit; the exit code (SIGKILL after ``timeout``)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


@asynccontextmanager
async def run_emulator_process(
    data_dir: Path | None, *extra_args: str, startup_timeout_s: float = 30.0
) -> AsyncIterator[EmulatorProcess]:
    """Start the emulator CLI on a free port with ``extra_args``; stop it (SIGTERM) on exit.

    ``data_dir=None`` passes no ``--data-dir``: give ``--s3-bucket`` (and ``--s3-endpoint-url``)
    in ``extra_args`` to deliver to S3.

    Raises RuntimeError if it exits or prints something else before its ready line.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "emulator", "--port", "0",
        *(("--data-dir", str(data_dir)) if data_dir is not None else ()),
        *extra_args,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    running = None
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), startup_timeout_s)
        ready = READY_LINE.match(line.decode())
        if ready is None:
            raise RuntimeError(f"emulator did not start; it printed {line!r}")
        running = EmulatorProcess(process, ready.group(1), data_dir)
        yield running
    finally:
        if running is not None:
            await running.stop()
        elif process.returncode is None:
            process.kill()
            await process.wait()
