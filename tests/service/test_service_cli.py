"""`ingest run` as a user meets it: bad configuration exits 2, secrets never leak."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--event-size", "10"], "ingest run: configuration error: event_size: invalid value 10;"),
        (["--local-data-dir", "/proc/x"], "ingest run: configuration error: local_data_dir: "),
    ],
)
def test_errors_found_after_parsing_are_the_plain_line_too(args: list[str], start: str) -> None:
    """Even with JSON logs (stderr is a pipe here), a usage error is the one plain line, before
    anything is logged; the event size's lower bound comes from the run id."""
    result = run_ingest(["--local", "--count", "1", "--log-format", "json", *args])
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(start), line
    assert "expected" in line
    assert result.stdout == ""
    with_long_id = run_ingest(["--local", "--count", "1", "--event-size", "150",
                               "--run-id", "r" * 64])  # fmt: skip
    assert with_long_id.returncode == 2
    assert "expected bytes from 191" in with_long_id.stderr


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


def test_dead_endpoint_at_start_exits_1_with_one_line_and_generates_nothing(
    unused_port: int,
) -> None:
    """Nothing listens: the run waits unreachable_after_s for an answer, then stops with exit 1
    and one line, instead of generating into a dead endpoint and draining for 20 s."""
    started = time.monotonic()
    result = run_ingest(
        ["--endpoint-url", f"http://127.0.0.1:{unused_port}", "--duration", "3", "--http-port",
         "0", "--unreachable-after", "1", "--log-format", "console"],
        {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if "warning" in line or "error" in line]
    assert problems == [], problems
    (last,) = [line for line in result.stderr.splitlines() if line.startswith("ingest run:")]
    assert "is unreachable: no answer for 1." in last
    assert f"127.0.0.1:{unused_port}" in last
    assert "may have been stored" not in result.stderr
    assert "records_failed" not in result.stderr
    assert result.stdout == ""  # nothing was generated, so there is no summary
    assert elapsed < 15  # the 3 s duration and the 20 s drain were not waited out


def test_json_logs_say_it_in_one_json_line(unused_port: int) -> None:
    result = run_ingest(
        ["--endpoint-url", f"http://127.0.0.1:{unused_port}", "--count", "5", "--http-port", "0",
         "--unreachable-after", "0.5", "--log-format", "json"],
        {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"},
    )  # fmt: skip
    assert result.returncode == 1
    events = [orjson.loads(line) for line in result.stderr.splitlines()]
    (error,) = [e for e in events if e["level"] in ("warning", "error")]
    assert error["event"] == "target_unreachable"
    assert error["hint"].startswith("check endpoint_url")


def test_http_port_in_use_exits_2_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_ingest(["--local", "--count", "10", "--http-port", str(port)])
    assert result.returncode == 2
    # Found once logging runs (JSON off a terminal), and still the plain usage line.
    (error,) = [line for line in result.stderr.splitlines() if "cannot" in line]
    assert error.startswith("ingest run: configuration error: http_port: cannot listen on")
    assert "Traceback" not in result.stderr
