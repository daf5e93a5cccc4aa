"""`ingest run` as a user meets it: bad configuration exits 2, secrets never leak."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

SECRET_KEY = "sEcReT-aws-key-9f8e7d6c5b4a3210zyxw"
SESSION_TOKEN = "SeSsIoN-token-0a1b2c3d4e5f60718293"
URL_PASSWORD = "url-pass-5e6f7a8b9c"


def run_ingest(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ingest", "run", *args],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("layer", "key"),
    [("flag", "rate"), ("env", "http_port"), ("toml", "drain_timeout_s")],
)
def test_bad_value_in_each_layer_exits_2_naming_the_key(
    layer: str, key: str, tmp_path: Path
) -> None:
    args, env = ["--local", "--count", "1"], {}
    if layer == "flag":
        args += ["--rate", "-5"]
    elif layer == "env":
        env["INGEST_HTTP_PORT"] = "eighty"
    else:
        config = tmp_path / "bad.toml"
        config.write_text("drain_timeout_s = 0\n", encoding="utf-8")
        args += ["--config", str(config)]
    result = run_ingest(args, env)
    assert result.returncode == 2
    assert f"configuration error: {key}: invalid value" in result.stderr
    assert "expected" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_event_size_too_small_for_an_event_exits_2() -> None:
    result = run_ingest(["--local", "--count", "1", "--event-size", "10"])
    assert result.returncode == 2
    assert "event_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_or_abbreviated_flag_is_a_usage_error() -> None:
    for flag in ("--no-such-flag", "--rat"):
        result = run_ingest([flag, "5", "--local", "--count", "1"])
        assert result.returncode == 2
        assert f"unrecognized arguments: {flag}" in result.stderr


def test_secrets_never_reach_logs_summary_or_metrics(service: Any) -> None:
    env = {
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "INGEST_LOG_LEVEL": "debug",
    }
    run = service(["--local", "--count", "3000", "--rate", "1500"], env)
    metrics = run.wait_until(
        "/metrics", lambda status, body: status == 200 and "ingest_info" in body
    )
    assert run.finish() == 0
    for text in (metrics, run.stdout, run.stderr):
        for secret in (SECRET_KEY, SESSION_TOKEN):
            assert secret not in text
    (start,) = [e for e in run.log_events() if e["event"] == "service_starting"]
    assert start["credentials"] == "dummy (emulator)"


def test_endpoint_url_carrying_a_credential_exits_2_without_echoing_it() -> None:
    """botocore repeats the endpoint URL in its errors, query string included: refused at start
    (more forms, and the redaction of the message, in test_service_config.py)."""
    url = f"http://127.0.0.1:9/?token={URL_PASSWORD}"
    result = run_ingest(["--count", "1"], {"AWS_ENDPOINT_URL_FIREHOSE": url})
    assert result.returncode == 2
    assert "endpoint_url: invalid value 'http://" in result.stderr
    assert "AWS_ENDPOINT_URL_FIREHOSE" in result.stderr
    assert URL_PASSWORD not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_unreachable_target_fails_the_records_and_exits_1(unused_port: int) -> None:
    """With console logs (a person watching) the summary is the human table."""
    result = run_ingest(
        ["--endpoint-url", f"http://127.0.0.1:{unused_port}", "--count", "5", "--http-port", "0",
         "--max-attempts", "2", "--backoff-base", "0.01", "--log-format", "console"]
    )  # fmt: skip
    assert result.returncode == 1
    assert "failed                 5  (connection_error: 5)" in result.stdout
    assert "NOT all delivered (exit 1)" in result.stdout
    assert not result.stderr.lstrip().startswith("{")


def test_http_port_in_use_exits_2_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ingest(["--local", "--count", "10", "--http-port", str(port)])
    assert result.returncode == 2
    # Logs are JSON off a terminal, so the error is one JSON line like every other.
    (error,) = [orjson.loads(line) for line in result.stderr.splitlines() if "cannot" in line]
    assert error["event"] == "configuration_error"
    assert error["message"].startswith("configuration error: http_port: cannot listen on")
    assert "Traceback" not in result.stderr
