"""`ingest verify --s3` against moto_server's S3: the same planted damage, the same counts."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import aioboto3
import pytest

from ingest.cli import main
from tests.verify.conftest import assert_planted, planted_objects


async def upload(endpoint: str, bucket: str, objects: dict[str, bytes]) -> None:
    async with aioboto3.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
        for key, data in objects.items():
            await s3.put_object(Bucket=bucket, Key=key, Body=data)


def test_planted_damage_is_found_exactly_in_s3(
    moto: str, report_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = {f"firehose/{key}": data for key, data in planted_objects().items()}
    objects["elsewhere/not-under-the-prefix"] = b'{"seq":0,"producer":"A"}\n'
    asyncio.run(upload(moto, "dest", objects))
    argv = ["verify", "--s3", "s3://dest/firehose/", "--s3-endpoint-url", moto]
    code = main([*argv, "--report", str(report_file), "--json"])
    found = json.loads(capsys.readouterr().out)
    assert code == 1
    assert_planted(found)
    assert found["source"] == "s3://dest/firehose/"

    assert main([*argv, "--run-id", "A", "--expect", "1995"]) == 1  # 100-104 still missing
    assert "5 events MISSING in 1 of 1 run id (exit 1)" in capsys.readouterr().out


def test_a_complete_bucket_exits_0(moto: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ingest.events import EventGenerator

    events = EventGenerator(run_id="r").batch(1200)
    objects = {f"k{i}": b"".join(events[i : i + 100]) for i in range(0, 1200, 100)}
    asyncio.run(upload(moto, "whole", objects))
    code = main(["verify", "--s3", "s3://whole", "--s3-endpoint-url", moto, "--expect", "1200"])
    assert code == 0, capsys.readouterr()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_unreachable_s3_exits_1_with_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code = main(["verify", "--s3", "s3://bucket/prefix", "--s3-endpoint-url", url])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ingest verify: cannot read s3://bucket/prefix at {url}: ")
    assert "Could not connect" in lines[0]
    assert "Traceback" not in captured.err


def test_a_missing_bucket_exits_1(moto: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", "--s3", "s3://no-such-bucket", "--s3-endpoint-url", moto])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("ingest verify: cannot read s3://no-such-bucket/")
    assert "NoSuchBucket" in err
