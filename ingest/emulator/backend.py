"""The Firehose operations: stream registry (control plane) and record intake (data plane).

Operations take the decoded JSON body and return the response body, or raise ``ApiError``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from ingest.emulator.destinations import Destination, DestinationError
from ingest.emulator.faults import CallFaults, FaultInjector
from ingest.emulator.layout import ERROR_OUTPUT_TYPES, Layout, LayoutError
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

log = structlog.get_logger(__name__)

S3_CONFIGS = ("ExtendedS3DestinationConfiguration", "S3DestinationConfiguration")
DEFAULT_DESTINATION = {
    "RoleARN": f"arn:aws:iam::{ACCOUNT_ID}:role/ingest-emulator",
    "BucketARN": "arn:aws:s3:::ingest-emulator",
}
DEFAULT_LIST_LIMIT = 10
#: Prefixes are checked against the keys they give at this instant (long names, 2-digit fields).
SAMPLE_INSTANT = datetime(2026, 9, 30, 23, 59, 59, tzinfo=UTC).timestamp()
DESTINATION_UNAVAILABLE = (
    "The delivery stream cannot write to its destination and its buffer is full; retry later."
)


def destination_unavailable() -> ApiError:
    """503 ServiceUnavailableException: retriable, and certain that nothing was stored (a 500
    InternalFailure would tell the client the records may have been stored, so a resend could
    be a duplicate). It is what Firehose answers when it cannot take a call right now."""
    return ApiError(503, "ServiceUnavailableException", DESTINATION_UNAVAILABLE)


class Backend:
    def __init__(self, options: EmulatorOptions, sink: Destination, stats: EmulatorStats) -> None:
        self.options = options
        self.streams: dict[str, Stream] = {}
        self.ids = IdFactory()
        self.stats = stats
        self.faults = FaultInjector(options.faults)
        self.quotas = options.quotas
        self._sink = sink

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
        if destination is None:
            destination = self.default_destination()
        destination = dict(destination)
        layout = self.layout_of(destination)
        hints = destination.get("BufferingHints") or {}
        size_mb, interval_s = hints.get("SizeInMBs"), hints.get("IntervalInSeconds")
        stream = Stream(
            name,
            f"arn:aws:firehose:{self.options.region}:{ACCOUNT_ID}:deliverystream/{name}",
            destination,
            layout=layout,
            buffer_size_bytes=self.options.buffer_size_bytes if size_mb is None else size_mb * MIB,
            buffer_interval_s=self.options.buffer_interval_s if interval_s is None else interval_s,
            quota=StreamQuota(self.quotas),
            sink=self._sink,
            stats=self.stats,
            record_log=self.options.record_log,
        )
        self.streams[name] = stream
        return stream

    def default_destination(self) -> dict[str, Any]:
        """The destination of the streams the emulator creates itself (its layout options)."""
        options = self.options
        bucket = options.s3_bucket or DEFAULT_DESTINATION["BucketARN"].rsplit(":", 1)[-1]
        destination: dict[str, Any] = {**DEFAULT_DESTINATION, "BucketARN": f"arn:aws:s3:::{bucket}"}
        destination.update(options.layout_config())
        return destination

    def layout_of(self, destination: dict[str, Any], kind: str = S3_CONFIGS[0]) -> Layout:
        """The validated layout of ``destination``; ApiError as Firehose answers a bad one."""
        try:
            layout = Layout.from_config(destination, kind)
        except LayoutError as error:
            if error.validation:
                raise validation_error(error.message) from None
            raise invalid_argument(error.message) from None
        when = layout.local_time(SAMPLE_INSTANT)
        for field, text, evaluated in (
            ("Prefix", destination.get("Prefix", ""), layout.prefix.render(when)),
            (
                "ErrorOutputPrefix",
                destination.get("ErrorOutputPrefix", ""),
                layout.error_prefix.render(when, ERROR_OUTPUT_TYPES[0]),
            ),
        ):
            problem = self._sink.check_prefix(evaluated)
            if problem:
                raise invalid_argument(f"{field} {text!r} {problem}")
        return layout

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
        kind, config = _s3_destination(body)
        self.layout_of(config, kind)  # checked before the name, as a bad request changes nothing
        stream = self.add_stream(name, config)
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
        """Deliver what the stream buffered (one attempt), then forget it and its record log.

        If that write fails the buffer is dropped, as Firehose drops what a deleted stream
        still buffers; a log line says how much."""
        name = stream_name(body)
        stream = self.stream(name)
        del self.streams[name]
        try:
            await stream.close()
        except DestinationError as error:
            records, size = stream.discard()
            log.warning(
                "emulator_deleted_stream_dropped",
                stream=name,
                records=records,
                bytes=size,
                error=str(error),
            )
        return b"{}"

    # -- data plane ---------------------------------------------------------------------
    async def put_record_batch(self, body: dict[str, Any], faults: CallFaults, base: str) -> bytes:
        datas = decode_records(body.get("Records"))
        stream = self._admitted_stream(body, faults)
        self._check_room(stream, datas)
        throttled = stream.quota.admit_records(datas)
        if len(throttled) == len(datas):
            self.stats.calls_throttled += 1
            raise slow_down()
        self.stats.records_throttled += len(throttled)
        failures = dict.fromkeys(throttled, ("ServiceUnavailableException", SLOW_DOWN))
        injected = self.faults.record_failures(len(datas), failures)
        if injected:
            self.stats.records_failed += len(injected)
            self.stats.count_injected("record", (code for code, _ in injected.values()))
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
        self._check_room(stream, [data])
        if stream.quota.admit_records([data]):
            self.stats.calls_throttled += 1
            raise slow_down()
        injected = self.faults.record_failures(1, ())
        if injected:
            self.stats.records_failed += 1
            code, _ = injected[0]
            self.stats.count_injected("call", (code,))  # PutRecord: the whole call fails
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
            self.stats.count_injected("call", (faults.error.code,))
            raise faults.error
        return stream

    def _check_room(self, stream: Stream, datas: list[bytes]) -> None:
        """Refuse (503, nothing stored) what a stream whose writes fail could not hold."""
        if stream.refuses(datas):
            self.stats.calls_destination_unavailable += 1
            raise destination_unavailable()

    async def _store(self, stream: Stream, accepted: list[bytes], faults: CallFaults) -> None:
        if stream.accept(accepted):
            # A failed write keeps the records buffered (within the stream's hold limit) and
            # retries them; this call's records are held, so it is answered as stored.
            with contextlib.suppress(DestinationError):
                await stream.flush()
        if faults.accepted_error is not None:
            self.stats.calls_accepted_with_error += 1
            self.stats.records_accepted_with_error += len(accepted)
            raise faults.accepted_error


def _s3_destination(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The single S3-style destination configuration of a CreateDeliveryStream body (its kind
    and value), with the required fields and buffering hints checked."""
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
    return given[0], config


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
