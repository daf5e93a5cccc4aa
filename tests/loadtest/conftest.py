"""Helpers for the load-test suite: `ingest loadtest` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    def lines(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of `event` on stderr."""
        found = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                data = json.loads(line)
                if data.get("event") == event:
                    found.append(data)
        return found


async def loadtest(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Finished:
    """Run `ingest loadtest ARGS` to completion (stdout/stderr are pipes: JSON logs)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "loadtest", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


def read_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
