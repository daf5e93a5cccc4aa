"""The README's Python example runs as written, against the emulator instead of AWS."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.cli import build_parser
from ingest.emulator import Emulator
from ingest.service.cli import flags_from_args
from ingest.service.config import load_config

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


def test_readme_run_examples_are_valid_and_the_local_one_runs_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every `ingest run` line of "Running the service" is a valid configuration (parsed and
    loaded as `ingest run` does); the one that needs nothing but this checkout runs as written
    and delivers every event."""
    section = README.read_text().split("## Running the service", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    commands = [line.split("#", 1)[0].split() for line in block.group(1).splitlines() if line]
    assert all(argv[:2] == [".venv/bin/ingest", "run"] for argv in commands)
    root = README.parent
    monkeypatch.chdir(root)  # config/aws.toml is relative to the checkout
    for name in [n for n in os.environ if n.startswith("INGEST_")]:
        monkeypatch.delenv(name)
    for argv in commands:
        load_config(flags_from_args(build_parser().parse_args(argv[1:])))
    (runnable,) = [argv for argv in commands if "--count" in argv]
    result = subprocess.run(
        [sys.executable, "-m", "ingest", *runnable[1:], "--http-port", "0"],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["delivered"] == summary["generated"] == 100_000
