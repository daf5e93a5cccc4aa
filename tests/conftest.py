"""Shared fixtures: a real `moto_server` subprocess on 127.0.0.1 (an independent Firehose)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from ingest.emulator import Emulator

# Dummy credentials so botocore signs requests and never looks for real ones.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session", autouse=True)
def _spool_and_durable_dirs_outside_the_checkout(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Processes that run without --spool-dir/--durable-dir (and spool what a cut drain left)
    write under a session temp dir, never into the checkout's data/ (the defaults are relative
    to the working directory)."""
    base = tmp_path_factory.mktemp("default-dirs")
    saved = {name: os.environ.get(name) for name in ("INGEST_SPOOL_DIR", "INGEST_DURABLE_DIR")}
    os.environ["INGEST_SPOOL_DIR"] = str(base / "spool")
    os.environ["INGEST_DURABLE_DIR"] = str(base / "durable")
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _moto_server_command() -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script)]
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found: install the dev extras (make test does)")
    return [found]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start `moto_server` on a free 127.0.0.1 port for the session; yield its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [*_moto_server_command(), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def moto(moto_server: str) -> str:
    """The moto endpoint, with its state reset before the test."""
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    return moto_server


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    """A running in-process emulator (stream `aws-ml-cert`, no faults), files under tmp_path."""
    async with Emulator(data_dir=tmp_path / "emulator") as running:
        yield running


PostHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve_post() -> AsyncIterator[Callable[[PostHandler], Awaitable[str]]]:
    """Start a scripted HTTP server answering `POST /` on 127.0.0.1; returns its URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: PostHandler) -> str:
        app = web.Application()
        app.router.add_post("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
