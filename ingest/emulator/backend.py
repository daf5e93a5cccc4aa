"""The Firehose operations: stream registry (control plane) and record intake (data plane).

Operations take the decoded JSON body and return the response body, or raise ``ApiError``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingest.emulator.delivery import ObjectWriter, check_prefix
from ingest.emulator.faults import CallFaults, FaultInjector
from ingest.emulator.options import EmulatorOptions, FaultOptions, QuotaOptions
from ingest.emulator.protocol import (
    ACCOUNT_ID,
    SLOW_DOWN,
    ApiError,
    IdFactory,
    all_ok_response,
    decode_record,
    decode_records,
    internal_failure,
    invalid_argument,
    member_name,
    mixed_response,
    must_not_be_null,
    not_found,
    put_record_response,
    record_too_large,
    serialization_error,
    slow_down,
    stream_name,
    validation_error,
)
from ingest.emulator.quotas import StreamQuota
from ingest.emulator.stats import EmulatorStats
from ingest.emulator.streams import MIB, Stream
from ingest.firehose.limits import MAX_RECORD_BYTES

S3_CONFIGS = ("ExtendedS3DestinationConfiguration", "S3DestinationConfiguration")
DEFAULT_DESTINATION = {
    "RoleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/ingest-emulator",
    "BucketARN": "arn:aws:s3:::ingest-emulator",
}
DEFAULT_LIST_LIMIT = 10


class Backend:
    def __init__(
        self, options: EmulatorOptions, writer: ObjectWriter, stats: EmulatorStats
    ) -> None:
        self.options = options
        self.streams: dict[str, Stream] = {}
        self.ids = IdFactory()
        self.stats = stats
        self.faults = FaultInjector(options.faults)
        self.quotas = options.quotas
        self._writer = writer

    # -- configuration ------------------------------------------------------------------
    def set_faults(self, faults: FaultOptions) -> None:
        self.faults = FaultInjector(faults)

    def set_quotas(self, quotas: QuotaOptions) -> None:
        """Replace every stream's quota with fresh (full) buckets."""
        self.quotas = quotas
        for stream in self.streams.values():
            stream.quota = StreamQuota(quotas)

    def add_stream(self, name: str, destination: dict[str, Any] | None = None) -> Stream:
        if name in self.streams:
            raise ApiError(
                400,
                "ResourceInUseException",
                f"Firehose {name} under accountId {ACCOUNT_ID} already exists",
            )
        destination = dict(DEFAULT_DESTINATION if destination is None else destination)
        hints = destination.get("BufferingHints") or {}
        size_mb, interval_s = hints.get("SizeInMBs"), hints.get("IntervalInSeconds")
        stream = Stream(
            name,
            f"arn:aws:firehose:{self.options.region}:{ACCOUNT_ID}:deliverystream/{name}",
            destination,
            buffer_size_bytes=self.options.buffer_size_bytes if size_mb is None else size_mb * MIB,
            buffer_interval_s=self.options.buffer_interval_s if interval_s is None else interval_s,
            quota=StreamQuota(self.quotas),
            writer=self._writer,
            stats=self.stats,
            record_log=self.options.record_log,
        )
        self.streams[name] = stream
        return stream

    def stream(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            raise not_found(name)
        return stream

    # -- control plane ------------------------------------------------------------------
    async def create_delivery_stream(self, body: dict[str, Any]) -> bytes:
        name = stream_name(body)
        stream_type = body.get("DeliveryStreamType") or "DirectPut"
        if stream_type != "DirectPut":
            raise invalid_argument(
                f"The emulator supports DirectPut streams only, not {stream_type}"
            )
        stream = self.add_stream(name, _s3_destination(body))
        return orjson.dumps({"DeliveryStreamARN": stream.arn})

    async def describe_delivery_stream(self, body: dict[str, Any]) -> bytes:
        stream = self.stream(stream_name(body))
        return orjson.dumps({"DeliveryStreamDescription": stream.describe()})

    async def list_delivery_streams(self, body: dict[str, Any]) -> bytes:
        limit = body.get("Limit", DEFAULT_LIST_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise validation_error(
                f"Value '{limit}' at 'limit' failed to satisfy constraint: "
                "Member must have value between 1 and 10000"
            )
        names = sorted(self.streams)
        if body.get("DeliveryStreamType") not in (None, "DirectPut"):
            names = []
        start = body.get("ExclusiveStartDeliveryStreamName")
        if isinstance(start, str):
            names = [n for n in names if n > start]
        return orjson.dumps(
            {"DeliveryStreamNames": names[:limit], "HasMoreDeliveryStreams": len(names) > limit}
        )

    async def delete_delivery_stream(self, body: dict[str, Any]) -> bytes:
        """Deliver what the stream buffered, then forget it (and its record log)."""
        name = stream_name(body)
        stream = self.stream(name)
        del self.streams[name]
        await stream.close()
        return b"{}"

    # -- data plane ---------------------------------------------------------------------
    async def put_record_batch(self, body: dict[str, Any], faults: CallFaults, base: str) -> bytes:
        datas = decode_records(body.get("Records"))
        stream = self._admitted_stream(body, faults)
        throttled = stream.quota.admit_records(datas)
        if len(throttled) == len(datas):
            self.stats.calls_throttled += 1
            raise slow_down()
        self.stats.records_throttled += len(throttled)
        failures = dict.fromkeys(throttled, ("ServiceUnavailableException", SLOW_DOWN))
        injected = self.faults.record_failures(len(datas), failures)
        if injected:
            self.stats.records_failed += len(injected)
            failures.update(injected)
        accepted = [d for i, d in enumerate(datas) if i not in failures] if failures else datas
        await self._store(stream, accepted, faults)
        if failures:
            return mixed_response(base, failures, len(datas))
        return all_ok_response(len(datas), base)

    async def put_record(self, body: dict[str, Any], faults: CallFaults, base: str) -> bytes:
        data = decode_record(body.get("Record"), "record")
        if len(data) > MAX_RECORD_BYTES:
            raise record_too_large("record.data")
        stream = self._admitted_stream(body, faults)
        if stream.quota.admit_records([data]):
            self.stats.calls_throttled += 1
            raise slow_down()
        injected = self.faults.record_failures(1, ())
        if injected:
            self.stats.records_failed += 1
            code, _ = injected[0]
            raise slow_down() if code == "ServiceUnavailableException" else internal_failure()
        await self._store(stream, [data], faults)
        return put_record_response(base)

    def _admitted_stream(self, body: dict[str, Any], faults: CallFaults) -> Stream:
        """The target stream, once the requests/s quota and injected call errors let it through."""
        stream = self.stream(stream_name(body))
        if not stream.quota.admit_call():
            self.stats.calls_throttled += 1
            raise slow_down()
        if faults.error is not None:
            self.stats.calls_failed += 1
            raise faults.error
        return stream

    async def _store(self, stream: Stream, accepted: list[bytes], faults: CallFaults) -> None:
        if stream.accept(accepted):
            await stream.flush()
        if faults.accepted_error is not None:
            self.stats.calls_accepted_with_error += 1
            self.stats.records_accepted_with_error += len(accepted)
            raise faults.accepted_error


def _s3_destination(body: dict[str, Any]) -> dict[str, Any]:
    """The single S3-style destination configuration of a CreateDeliveryStream body, validated."""
    given = [
        key for key, value in body.items() if key.endswith("DestinationConfiguration") and value
    ]
    if len(given) != 1:
        raise invalid_argument("Exactly one destination configuration is supported for a Firehose")
    if given[0] not in S3_CONFIGS:
        raise invalid_argument(f"The emulator supports S3 destinations only, not {given[0]}")
    config = body[given[0]]
    if not isinstance(config, dict):
        raise invalid_argument(f"{given[0]}: expected an object")
    for required in ("RoleARN", "BucketARN"):
        if not isinstance(config.get(required), str):
            raise must_not_be_null(f"{given[0]}.{required}")
    _check_hints(config.get("BufferingHints"))
    prefix = config.get("Prefix", "")
    problem = check_prefix(prefix) if isinstance(prefix, str) else "must be a string"
    if problem:
        raise invalid_argument(f"Prefix {prefix!r} {problem}")
    return config


def _check_hints(hints: Any) -> None:
    if hints is None:
        return
    if not isinstance(hints, dict):
        raise invalid_argument("BufferingHints: expected an object")
    for field, low, high in (("SizeInMBs", 1, 128), ("IntervalInSeconds", 0, 900)):
        value = hints.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise serialization_error(
                f"BufferingHints.{field}: expected an integer, got {type(value).__name__}"
            )
        if not low <= value <= high:
            raise validation_error(
                f"Value '{value}' at 'bufferingHints.{member_name(field)}' failed to "
                f"satisfy constraint: Member must have value between {low} and {high}"
            )
