"""The README's Python example runs as written, against the emulator instead of AWS."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ingest.emulator import Emulator

README = Path(__file__).resolve().parents[1] / "README.md"


def python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python example"
    return str(blocks[0])


async def test_readme_python_example_delivers_every_record(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    source = python_example()
    assert "endpoint_url=None" in source
    source = source.replace("endpoint_url=None", f"endpoint_url={emulator.endpoint_url!r}")
    source = source.replace("asyncio.run(main())", "")
    namespace: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), namespace)
    await namespace["main"]()
    assert len(emulator.stored_records("aws-ml-cert")) == 10_001
    out = capsys.readouterr().out
    assert "RecordId " in out
    assert "0 failed" in out
    assert "gave up" not in out


async def test_readme_emulator_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    """The Emulator snippet: `from ingest import Emulator, FaultOptions` works, and the seeded
    record failures and the stored records add up to what was sent."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (source,) = [block for block in blocks if "from ingest import Emulator" in block]
    source = source.replace("asyncio.run(main())", "")
    namespace: dict[str, Any] = {}
    exec(compile(source, str(README), "exec"), namespace)
    await namespace["main"]()
    printed = re.fullmatch(r"(\d+) failed on purpose, (\d+) stored\n", capsys.readouterr().out)
    assert printed is not None
    failed, stored = int(printed.group(1)), int(printed.group(2))
    assert failed > 0
    assert failed + stored == 100
