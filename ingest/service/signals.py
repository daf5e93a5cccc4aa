"""SIGTERM/SIGINT handling for `ingest run`: the first signal drains, a second cuts it short.

Installed with `loop.add_signal_handler`, so the handlers run as ordinary callbacks in the event
loop (no KeyboardInterrupt in the middle of a send) and are removed when the run ends.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

log = structlog.get_logger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalDrain:
    """`stop` is set by the first signal (stop generating, drain); `cut` by the second."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.cut = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._loop.add_signal_handler(sig, self._handle, sig)

    def remove(self) -> None:
        if self._loop is not None:
            for sig in SIGNALS:
                self._loop.remove_signal_handler(sig)
            self._loop = None

    def _handle(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            log.info("drain_requested", signal=sig.name)
            self.stop.set()
        else:
            log.warning("drain_cut_short", signal=sig.name)
            self.cut.set()
