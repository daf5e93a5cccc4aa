"""``ingest emulator`` as a real subprocess, and its flag parsing."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import socket
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import aioboto3
import pytest

from ingest.emulator import FaultOptions, QuotaOptions
from ingest.emulator.cli import options_from_args, register
from ingest.emulator.testing import run_emulator_process

READY = re.compile(r"emulator listening on (http://127\.0\.0\.1:(\d+))")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ingest")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["emulator", *argv])


def test_flags_map_to_options(tmp_path: Path) -> None:
    args = parse(
        "--port", "0", "--data-dir", str(tmp_path), "--create-stream", "a", "--create-stream", "b",
        "--buffer-size-bytes", "2048", "--buffer-interval", "0.5",
        "--quota-region", "eu-central-1", "--quota-records-per-s", "7",
        "--seed", "9", "--fault-record-failure-rate", "0.1", "--fault-call-error-rate", "0.2",
        "--fault-latency", "0.01", "--fault-reset-rate", "0.03",
        "--fault-accepted-error-rate", "0.04",
    )  # fmt: skip
    options = options_from_args(args)
    assert options.streams == ("a", "b")
    assert (options.port, options.data_dir) == (0, tmp_path)
    assert (options.buffer_size_bytes, options.buffer_interval_s) == (2048, 0.5)
    region = QuotaOptions.for_region("eu-central-1")
    assert options.quotas == QuotaOptions(
        records_per_s=7, requests_per_s=region.requests_per_s, bytes_per_s=region.bytes_per_s
    )
    assert options.faults == FaultOptions(
        seed=9,
        record_failure_rate=0.1,
        call_error_rate=0.2,
        latency_s=0.01,
        reset_rate=0.03,
        accepted_error_rate=0.04,
    )
    assert options.record_log is False  # a long CLI run must not grow in memory


def test_defaults_are_one_stream_and_no_faults_or_quotas() -> None:
    options = options_from_args(parse())
    assert options.streams == ("aws-ml-cert",)
    assert not options.quotas.enabled
    assert not options.faults.enabled


async def _spawn(*argv: str) -> asyncio.subprocess.Process:
    """``python -m ingest emulator ARGV`` with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ingest", "emulator", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _run_cli(*argv: str) -> tuple[int, bytes, bytes]:
    proc = await _spawn(*argv)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, stdout, stderr


@pytest.fixture
async def process(tmp_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await _spawn(
        "--port", "0", "--data-dir", str(tmp_path / "data"),
        "--buffer-interval", "600", "--create-stream", "cli-stream", "--stop-timeout", "0.5",
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_cli_serves_until_a_signal_then_flushes_and_exits_0(
    process: asyncio.subprocess.Process, tmp_path: Path, signum: signal.Signals
) -> None:
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
    ready = READY.match(line)
    assert ready is not None, line
    endpoint = ready.group(1)
    assert int(ready.group(2)) > 0
    datas = [b'{"seq": %d}\n' % i for i in range(200)]
    async with aioboto3.Session().client(
        "firehose", region_name="us-east-1", endpoint_url=endpoint
    ) as client:
        response = await client.put_record_batch(
            DeliveryStreamName="cli-stream", Records=[{"Data": d} for d in datas]
        )
        assert response["FailedPutCount"] == 0
    data_dir = tmp_path / "data"
    assert [p for p in data_dir.rglob("*") if p.is_file()] == []  # still buffered
    process.send_signal(signum)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr
    assert stdout == b"emulator stopped: 1 objects written\n"
    [path] = [p for p in data_dir.rglob("*") if p.is_file()]
    assert path.name.startswith("cli-stream-1-")
    assert path.read_bytes() == b"".join(datas)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--fault-reset-rate", "1.5"),
        ("--buffer-size-bytes", "0"),
        ("--quota-records-per-s", "-3"),
        ("--fault-latency", "nan"),
        ("--port", "70000"),
        ("--port", "-1"),
        ("--quota-region", "mars-1"),
        ("--buffer-interval", "inf"),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_flag_and_value(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(flag, value)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert flag in err
    assert value in err


async def test_a_bad_stream_name_exits_2_without_a_traceback(tmp_path: Path) -> None:
    code, stdout, stderr = await _run_cli(
        "--port", "0", "--data-dir", str(tmp_path / "data"), "--create-stream", "no spaces allowed"
    )
    assert code == 2
    assert b"Traceback" not in stderr
    assert b"'no spaces allowed'" in stderr
    assert stdout == b""


def test_every_flag_explains_itself() -> None:
    parser = build_parser()
    emulator = parser._subparsers._group_actions[0].choices["emulator"]  # type: ignore[union-attr]
    undocumented = [
        action.option_strings[0]
        for action in emulator._actions
        if action.option_strings and not action.help
    ]
    assert undocumented == []


async def test_a_data_dir_that_is_a_file_exits_2_naming_the_flag(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, stdout, stderr = await _run_cli("--port", "0", "--data-dir", str(not_a_dir))
    assert (code, stdout) == (2, b"")
    assert b"Traceback" not in stderr
    assert f"--data-dir '{not_a_dir}'".encode() in stderr
    assert b"expected a writable directory" in stderr


async def test_an_unresolvable_host_exits_2_naming_the_flag(tmp_path: Path) -> None:
    code, stdout, stderr = await _run_cli(
        "--port", "0", "--host", "999.1.1.1", "--data-dir", str(tmp_path)
    )
    assert (code, stdout) == (2, b"")
    assert b"Traceback" not in stderr
    assert b"--host '999.1.1.1'" in stderr


async def test_a_port_in_use_is_a_usage_error_like_ingest_run(tmp_path: Path) -> None:
    """The address is the user's choice: exit 2 and the plain line naming --port, as
    `ingest run` does for --http-port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stdout, stderr = await _run_cli("--port", str(port), "--data-dir", str(tmp_path))
    assert (code, stdout) == (2, b"")
    (line,) = stderr.decode().splitlines()
    assert line.startswith(f"ingest emulator: configuration error: --port {port}: cannot listen")
    assert "Address already in use" in line


async def test_process_helper_reports_counters_and_flushes_on_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with run_emulator_process(data_dir, "--buffer-interval", "600") as emulator:
        async with aioboto3.Session().client(
            "firehose", region_name="us-east-1", endpoint_url=emulator.endpoint_url
        ) as client:
            await client.put_record_batch(
                DeliveryStreamName="aws-ml-cert", Records=[{"Data": b"x\n"}] * 30
            )
        stats = await emulator.stats()
        assert stats["records_accepted"] == 30
        url = emulator.endpoint_url + "/_emulator/stats"
        with await asyncio.to_thread(urllib.request.urlopen, url, timeout=30) as raw:
            assert raw.headers["Content-Type"] == "application/json"
        assert stats["calls"] == {"PutRecordBatch": 1}
        assert emulator.objects() == []
        assert await emulator.stop() == 0
        [path] = emulator.objects()
        assert path.read_bytes() == b"x\n" * 30


async def test_a_flush_that_cannot_write_exits_1_with_a_message(
    process: asyncio.subprocess.Process, tmp_path: Path
) -> None:
    """The data dir replaced by a file while running: exit 1 naming it, no traceback."""
    assert process.stdout is not None
    ready = READY.match((await asyncio.wait_for(process.stdout.readline(), 30)).decode())
    assert ready is not None
    async with aioboto3.Session().client(
        "firehose", region_name="us-east-1", endpoint_url=ready.group(1)
    ) as client:
        await client.put_record(DeliveryStreamName="cli-stream", Record={"Data": b"x\n"})
    data_dir = tmp_path / "data"
    shutil.rmtree(data_dir)
    data_dir.write_text("not a directory any more")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1
    assert b"Traceback" not in stderr
    assert b"buffered records could not be written under" in stderr
    assert str(data_dir).encode() in stderr
    assert stdout == b""
