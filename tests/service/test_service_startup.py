"""What the start-up check does with each answer of DescribeDeliveryStream.

The checker below is a stand-in for `Producer.check_target` only: the Producer's real path is
covered end to end (missing stream against moto in test_service_run.py).
"""

from __future__ import annotations

import pytest

from ingest.errors import (
    AccessDeniedError,
    CredentialsError,
    FirehoseConnectionError,
    FirehoseError,
    StreamNotFoundError,
)
from ingest.service.config import ServiceConfig
from ingest.service.health import RunState
from ingest.service.startup import Target, confirm_target

TARGET = Target("endpoint", "http://u:pw@127.0.0.1:1", "s", "us-east-1", "environment")


class Checker:
    def __init__(self, error: FirehoseError | None) -> None:
        self.error = error
        self.calls = 0

    async def check_target(self) -> object:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return None


async def test_confirmed_target_makes_the_run_ready() -> None:
    state = RunState()
    assert await confirm_target(Checker(None), state, ServiceConfig(), TARGET) is None
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
    assert await confirm_target(Checker(error), state, ServiceConfig(), TARGET) == 1
    message = capsys.readouterr().err
    assert "stream 's' in us-east-1" in message
    assert "pw" not in message  # the endpoint's user info is redacted
    assert state.target_confirmed_monotonic is None


async def test_describe_forbidden_waits_for_a_delivered_batch() -> None:
    state = RunState()
    error = AccessDeniedError("AccessDeniedException", "not authorized to DescribeDeliveryStream")
    assert await confirm_target(Checker(error), state, ServiceConfig(), TARGET) is None
    assert state.target_confirmed_monotonic is None


async def test_unreachable_target_is_not_fatal() -> None:
    state = RunState()
    error = FirehoseConnectionError("ConnectFailed", "refused")
    assert await confirm_target(Checker(error), state, ServiceConfig(), TARGET) is None
    assert state.target_confirmed_monotonic is None
    state.draining = True  # lets the background re-check end with the test


def test_metric_labels_never_carry_user_info() -> None:
    labels = TARGET.labels()
    assert labels["endpoint_host"] == "127.0.0.1"
    assert "pw" not in str(labels)
