"""What the start-up check does with each answer of DescribeDeliveryStream.

The checker below is a stand-in for `Producer.check_target` only: the Producer's real path is
covered end to end (missing stream against moto in test_service_run.py).
"""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ingest.errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsError,
    FirehoseConnectionError,
    FirehoseError,
    IngestError,
    ProducerClosedError,
    StreamNotFoundError,
)
from ingest.service import logging as service_logging
from ingest.service import startup
from ingest.service.config import ServiceConfig
from ingest.service.health import RunState
from ingest.service.startup import Target, confirm_target, open_target

TARGET = Target("endpoint", "http://u:pw@127.0.0.1:1", "s", "us-east-1", "environment")


@pytest.fixture(autouse=True)
def _console_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Console logs unless a test says otherwise (the mode is process-wide state)."""
    monkeypatch.setitem(service_logging._mode, "json", False)


class Checker:
    def __init__(self, error: IngestError | None) -> None:
        self.error = error
        self.calls = 0

    async def check_target(self) -> object:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return None


async def test_confirmed_target_makes_the_run_ready() -> None:
    state = RunState()
    assert await confirm_target(Checker(None), state, TARGET) is None
    assert state.target_confirmed_monotonic is not None


@pytest.mark.parametrize(
    "error",
    [
        StreamNotFoundError("ResourceNotFoundException", "Stream s not found"),
        CredentialsError("NoCredentials", "no AWS credentials found"),
    ],
)
async def test_fatal_answers_end_the_run_with_exit_1(
    error: FirehoseError, capsys: pytest.CaptureFixture[str]
) -> None:
    state = RunState()
    assert await confirm_target(Checker(error), state, TARGET) == 1
    message = capsys.readouterr().err
    assert "stream 's' in us-east-1" in message
    assert "pw" not in message  # the endpoint's user info is redacted
    assert state.target_confirmed_monotonic is None


async def test_fatal_answer_in_json_mode_is_one_log_line_and_no_plain_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(service_logging._mode, "json", True)
    error = StreamNotFoundError("ResourceNotFoundException", "Stream s not found")
    with capture_logs() as logs:
        assert await confirm_target(Checker(error), RunState(), TARGET) == 1
    assert capsys.readouterr().err == ""
    (line,) = [e for e in logs if e["event"] == "target_unusable"]
    assert line["hint"] == "create it, or check --stream and --region"
    assert "pw" not in line["target"]


async def test_describe_forbidden_waits_for_a_delivered_batch() -> None:
    state = RunState()
    error = AccessDeniedError("AccessDeniedException", "not authorized to DescribeDeliveryStream")
    assert await confirm_target(Checker(error), state, TARGET) is None
    assert state.target_confirmed_monotonic is None


async def test_unreachable_target_is_not_fatal() -> None:
    state = RunState()
    error = FirehoseConnectionError("ConnectFailed", "refused")
    assert await confirm_target(Checker(error), state, TARGET) is None
    assert state.target_confirmed_monotonic is None
    state.draining = True  # lets the background re-check end with the test


async def test_recheck_confirms_late_and_ends_quietly_when_the_producer_closes() -> None:
    """The re-check of an unreachable target must not outlive the producer with an unretrieved
    ProducerClosedError ("Task exception was never retrieved" in the logs at exit)."""
    state = RunState()
    checker = Checker(FirehoseConnectionError("ConnectFailed", "refused"))
    interval = 0.01
    before = set(startup._background)
    assert await confirm_target(checker, state, TARGET, recheck_interval_s=interval) is None
    (task,) = startup._background - before
    checker.error = ProducerClosedError("producer is closed")
    await asyncio.wait_for(task, timeout=10)
    assert task.exception() is None
    assert state.target_confirmed_monotonic is None

    state = RunState()
    checker = Checker(FirehoseConnectionError("ConnectFailed", "refused"))
    before = set(startup._background)
    assert await confirm_target(checker, state, TARGET, recheck_interval_s=interval) is None
    (task,) = startup._background - before
    checker.error = None  # the target comes back
    await asyncio.wait_for(task, timeout=10)
    assert state.target_confirmed_monotonic is not None


def test_metric_labels_never_carry_user_info() -> None:
    labels = TARGET.labels()
    assert labels["endpoint_host"] == "127.0.0.1"
    assert "pw" not in str(labels)


async def test_unusable_local_data_dir_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory", encoding="utf-8")
    config = ServiceConfig(local=True, local_data_dir=a_file)
    async with AsyncExitStack() as stack:
        with pytest.raises(ConfigError, match=rf"^local_data_dir: cannot use '{a_file}' \("):
            await open_target(stack, config)


class ComesBack(Checker):
    """Refuses connections for the first `failures` checks, then answers."""

    def __init__(self, failures: int) -> None:
        super().__init__(FirehoseConnectionError("ConnectFailed", "refused"))
        self.failures = failures

    async def check_target(self) -> object:
        if self.calls + 1 > self.failures:
            self.error = None
        return await super().check_target()


async def test_a_target_that_answers_within_unreachable_after_s_is_confirmed() -> None:
    """Refused twice, then up (a compose stack starting): asked again, confirmed, no exit."""
    state = RunState()
    checker = ComesBack(failures=2)
    assert await confirm_target(checker, state, TARGET, unreachable_after_s=5) is None
    assert checker.calls == 3
    assert state.target_confirmed_monotonic is not None


async def test_a_target_silent_for_unreachable_after_s_ends_the_run_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = RunState()
    checker = ComesBack(failures=10**6)
    with capture_logs() as logs:
        code = await confirm_target(checker, state, TARGET, unreachable_after_s=0.6)
    assert code == 1
    assert checker.calls >= 2  # asked again before giving up
    assert [entry for entry in logs if entry["log_level"] in ("warning", "error")] == []
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("ingest run: stream 's' in us-east-1 at http://***@127.0.0.1:1")
    assert re.search(r"is unreachable: no answer for \d\.\d s \(ConnectFailed: refused\)", line)
