"""Real `ingest run` / `ingest emulator` processes for the service's end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingest.emulator.testing import run_emulator_process

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """`python -m ingest run ...` with stdout/stderr in files and its HTTP port known."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.stdout_path = workdir / "stdout.txt"
        self.stderr_path = workdir / "stderr.txt"
        full_env = {**os.environ, **(env or {})}
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest", "run", "--http-port", str(self.port), *args],
                stdout=out, stderr=err, env=full_env,
            )  # fmt: skip

    def get(self, path: str) -> tuple[int, str]:
        """GET a path of the service; (status, body), including 503s."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_until(self, path: str, predicate: Any, timeout: float = START_TIMEOUT_S) -> str:
        """Poll `path` until predicate(status, body) holds; fails if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"service exited early ({self.proc.returncode}): {self.stderr}")
            try:
                status, body = self.get(path)
            except OSError:
                status, body = 0, ""
            if predicate(status, body):
                return body
            time.sleep(0.05)
        pytest.fail(f"{path} never satisfied the condition; last {status}: {body[:300]}")

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"service did not exit within {timeout} s: {self.stderr}")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def log_events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                events.append(orjson.loads(line))
        return events

    def summary(self) -> dict[str, Any]:
        (finished,) = [e for e in self.log_events() if e["event"] == "run_finished"]
        return finished


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Any]:
    """Factory: service(args, env=None) -> ServiceProcess; every process is reaped."""
    started: list[ServiceProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> ServiceProcess:
        workdir = tmp_path / f"run{len(started)}"
        workdir.mkdir()
        process = ServiceProcess(args, workdir, env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


@pytest.fixture
def unused_port() -> int:
    """A 127.0.0.1 port nothing listens on (just released by us)."""
    return free_port()


@pytest.fixture
async def slow_emulator(tmp_path: Path) -> AsyncIterator[str]:
    """`ingest emulator` answering every PutRecordBatch after 5 s; yields its endpoint URL."""
    async with run_emulator_process(tmp_path / "slow-emulator", "--fault-latency", "5") as slow:
        yield slow.endpoint_url
