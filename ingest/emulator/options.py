"""Frozen, keyword-only configuration of the emulator: quotas, faults and the server itself."""

from __future__ import annotations

import math
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from ingest.bounded_http import ServerLimits
from ingest.firehose.limits import DEFAULT_REGION, DEFAULT_STREAM, default_quota

DEFAULT_BUFFER_SIZE_BYTES = 1024 * 1024
DEFAULT_BUFFER_INTERVAL_S = 1.0
#: The emulator serves many producers: half the open-file limit less the accept backlog (at
#: most 4,096) for connections, 256 MiB of request bodies being read at once (about 45 full
#: PutRecordBatch bodies).
DEFAULT_SERVER_LIMITS = ServerLimits(
    default_max_connections=4096,
    fd_share=0.5,
    backlog=128,
    header_timeout_s=10.0,
    body_timeout_s=30.0,
    idle_timeout_s=60.0,
    max_buffered_bytes=256 * 1024 * 1024,
)
DEFAULT_STOP_TIMEOUT_S = 10.0
#: Destination field -> EmulatorOptions field, to name the option in an error message.
LAYOUT_OPTIONS = {
    "Prefix": "prefix",
    "ErrorOutputPrefix": "error_output_prefix",
    "CompressionFormat": "compression",
    "FileExtension": "file_extension",
    "CustomTimeZone": "custom_time_zone",
}
#: AWS region names: us-east-1, ap-southeast-2, us-gov-west-1, cn-north-1, ...
REGION_PATTERN = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}")


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: expected a fraction between 0.0 and 1.0")


def _check_non_negative(name: str, value: float | None) -> None:
    # `not value >= 0` also refuses NaN, which no comparison would catch otherwise.
    if value is not None and (not value >= 0 or math.isinf(value)):
        raise ValueError(f"{name}={value!r}: expected a finite number >= 0")


def check_region(region: str) -> None:
    """ValueError unless ``region`` looks like an AWS region name (a typo must not pass)."""
    if not isinstance(region, str) or REGION_PATTERN.fullmatch(region) is None:
        raise ValueError(f"region={region!r}: expected an AWS region name such as 'us-east-1'")


@dataclass(frozen=True, kw_only=True)
class FaultOptions:
    """Injected faults, all off by default; only PutRecord and PutRecordBatch are affected.

    Rates are fractions in [0, 1]. With a ``seed`` the sequence of decisions is reproducible
    for the same sequence of calls.
    """

    seed: int | None = None
    #: fraction of records answered ServiceUnavailableException/InternalFailure in a 200
    record_failure_rate: float = 0.0
    #: fraction of calls answered 500 InternalFailure or 503 ServiceUnavailableException
    call_error_rate: float = 0.0
    #: seconds added to every data call, plus a uniform jitter in [0, latency_jitter_s]
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0
    #: fraction of calls whose connection is reset (TCP RST) after the body was read
    reset_rate: float = 0.0
    #: fraction of calls whose records are stored but the client gets a 500 (duplicates)
    accepted_error_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("record_failure_rate", "call_error_rate", "reset_rate", "accepted_error_rate"):
            _check_rate(name, getattr(self, name))
        _check_non_negative("latency_s", self.latency_s)
        _check_non_negative("latency_jitter_s", self.latency_jitter_s)

    @property
    def enabled(self) -> bool:
        return any(
            (
                self.record_failure_rate,
                self.call_error_rate,
                self.latency_s,
                self.latency_jitter_s,
                self.reset_rate,
                self.accepted_error_rate,
            )
        )


@dataclass(frozen=True, kw_only=True)
class QuotaOptions:
    """Per-stream throughput quotas (None = unlimited), each a token bucket with a 1 s burst."""

    records_per_s: int | None = None
    requests_per_s: int | None = None
    bytes_per_s: int | None = None

    def __post_init__(self) -> None:
        for name in ("records_per_s", "requests_per_s", "bytes_per_s"):
            value = getattr(self, name)
            bad_type = isinstance(value, bool) or not isinstance(value, int)
            if value is not None and (bad_type or value <= 0):
                raise ValueError(f"{name}={value!r}: expected a positive integer or None")

    @classmethod
    def for_region(cls, region: str) -> QuotaOptions:
        """AWS's default Direct PUT quota for ``region``; ValueError for a malformed name."""
        check_region(region)
        quota = default_quota(region)
        return cls(
            records_per_s=quota.records_per_s,
            requests_per_s=quota.requests_per_s,
            bytes_per_s=quota.bytes_per_s,
        )

    @property
    def enabled(self) -> bool:
        return any(
            v is not None for v in (self.records_per_s, self.requests_per_s, self.bytes_per_s)
        )


@dataclass(frozen=True, kw_only=True)
class EmulatorOptions:
    """How the emulator listens, where it writes and how it behaves.

    ``data_dir=None`` makes the emulator use a temporary directory that it deletes on stop.
    ``s3_bucket`` (and ``s3_endpoint_url`` for an S3-compatible store such as MinIO or
    moto_server) writes every object to that bucket instead of a directory; credentials come
    from botocore's usual chain. ``prefix``, ``error_output_prefix``, ``file_extension``,
    ``custom_time_zone`` and ``compression`` are the object layout of the streams the emulator
    creates itself (as the CreateDeliveryStream fields of the same names; see ``layout.py``).
    ``stop_timeout_s``: on stop, how long failed writes of buffered records are retried.
    ``record_log`` keeps every stored record in memory for ``stored_records``; it grows with
    the run, so the CLI turns it off (in-process use and tests keep it on).
    ``tls_cert`` and ``tls_key`` (PEM files, both or neither) make it serve HTTPS, as Firehose
    does, so clients' CA bundle and proxy settings can be tried against it.
    """

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None
    streams: tuple[str, ...] = (DEFAULT_STREAM,)
    buffer_size_bytes: int = DEFAULT_BUFFER_SIZE_BYTES
    buffer_interval_s: float = DEFAULT_BUFFER_INTERVAL_S
    quotas: QuotaOptions = field(default_factory=QuotaOptions)
    faults: FaultOptions = field(default_factory=FaultOptions)
    record_log: bool = True
    #: What the HTTP server may hold (connections, timeouts, buffered body bytes).
    server_limits: ServerLimits = DEFAULT_SERVER_LIMITS
    region: str = DEFAULT_REGION
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    prefix: str = ""
    error_output_prefix: str | None = None
    file_extension: str | None = None
    custom_time_zone: str | None = None
    compression: str = "UNCOMPRESSED"
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        streams: object = self.streams  # typed as a tuple, but callers may pass anything
        if isinstance(streams, str):
            # tuple("orders") would silently create streams o, r, d, e, s.
            raise ValueError(f"streams={streams!r}: expected a tuple of names, not a string")
        object.__setattr__(self, "streams", tuple(self.streams))
        data_dir: object = self.data_dir
        if isinstance(data_dir, str | os.PathLike):
            object.__setattr__(self, "data_dir", Path(data_dir))
        if isinstance(self.buffer_size_bytes, bool) or self.buffer_size_bytes <= 0:
            raise ValueError(f"buffer_size_bytes={self.buffer_size_bytes!r}: expected > 0")
        _check_non_negative("buffer_interval_s", self.buffer_interval_s)
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port!r}: expected 0-65535")
        check_region(self.region)
        _check_non_negative("stop_timeout_s", self.stop_timeout_s)
        self._check_destination()
        self._check_tls()

    def _check_tls(self) -> None:
        for name in ("tls_cert", "tls_key"):
            value: object = getattr(self, name)
            if isinstance(value, str | os.PathLike):
                object.__setattr__(self, name, Path(value))
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = (
                ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            )
            raise ValueError(f"{given}={str(getattr(self, given))!r}: expected {missing} too")
        self.ssl_context()  # an unreadable or mismatched pair fails here, not at start

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``tls_cert``/``tls_key``, or None (plain HTTP).
        ValueError names the files when they cannot be loaded."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(
                f"tls_cert={str(self.tls_cert)!r}: cannot load it with tls_key="
                f"{str(self.tls_key)!r} ({reason}); expected a PEM certificate and its key"
            ) from None
        return context

    def _check_destination(self) -> None:
        # Imported here: options.py stays importable without the delivery modules.
        from ingest.emulator.destinations import check_bucket, check_endpoint_url
        from ingest.emulator.layout import Layout, LayoutError

        if self.s3_endpoint_url is not None:
            problem = check_endpoint_url(self.s3_endpoint_url)
            if problem:
                raise ValueError(f"s3_endpoint_url={self.s3_endpoint_url!r}: {problem}")
            if self.s3_bucket is None:
                raise ValueError("s3_endpoint_url needs s3_bucket: the bucket to write to")
        if self.s3_bucket is not None:
            problem = check_bucket(self.s3_bucket)
            if problem:
                raise ValueError(f"s3_bucket={self.s3_bucket!r}: {problem}")
            if self.data_dir is not None:
                raise ValueError("data_dir and s3_bucket exclude each other: objects go to one")
        try:
            Layout.from_config(self.layout_config())
        except LayoutError as error:
            option = LAYOUT_OPTIONS[error.field]
            value = getattr(self, option)
            given = f"{option}={value!r}" if value is not None else f"{option} is needed"
            raise ValueError(f"{given}: {error.message}") from None

    def layout_config(self) -> dict[str, str]:
        """The layout options as CreateDeliveryStream destination fields (unset ones left out)."""
        given = {
            "Prefix": self.prefix or None,
            "ErrorOutputPrefix": self.error_output_prefix,
            "CompressionFormat": self.compression,
            "FileExtension": self.file_extension,
            "CustomTimeZone": self.custom_time_zone,
        }
        return {field: value for field, value in given.items() if value is not None}
