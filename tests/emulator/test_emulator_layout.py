"""Firehose's object layout: the documented prefix examples, the rules AWS enforces, GZIP,
FileExtension and CustomTimeZone, through the layout itself, CreateDeliveryStream (as boto3 sends
it), the Python options and the CLI flags of the default stream."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ingest.emulator import Emulator
from ingest.emulator.layout import Layout, LayoutError, compile_timestamp

# "10:30 AM UTC on Aug 27, 2018", the instant of the developer guide's example table.
EXAMPLE = datetime(2018, 8, 27, 10, 30, 5, tzinfo=UTC).timestamp()
SUFFIX = (
    r"s-1-2018-08-27-10-30-05-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)
DESTINATION = {"RoleARN": "arn:aws:iam::123456789012:role/r", "BucketARN": "arn:aws:s3:::b"}
RANDOM = "[0-9a-f]{11}"


def keys(config: dict[str, Any]) -> tuple[str, str]:
    """(data key, error key) of an object of stream ``s`` whose oldest record is EXAMPLE."""
    layout = Layout.from_config(config)
    return (
        layout.object_key("s", "1", EXAMPLE),
        layout.object_key("s", "1", EXAMPLE, error_type="processing-failed"),
    )


@pytest.mark.parametrize(
    ("config", "data", "error"),
    [
        # No prefix at all: the default date path; failures under the error type.
        ({}, "2018/08/27/10/", "processing-failed/2018/08/27/10/"),
        # A prefix without expressions gets the date path glued on with no slash (real AWS).
        ({"Prefix": "legacy"}, "legacy2018/08/27/10/", "legacyprocessing-failed/2018/08/27/10/"),
        ({"Prefix": "raw/"}, "raw/2018/08/27/10/", "raw/processing-failed/2018/08/27/10/"),
        # The developer guide's examples (at the example instant).
        (
            {"ErrorOutputPrefix": "myFirehoseFailures/!{firehose:error-output-type}/"},
            "2018/08/27/10/",
            # No timestamp in it: the date path is appended, as the semantic rules say.
            "myFirehoseFailures/processing-failed/2018/08/27/10/",
        ),
        (
            {
                "Prefix": "myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/"
                "rand=!{firehose:random-string}",
                "ErrorOutputPrefix": "myFirehoseFailures/!{firehose:error-output-type}/"
                "!{timestamp:yyyy}/anyMonth/!{timestamp:dd}",
            },
            f"myFirehose/DeliveredYear=2018/anyMonth/rand={RANDOM}",
            "myFirehoseFailures/processing-failed/2018/anyMonth/27",
        ),
        (
            {
                "Prefix": "myPrefix/year=!{timestamp:yyyy}/month=!{timestamp:MM}/"
                "day=!{timestamp:dd}/hour=!{timestamp:HH}/",
                "ErrorOutputPrefix": "myErrorPrefix/!{timestamp:'year='yyyy'/month='MM'/day='dd"
                "'/hour='HH}/!{firehose:error-output-type}",
            },
            "myPrefix/year=2018/month=08/day=27/hour=10/",
            "myErrorPrefix/year=2018/month=08/day=27/hour=10/processing-failed",
        ),
        (
            {"Prefix": "myFirehosePrefix"},
            "myFirehosePrefix2018/08/27/10/",
            "myFirehosePrefixprocessing-failed/2018/08/27/10/",
        ),
        # A plain ErrorOutputPrefix: the error type and the date path are appended.
        (
            {"ErrorOutputPrefix": "errors/"},
            "2018/08/27/10/",
            "errors/processing-failed/2018/08/27/10/",
        ),
        # random-string alone: no timestamp, so the date path follows it.
        (
            {
                "Prefix": "!{firehose:random-string}/",
                "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
            },
            f"{RANDOM}/2018/08/27/10/",
            "e/processing-failed/2018/08/27/10/",
        ),
    ],
)
def test_documented_prefixes_give_the_documented_keys(
    config: dict[str, Any], data: str, error: str
) -> None:
    data_key, error_key = keys(config)
    assert re.fullmatch(data + SUFFIX, data_key), data_key
    assert re.fullmatch(re.escape(error) + SUFFIX, error_key), error_key


def test_every_random_string_is_new_and_11_characters() -> None:
    layout = Layout.from_config(
        {
            "Prefix": "!{firehose:random-string}/!{firehose:random-string}/!{timestamp:yyyy}/",
            "ErrorOutputPrefix": "e/!{firehose:error-output-type}/",
        }
    )
    seen = set()
    for _ in range(50):
        first, second, year, _rest = layout.evaluated_prefix(EXAMPLE).split("/")
        assert len(first) == len(second) == 11
        assert first != second
        assert year == "2018"
        seen.add(first)
    assert len(seen) == 50


def test_custom_time_zone_moves_the_prefix_and_the_file_name_time() -> None:
    tokyo, _ = keys({"CustomTimeZone": "Asia/Tokyo"})
    assert re.fullmatch(r"2018/08/27/19/s-1-2018-08-27-19-30-05-[0-9a-f-]{36}", tokyo)
    new_york, _ = keys({"CustomTimeZone": "America/New_York", "Prefix": "x/"})
    assert new_york.startswith("x/2018/08/27/06/s-1-2018-08-27-06-30-05-")


@pytest.mark.parametrize(
    ("config", "extension"),
    [
        ({}, ""),
        ({"CompressionFormat": "UNCOMPRESSED"}, ""),
        ({"CompressionFormat": "GZIP"}, ".gz"),
        ({"CompressionFormat": "GZIP", "FileExtension": ".json.gz"}, ".json.gz"),
        ({"FileExtension": ".ndjson"}, ".ndjson"),
        ({"CompressionFormat": "GZIP", "FileExtension": ""}, ""),
    ],
)
def test_extension_follows_compression_unless_file_extension_replaces_it(
    config: dict[str, Any], extension: str
) -> None:
    data_key, error_key = keys(config)
    assert re.fullmatch("2018/08/27/10/" + SUFFIX + re.escape(extension), data_key), data_key
    pattern = "processing-failed/2018/08/27/10/" + SUFFIX + re.escape(extension)
    assert re.fullmatch(pattern, error_key), error_key


def test_gzip_objects_hold_the_gzip_of_the_concatenated_records() -> None:
    layout = Layout.from_config({"CompressionFormat": "GZIP"})
    records = [b'{"seq": %d}\n' % i for i in range(1000)]
    [body] = layout.encode(records)
    assert body[:2] == b"\x1f\x8b"
    assert gzip.decompress(body) == b"".join(records)
    assert Layout.from_config({}).encode(records) == records


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy/MM/dd/HH", "2023/12/31/15"),
        ("yy-M-d H:m:s", "23-12-31 15:4:5"),
        ("'year='yyyy'/month='MM", "year=2023/month=12"),
        ("'it''s' ''", "it's '"),
        ("MMM MMMM EEE EEEE a hh KK kk", "Dec December Sun Sunday PM 03 03 15"),
        ("D SSS Z", "365 123 +0000"),
        ("YYYY-'W'ww", "2024-W01"),  # week-based year: Dec 31, 2023 is in the first week
        ("uuuu.MM", "2023.12"),
    ],
)
def test_java_date_time_formatter_patterns(pattern: str, expected: str) -> None:
    when = datetime(2023, 12, 31, 15, 4, 5, 123456, tzinfo=UTC)
    assert compile_timestamp(pattern)(when) == expected


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"Prefix": "!{timestamp:yyyy/MM/dd}"}, "ErrorOutputPrefix", "cannot be null or empty"),
        ({"Prefix": "a!{b"}, "Prefix", "may only start an expression"),
        ({"Prefix": "a/!{timestamp:yyyy/"}, "Prefix", "may only start an expression"),
        (
            {
                "Prefix": "!{timestamp:yyyy-bb}",
                "ErrorOutputPrefix": "e/!{firehose:error-output-type}",
            },
            "Prefix",
            "unknown pattern letter: 'b'",
        ),
        (
            {
                "Prefix": "!{timestamp:'open}",
                "ErrorOutputPrefix": "e/!{firehose:error-output-type}",
            },
            "Prefix",
            "unterminated quote",
        ),
        (
            {"Prefix": "!{timestamp:ddd}", "ErrorOutputPrefix": "e/!{firehose:error-output-type}"},
            "Prefix",
            "too many pattern letters",
        ),
        ({"ErrorOutputPrefix": "x/!{timestamp:yyyy}/"}, "ErrorOutputPrefix", "error-output-type"),
        ({"Prefix": "!{firehose:error-output-type}/"}, "Prefix", "can't contain"),
        (
            {"Prefix": "!{firehose:nope}", "ErrorOutputPrefix": "e/!{firehose:error-output-type}"},
            "Prefix",
            "random-string and error-output-type",
        ),
        (
            {"Prefix": "!{ns:v}", "ErrorOutputPrefix": "e/!{firehose:error-output-type}"},
            "Prefix",
            "unknown namespace 'ns'",
        ),
        (
            {
                "Prefix": "!{partitionKeyFromQuery:id}/",
                "ErrorOutputPrefix": "e/!{firehose:error-output-type}",
            },
            "Prefix",
            "dynamic partitioning",
        ),
        ({"Prefix": "p" * 600}, "Prefix", "evaluates to 614 characters; the limit is 512"),
        ({"CustomTimeZone": "Mars/Olympus_Mons"}, "CustomTimeZone", "not a known time zone"),
        ({"CompressionFormat": "ZIP"}, "CompressionFormat", "not supported by the emulator"),
    ],
)
def test_what_firehose_refuses_is_an_invalid_argument(
    config: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(LayoutError, match=re.escape(message)) as caught:
        Layout.from_config(config)
    assert (caught.value.field, caught.value.validation) == (field, False)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"FileExtension": "gz"}, "FileExtension"),
        ({"FileExtension": ".GZ"}, "FileExtension"),
        ({"FileExtension": "." + "a" * 128}, "FileExtension"),
        ({"CustomTimeZone": "UTC+9"}, "CustomTimeZone"),
        ({"CompressionFormat": "gzip"}, "CompressionFormat"),
        ({"Prefix": "x" * 1025}, "Prefix"),
    ],
)
def test_model_constraints_are_validation_errors(config: dict[str, Any], field: str) -> None:
    with pytest.raises(LayoutError, match="failed to satisfy constraint") as caught:
        Layout.from_config(config)
    assert (caught.value.field, caught.value.validation) == (field, True)


# -- through the API, as boto3 sends it ------------------------------------------------------
async def test_create_with_every_layout_field_writes_the_documented_object(
    emulator: Emulator, firehose: Any
) -> None:
    config = {
        **DESTINATION,
        "Prefix": "events/!{timestamp:yyyy}/!{timestamp:MM}/!{firehose:random-string}/",
        "ErrorOutputPrefix": "failed/!{firehose:error-output-type}/!{timestamp:yyyy}/",
        "CompressionFormat": "GZIP",
        "FileExtension": ".ndjson.gz",
        "CustomTimeZone": "Asia/Tokyo",
        "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
    }
    await firehose.create_delivery_stream(
        DeliveryStreamName="laid-out", ExtendedS3DestinationConfiguration=config
    )
    records = [b'{"seq": %d}\n' % i for i in range(300)]
    before = datetime.now(UTC).timestamp()
    await firehose.put_record_batch(
        DeliveryStreamName="laid-out", Records=[{"Data": r} for r in records]
    )
    await emulator.flush("laid-out")
    [path] = emulator.delivered_objects("laid-out")
    key = path.relative_to(emulator.data_dir).as_posix()
    tokyo = datetime.fromtimestamp(before, Layout.from_config(config).zone)
    expected = (
        rf"events/{tokyo:%Y}/{tokyo:%m}/[0-9a-f]{{11}}/laid-out-1-{tokyo:%Y-%m-%d-%H}-\d\d-\d\d-"
        r"[0-9a-f-]{36}\.ndjson\.gz"
    )
    assert re.fullmatch(expected, key), key
    assert gzip.decompress(path.read_bytes()) == b"".join(records)
    described = await firehose.describe_delivery_stream(DeliveryStreamName="laid-out")
    [destination] = described["DeliveryStreamDescription"]["Destinations"]
    s3 = destination["ExtendedS3DestinationDescription"]
    for field in ("Prefix", "ErrorOutputPrefix", "CompressionFormat", "FileExtension"):
        assert s3[field] == config[field]
    assert s3["CustomTimeZone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("fields", "status", "code", "message"),
    [
        (
            {"Prefix": "logs/!{timestamp:yyyy}/"},
            400,
            "InvalidArgumentException",
            "ErrorOutputPrefix",
        ),
        (
            {
                "Prefix": "!{timestamp:qqqq}/",
                "ErrorOutputPrefix": "e/!{firehose:error-output-type}",
            },
            400,
            "InvalidArgumentException",
            "not supported here",
        ),
        ({"FileExtension": "gz"}, 400, "ValidationException", "fileExtension"),
        ({"CompressionFormat": "Snappy"}, 400, "InvalidArgumentException", "Snappy"),
        ({"CustomTimeZone": "Nowhere/Town"}, 400, "InvalidArgumentException", "Nowhere/Town"),
    ],
)
async def test_a_bad_layout_is_refused_and_creates_nothing(
    firehose: Any, fields: dict[str, Any], status: int, code: str, message: str
) -> None:
    with pytest.raises(ClientError) as caught:
        await firehose.create_delivery_stream(
            DeliveryStreamName="bad", ExtendedS3DestinationConfiguration={**DESTINATION, **fields}
        )
    error = caught.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code)
    assert message in error["Error"]["Message"]
    assert (await firehose.list_delivery_streams())["DeliveryStreamNames"] == ["aws-ml-cert"]


async def test_the_plain_s3_configuration_takes_the_prefix_rules_too(
    emulator: Emulator, firehose: Any
) -> None:
    await firehose.create_delivery_stream(
        DeliveryStreamName="plain",
        S3DestinationConfiguration={**DESTINATION, "Prefix": "legacy", "CompressionFormat": "GZIP"},
    )
    await firehose.put_record(DeliveryStreamName="plain", Record={"Data": b"x\n"})
    await emulator.flush("plain")
    [path] = emulator.delivered_objects("plain")
    key = path.relative_to(emulator.data_dir).as_posix()
    assert re.fullmatch(r"legacy\d{4}/\d\d/\d\d/\d\d/plain-1-[\d-]{19}-[0-9a-f-]{36}\.gz", key), key
    assert gzip.decompress(path.read_bytes()) == b"x\n"


# -- the default stream: Python options and CLI flags ---------------------------------------
async def test_layout_options_apply_to_the_streams_the_emulator_creates(
    tmp_path: Path, firehose_for: Any
) -> None:
    async with Emulator(
        data_dir=tmp_path,
        prefix="app/!{timestamp:yyyy-MM-dd}/",
        error_output_prefix="app-errors/!{firehose:error-output-type}/",
        compression="GZIP",
        file_extension=".json.gz",
        custom_time_zone="UTC",
        streams=("one", "two"),
    ) as emu:
        async with firehose_for(emu) as client:
            for name in ("one", "two"):
                await client.put_record(DeliveryStreamName=name, Record={"Data": b"x\n"})
        await emu.flush()
        today = datetime.now(UTC)
        for name in ("one", "two"):
            [path] = emu.delivered_objects(name)
            key = path.relative_to(tmp_path).as_posix()
            assert key.startswith(f"app/{today:%Y-%m-%d}/{name}-1-"), key
            assert key.endswith(".json.gz")
            assert gzip.decompress(path.read_bytes()) == b"x\n"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prefix": "a/!{timestamp:yyyy}/"}, "error_output_prefix is needed"),
        ({"compression": "ZIP"}, "compression='ZIP'"),
        ({"file_extension": "json"}, "file_extension='json'"),
        ({"custom_time_zone": "Moon/Base"}, "custom_time_zone='Moon/Base'"),
        ({"s3_bucket": "Bad_Bucket"}, "s3_bucket='Bad_Bucket'"),
        ({"s3_endpoint_url": "ftp://x"}, "s3_endpoint_url='ftp://x'"),
        ({"s3_endpoint_url": "http://127.0.0.1:9000"}, "needs s3_bucket"),
        ({"s3_bucket": "ok-bucket", "data_dir": "/tmp/x"}, "exclude each other"),
    ],
)
def test_bad_layout_or_destination_options_name_the_option(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Emulator(**overrides)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--prefix", "a/!{timestamp:yyyy}/"], "--error-output-prefix"),
        (["--prefix", "!{timestamp:bb}", "--error-output-prefix", "e/!{firehose:error-output-type}"],  # noqa: E501
         "--prefix '!{timestamp:bb}'"),
        (["--file-extension", "json"], "--file-extension 'json'"),
        (["--custom-time-zone", "Moon/Base"], "--custom-time-zone 'Moon/Base'"),
        (["--compression", "ZIP"], "--compression"),
        (["--s3-bucket", "Bad_Bucket"], "--s3-bucket 'Bad_Bucket'"),
        (["--s3-endpoint-url", "nope", "--s3-bucket", "b-1"], "--s3-endpoint-url 'nope'"),
        (["--s3-endpoint-url", "http://127.0.0.1:1"], "needs --s3-bucket"),
        (["--s3-bucket", "b-1", "--data-dir", "x"], "--data-dir and --s3-bucket"),
    ],
)  # fmt: skip
def test_cli_layout_and_s3_flags_exit_2_naming_the_flag(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingest", "emulator", "--port", "0", *flags],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # argparse may print its usage first
    assert last.startswith("ingest emulator: ")
    assert "error" in last
    assert message in last
