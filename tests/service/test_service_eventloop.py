"""`ingest run` runs on uvloop's loop when the `uvloop` extra is installed."""

from __future__ import annotations

import asyncio
import importlib.util

from ingest.service.eventloop import loop_name, run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_exactly_when_it_is_importable() -> None:
    installed = importlib.util.find_spec("uvloop") is not None
    module = run(_loop_module())
    assert module.startswith("uvloop") == installed
    assert loop_name() == ("uvloop" if installed else "asyncio")
