"""The event loop of the command-line programs: uvloop's when it is installed.

uvloop (the optional `uvloop` extra: ``pip install 'ingest[uvloop]'``) runs the same asyncio code
on libuv, with cheaper socket I/O and callbacks, which is most of the producer's CPU per request.
Without it the standard loop runs; nothing else changes. Library code never chooses the loop:
an embedding application keeps whatever loop it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["loop_factory", "loop_name", "run"]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor if uvloop is importable, else None (the standard loop)."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name() -> str:
    """ "uvloop" or "asyncio": which loop `run` uses (for the start-up log line)."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop's loop when it is installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
