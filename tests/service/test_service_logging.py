"""Logging: JSON lines off a terminal, console on one, levels, and secrets scrubbed."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
import structlog

from ingest.service import logging as service_logging
from ingest.service.cli import run_with_config
from ingest.service.config import ServiceConfig
from ingest.service.logging import configure_logging, use_json

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


class FakeStream(io.TextIOWrapper):
    def __init__(self, tty: bool) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=True)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def lines(self) -> list[bytes]:
        raw = self.buffer
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue().splitlines()


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield None
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()  # run_with_config binds run_id and stream
    logging.getLogger().handlers.clear()
    service_logging._mode["json"] = False


def test_json_lines_when_not_a_terminal() -> None:
    stream = FakeStream(tty=False)
    configure_logging("info", "auto", stream=stream, environ={})
    structlog.get_logger("t").info("hello", answer=42)
    (line,) = stream.lines()
    event = orjson.loads(line)
    assert event["event"] == "hello"
    assert event["answer"] == 42
    assert event["level"] == "info"
    assert event["timestamp"].endswith("Z")


def test_console_format_on_a_terminal() -> None:
    assert not use_json("auto", FakeStream(tty=True))
    assert use_json("json", FakeStream(tty=True))
    assert not use_json("console", FakeStream(tty=False))
    stream = FakeStream(tty=True)
    configure_logging("info", "auto", stream=stream, environ={})
    structlog.get_logger("t").info("hello", answer=42)
    text = b"\n".join(stream.lines()).decode()
    assert "hello" in text
    assert "answer" in text
    assert not text.startswith("{")


def test_level_filters() -> None:
    stream = FakeStream(tty=False)
    configure_logging("warning", "json", stream=stream, environ={})
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud")
    assert [orjson.loads(line)["event"] for line in stream.lines()] == ["loud"]


def test_secret_values_are_scrubbed_from_our_lines_and_stdlib_ones() -> None:
    stream = FakeStream(tty=False)
    configure_logging("info", "json", stream=stream, environ={"AWS_SECRET_ACCESS_KEY": SECRET})
    structlog.get_logger("t").info(
        "oops", detail=f"key={SECRET}", nested={"k": SECRET}, listed=["a", {"k": SECRET}]
    )
    logging.getLogger("botocore").warning("leaked %s", SECRET)
    text = b"\n".join(stream.lines()).decode()
    assert SECRET not in text
    assert text.count("***") == 4


def test_a_crash_is_one_json_line_with_the_traceback_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken_run(*_: object, **__: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("ingest.service.runner.run_service", broken_run)
    assert run_with_config(ServiceConfig(log_format="json")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    event = orjson.loads(line)
    assert event["event"] == "run_crashed"
    assert event["level"] == "error"
    assert "RuntimeError: boom" in event["exception"]
