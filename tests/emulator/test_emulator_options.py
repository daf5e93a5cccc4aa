"""The in-process API refuses bad options with an error naming the field and value."""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from ingest.emulator import Emulator, EmulatorOptions, FaultOptions, QuotaOptions


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"streams": "orders"}, "streams='orders'"),
        ({"buffer_interval_s": math.nan}, "buffer_interval_s=nan"),
        ({"buffer_interval_s": math.inf}, "buffer_interval_s=inf"),
        ({"buffer_size_bytes": 0}, "buffer_size_bytes=0"),
        ({"port": 70000}, "port=70000"),
        ({"region": "us-east1"}, "region='us-east1'"),
    ],
)
def test_bad_emulator_options_name_the_field_and_value(
    overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match="expected") as raised:
        Emulator(**overrides)
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: FaultOptions(latency_s=math.nan), "latency_s=nan"),
        (lambda: FaultOptions(latency_jitter_s=-1.0), "latency_jitter_s=-1.0"),
        (lambda: FaultOptions(call_error_rate=math.nan), "call_error_rate=nan"),
        (lambda: QuotaOptions(records_per_s=1.5), "records_per_s=1.5"),
        (lambda: QuotaOptions(bytes_per_s=0), "bytes_per_s=0"),
        (lambda: QuotaOptions.for_region("mars-1"), "region='mars-1'"),
    ],
)
def test_bad_fault_and_quota_options_name_the_field_and_value(build: Any, named: str) -> None:
    with pytest.raises(ValueError, match="expected") as raised:
        build()
    assert named in str(raised.value)


def test_a_data_dir_given_as_a_string_is_a_path(tmp_path: Path) -> None:
    options = EmulatorOptions(data_dir=str(tmp_path / "objects"), streams=["a", "b"])  # type: ignore[arg-type]
    assert options.data_dir == tmp_path / "objects"
    assert options.streams == ("a", "b")


async def test_an_emulator_with_a_string_data_dir_delivers_there(tmp_path: Path) -> None:
    async with Emulator(data_dir=str(tmp_path), buffer_interval_s=600) as emulator:
        assert emulator.data_dir == tmp_path
        assert (tmp_path / ".tmp").is_dir()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_an_ipv6_endpoint_url_is_usable_by_boto3(tmp_path: Path) -> None:
    """``http://[::1]:PORT``, not ``http://::1:PORT`` (which no client can parse)."""
    host = "::1" if _ipv6_loopback() else "127.0.0.1"
    async with Emulator(host=host, data_dir=tmp_path) as emulator:
        if host == "::1":
            assert emulator.endpoint_url.startswith("http://[::1]:")
        async with aioboto3.Session().client(
            "firehose", region_name="us-east-1", endpoint_url=emulator.endpoint_url
        ) as client:
            listed = await client.list_delivery_streams()
        assert listed["DeliveryStreamNames"] == ["aws-ml-cert"]
