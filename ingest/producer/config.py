"""`ProducerConfig`: every tunable of the producer, validated once, frozen.

Durations are float seconds (`_s`), sizes are bytes (`_bytes`). Invalid values raise
`ConfigError` naming the field, the value and what was expected.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

from ingest.errors import ConfigError
from ingest.firehose.limits import (
    DEFAULT_REGION,
    DEFAULT_STREAM,
    MAX_RECORD_BYTES,
    STREAM_NAME_PATTERN,
)
from ingest.producer.packing import (
    DEFAULT_PACK_BYTES,
    MAX_GZIP_RAW_BYTES,
    Compression,
    Packer,
)

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_STREAM",
    "ProducerConfig",
    "check_failure_handler",
    "check_timeout",
]

PACK_COMPRESSIONS: Final = (None, "none", "gzip")
_REGION: Final = re.compile(r"[a-z0-9-]{2,32}")
# Durations that cannot be 0 (a zero timeout or deadline could never succeed); others may be 0.
_MINIMUM_S: Final = {
    "request_timeout_s": 1e-3,
    "connect_timeout_s": 1e-3,
    "record_deadline_s": 1e-3,
    "durable_sync_interval_s": 1e-3,
}
DURABLE_SYNCS: Final = ("group", "interval")


@dataclass(frozen=True, kw_only=True)
class ProducerConfig:
    """What a `Producer` is allowed to hold, how it batches, sends and gives up."""

    stream: str = DEFAULT_STREAM
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    max_queue_records: int = 100_000  # records held: queued + in flight + awaiting resend
    max_queue_bytes: int = 64 * 1024 * 1024  # raw bytes held, same scope
    linger_s: float = 0.02  # how long a partial batch waits for more records
    max_inflight: int = 8  # concurrent PutRecordBatch requests (and HTTP connections)
    # Sends per record, the first included; None = no cap: transient errors are retried until
    # the record deadline, so an outage shorter than it loses nothing.
    max_attempts: int | None = None
    record_deadline_s: float = 120.0  # no resend starts later than this after the first send
    request_timeout_s: float = 10.0  # one PutRecordBatch call, connect to last byte
    connect_timeout_s: float = 5.0
    backoff_base_s: float = 0.1  # first backoff window; doubles per attempt (full jitter)
    backoff_cap_s: float = 5.0
    close_timeout_s: float = 30.0  # default drain deadline of close() and `async with`
    records_per_s: float | None = None  # client-side pacing; None = unpaced
    bytes_per_s: float | None = None
    # One debug log line per request (outcome, records, seconds). Off by default: an app that
    # never configured structlog would otherwise print them all.
    log_requests: bool = False
    # Record packing (see `ingest.producer.packing`): None = one event per Firehose record;
    # N = newline-terminated events packed into records of up to N raw bytes.
    pack_bytes: int | None = None
    # "gzip": each packed record is one gzip member (turns packing on at 5,120 if unset).
    pack_compression: str | None = None
    # Write-ahead log (see `ingest.producer.durable`): None = memory only (lost on kill -9);
    # a directory = `put` returns once the records are in the log there, and a restart
    # resends what it holds. "group": fdatasync per group (survives power loss); "interval":
    # fdatasync every durable_sync_interval_s (survives kill -9; faster).
    durable_dir: str | os.PathLike[str] | None = None
    durable_sync: str = "group"
    durable_sync_interval_s: float = 0.2
    # How long a full disk under durable_dir is backpressure before put raises SpoolFullError.
    durable_full_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _check_str(self.stream, "stream", STREAM_NAME_PATTERN, "1-64 characters of [a-zA-Z0-9_.-]")
        _check_str(self.region, "region", _REGION, "an AWS region such as 'us-east-1'")
        url = self.endpoint_url
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise ConfigError(f"endpoint_url: expected an http(s) URL or None, got {url!r}")
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name.startswith("max_") and value is not None:
                _check_number(spec.name, value, int, minimum=1)
            elif spec.name.endswith("_s") and value is not None:
                _check_number(spec.name, value, float, minimum=_MINIMUM_S.get(spec.name, 0.0))
        if not isinstance(self.log_requests, bool):
            raise ConfigError(f"log_requests: expected True or False, got {self.log_requests!r}")
        for name in ("records_per_s", "bytes_per_s"):
            if getattr(self, name) == 0:
                raise ConfigError(f"{name}: expected a positive rate or None, got 0")
        self._check_packing()
        self._check_durable()

    def _check_durable(self) -> None:
        directory = self.durable_dir
        if directory is not None and (
            not isinstance(directory, str | os.PathLike) or not os.fspath(directory)
        ):
            raise ConfigError(f"durable_dir: expected None or a directory path, got {directory!r}")
        if self.durable_sync not in DURABLE_SYNCS:
            raise ConfigError(
                f"durable_sync: expected 'group' or 'interval', got {self.durable_sync!r}"
            )

    def _check_packing(self) -> None:
        if self.pack_compression not in PACK_COMPRESSIONS:
            raise ConfigError(
                f"pack_compression: expected None, 'none' or 'gzip', got {self.pack_compression!r}"
            )
        if self.pack_compression == "none":
            object.__setattr__(self, "pack_compression", None)
        if self.pack_bytes is None:
            if self.pack_compression is not None:  # compression needs packing: the default
                object.__setattr__(self, "pack_bytes", DEFAULT_PACK_BYTES)
            return
        size = self.pack_bytes
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_RECORD_BYTES:
            raise ConfigError(
                f"pack_bytes: expected None (no packing) or an int from 1 to "
                f"{MAX_RECORD_BYTES:,} (bytes per packed record), got {size!r}"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> ProducerConfig:
        """Build from keyword options; an unknown name is a `ConfigError` listing the known."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: unknown producer option (value {options[unknown[0]]!r}); "
                f"expected one of {', '.join(sorted(known))}"
            )
        return cls(**options)  # type: ignore[arg-type]

    @property
    def largest_record_bytes(self) -> int:
        """The largest record `put` accepts: the Firehose limit (less gzip's worst-case growth
        when packed records are compressed) or the queue byte bound."""
        limit = MAX_GZIP_RAW_BYTES if self.pack_compression == "gzip" else MAX_RECORD_BYTES
        return min(limit, self.max_queue_bytes)

    def packer(self) -> Packer | None:
        """The packer these options ask for, or None (no packing)."""
        if self.pack_bytes is None:
            return None
        compression: Compression = "gzip" if self.pack_compression == "gzip" else None
        size = min(self.pack_bytes, MAX_GZIP_RAW_BYTES) if compression else self.pack_bytes
        return Packer(size, compression)


def _check_str(value: object, name: str, pattern: re.Pattern[str], expected: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")


def _check_number(name: str, value: object, kind: type, *, minimum: float) -> None:
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise ConfigError(
            f"{name}: expected {'an int' if kind is int else 'a number'}, got {value!r}"
        )
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name}: expected a finite value >= {minimum}, got {value!r}")


def check_timeout(name: str, value: object) -> None:
    """A timeout argument must be None (no limit) or a finite number of seconds >= 0."""
    if value is not None:
        _check_number(name, value, float, minimum=0.0)


def check_failure_handler(handler: object) -> None:
    """`on_failure` must be None or a callable: plain (called on the event loop) or ``async def``
    (awaited; its records count as failed once it returns)."""
    if handler is not None and not callable(handler):
        raise ConfigError(f"on_failure: expected a callable or None, got {handler!r}")
