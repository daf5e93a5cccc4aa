"""The service's configuration keys: one table that the loader, the CLI flags and the docs share.

Each key has one name used everywhere: `rate` is `--rate` on the command line, `INGEST_RATE` in
the environment and `rate = ...` in the TOML file. Durations end in `_s` (float seconds; the flag
drops the suffix), sizes in bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ingest.errors import ConfigError
from ingest.firehose.limits import DEFAULT_REGION, DEFAULT_STREAM, MAX_RECORD_BYTES
from ingest.producer.config import ProducerConfig
from ingest.producer.packing import DEFAULT_PACK_BYTES

Kind = Literal["str", "int", "float", "bool", "path"]
Value = str | int | float | bool | Path | None

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_RUN_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True, kw_only=True)
class Key:
    """One configuration key: its type, default, allowed values and where it can be set."""

    name: str
    kind: Kind
    default: Value
    allowed: str
    check: Callable[[object], bool] = lambda _: True
    help: str
    optional: bool = False  # True: the key may be unset (None), e.g. "no count limit"
    aws_env: tuple[str, ...] = ()  # standard AWS variables read after INGEST_<NAME>
    choices: tuple[str, ...] = ()
    producer: bool = False  # True: passed to the Producer as the option of the same name
    bare: str | None = None  # the value of the flag given without one (e.g. `--pack-bytes`)
    metavar: str | None = None  # the flag's value in --help, when the kind's default misleads

    @property
    def env(self) -> str:
        return "INGEST_" + self.name.upper()

    @property
    def flag(self) -> str:
        # Durations drop their unit suffix on the command line (--drain-timeout), rates keep it.
        name = self.name if self.name.endswith("_per_s") else self.name.removesuffix("_s")
        return "--" + name.replace("_", "-")


def _url_ok(value: object) -> bool:
    """http(s), a host, a valid port, and nothing that could carry a credential: SigV4 signs
    the request (aiohttp refuses user info next to it) and botocore repeats the whole URL,
    query included, in its error messages."""
    try:
        parts = urlsplit(str(value))
        _ = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        return False
    plain = not (parts.username or parts.password or parts.query or parts.fragment)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and plain


def _report_path_ok(value: object) -> bool:
    """A file that can be created: its directory exists and it is not a directory itself."""
    path = Path(str(value))
    return path.parent.is_dir() and not path.is_dir()


def _matches(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    return lambda value: pattern.fullmatch(str(value)) is not None


def _at_least(low: float, high: float = math.inf) -> Callable[[object], bool]:
    return lambda value: isinstance(value, int | float) and low <= value <= high


def _above(low: float, high: float = math.inf) -> Callable[[object], bool]:
    return lambda value: isinstance(value, int | float) and low < value <= high


def _key(name: str, kind: Kind, default: Value, allowed: str, help: str, **extra: Any) -> Key:
    return Key(name=name, kind=kind, default=default, allowed=allowed, help=help, **extra)


def _producer_accepts(name: str) -> Callable[[object], bool]:
    """The producer's own rule for its option `name`: one rule, applied here early enough for
    the message to name where the value came from."""

    def check(value: object) -> bool:
        try:
            ProducerConfig.from_options({name: value})
        except ConfigError:
            return False
        return True

    return check


PRODUCER_DEFAULTS = ProducerConfig()  # the producer's own defaults are the service's


def _knob(name: str, kind: Kind, allowed: str, help: str, **extra: Any) -> Key:
    """A producer tuning key: the producer's default and rule, passed through to it."""
    default = getattr(PRODUCER_DEFAULTS, name)
    check = _producer_accepts(name)
    return _key(name, kind, default, allowed, help, check=check, producer=True, **extra)


_POSITIVE_INT = "an integer >= 1"
_POSITIVE_SECONDS = "a number of seconds > 0"
_TIMEOUT_SECONDS = "a number of seconds >= 0.001"

KEYS: tuple[Key, ...] = (
    # Target
    _key("stream", "str", DEFAULT_STREAM, "1-64 characters from a-z A-Z 0-9 _ . -",
         "Firehose delivery stream name", check=_producer_accepts("stream")),
    _key("region", "str", DEFAULT_REGION, "an AWS region name such as us-east-1", "AWS region",
         check=_matches(_REGION_RE), aws_env=("AWS_REGION", "AWS_DEFAULT_REGION")),
    _key("endpoint_url", "str", None,
         "an http:// or https:// URL without user info, query string or fragment",
         "Firehose endpoint (default: AWS for the region)", check=_url_ok, optional=True,
         aws_env=("AWS_ENDPOINT_URL_FIREHOSE",)),
    _key("verify_ssl", "bool", True, "true or false",
         "verify the endpoint's TLS certificate, against AWS_CA_BUNDLE or the profile's "
         "ca_bundle when set (--no-verify-ssl: do not verify, as the AWS CLI's flag of that "
         "name; for a test endpoint only)"),
    _key("local", "bool", False, "true or false",
         "start the Firehose emulator in-process and send to it"),
    _key("local_data_dir", "path", None, "a directory path",
         "where the in-process emulator writes delivered objects (default: a temp dir)",
         optional=True),
    # Generation
    _key("rate", "float", 1000.0, "a number of events/s >= 0 (0 = as fast as possible)",
         "events generated per second", check=_at_least(0)),
    _key("count", "int", None, _POSITIVE_INT, "stop after this many events", optional=True,
         check=_at_least(1)),
    _key("duration_s", "float", None, _POSITIVE_SECONDS, "stop generating after this long",
         optional=True, check=_above(0)),
    _key("event_size", "int", None,
         f"a size in bytes from the unpadded event's (139 with a random run id, more with a "
         f"longer --run-id) to {MAX_RECORD_BYTES}",
         "pad each event to this many bytes (at least the unpadded event: 139 with a random "
         "run id)", optional=True, check=_at_least(1, MAX_RECORD_BYTES)),
    _key("run_id", "str", None, "1-64 characters from A-Z a-z 0-9 _ . : -",
         "producer id written in every event (default: random)", optional=True,
         check=_matches(_RUN_ID_RE)),
    # After the run
    _key("report", "path", None, "a file path in an existing directory",
         "write a JSON report of the run here (its \"runs\" list is what ingest verify "
         "--report reads)", optional=True, check=_report_path_ok, metavar="FILE"),
    _key("verify", "bool", False, "true or false (true needs local = true)",
         "after the run, count how many of its events reached the emulator's files; exit 1 "
         "if any is missing"),
    # Operations
    _key("http_host", "str", "127.0.0.1", "a host name or IP address",
         "address of the health/metrics server", check=lambda v: bool(str(v).strip())),
    _key("http_port", "int", 8080, "a port from 0 to 65535 (0 = any free port)",
         "port of the health/metrics server", check=_at_least(0, 65535)),
    _key("http_max_connections", "int", None, _POSITIVE_INT,
         "connection cap of the health/metrics server (unset = a quarter of the open-file "
         "limit less its listen backlog of 64, at most 256; never more than that: the rest "
         "of the open files stay the producer's)",
         optional=True, check=_at_least(1)),
    _key("http_header_timeout_s", "float", 5.0, _POSITIVE_SECONDS,
         "health/metrics server: a request head must arrive within this long", check=_above(0)),
    _key("http_idle_timeout_s", "float", 30.0, _POSITIVE_SECONDS,
         "health/metrics server: an idle keep-alive connection is closed after this long",
         check=_above(0)),
    _key("log_level", "str", "info", "one of debug, info, warning, error", "log level",
         choices=("debug", "info", "warning", "error")),
    _key("log_format", "str", "auto", "one of auto, json, console",
         "log format (auto: console on a TTY, JSON lines otherwise)",
         choices=("auto", "json", "console")),
    _key("drain_timeout_s", "float", 20.0, "a number of seconds > 0 and <= 3600",
         "deadline for the drain on SIGTERM/SIGINT or at the end", check=_above(0, 3600)),
    _key("stall_timeout_s", "float", 60.0, _POSITIVE_SECONDS,
         "/healthz answers 503 when the sender made no progress for this long with work pending",
         check=_above(0)),
    _key("progress_every_s", "float", 5.0, "a number of seconds > 0 and <= 3600",
         "seconds between JSON progress lines when stderr is not a terminal "
         "(a terminal gets a live status area)", check=_above(0, 3600)),
    _key("unreachable_after_s", "float", 10.0, _POSITIVE_SECONDS,
         "at start, the run ends (exit 1) when the target has not answered for this "
         "long; later, /readyz answers 503 when no request succeeded for this long with work "
         "pending",
         check=_above(0)),
    # Producer tuning (defaults are the producer's)
    _knob("max_queue_records", "int", _POSITIVE_INT, "bound of the producer queue, records"),
    _knob("max_queue_bytes", "int", _POSITIVE_INT, "bound of the producer queue, bytes"),
    _knob("linger_s", "float", "a number of seconds >= 0",
          "how long a partial batch waits for more records"),
    _knob("max_inflight", "int", _POSITIVE_INT, "PutRecordBatch requests in flight"),
    _knob("max_attempts", "int", _POSITIVE_INT,
          "optional cap on sends per record (unset = retry until the record deadline)",
          optional=True),
    _knob("record_deadline_s", "float", _TIMEOUT_SECONDS,
          "transient errors are retried until this long after a record's first send"),
    _knob("request_timeout_s", "float", _TIMEOUT_SECONDS, "timeout of one PutRecordBatch request"),
    _knob("connect_timeout_s", "float", _TIMEOUT_SECONDS, "timeout of opening a connection"),
    _knob("backoff_base_s", "float", "a number of seconds >= 0",
          "first retry backoff window (doubles per attempt, full jitter)"),
    _knob("backoff_cap_s", "float", "a number of seconds >= 0", "longest retry backoff"),
    _knob("records_per_s", "float", "a number > 0",
          "client-side cap on records sent per second (unset = none)", optional=True),
    _knob("bytes_per_s", "float", "a number > 0",
          "client-side cap on bytes sent per second (unset = none)", optional=True),
    _knob("pack_bytes", "int", f"an integer from 1 to {MAX_RECORD_BYTES}",
          "pack newline-terminated events into Firehose records of up to N bytes (the flag "
          f"alone: {DEFAULT_PACK_BYTES}, one 5 KB billing unit; unset = one event per record)",
          optional=True, bare=str(DEFAULT_PACK_BYTES)),
    _knob("pack_compression", "str", "one of none, gzip",
          "gzip each packed record (one gzip member each; turns packing on at "
          f"{DEFAULT_PACK_BYTES} bytes unless pack_bytes is set)",
          optional=True, choices=("none", "gzip")),
    # Dead-letter spool and the durable log (see ingest.spool)
    _key("spool_dir", "path", Path("data/spool"), "a directory path",
         "where records that finally fail are kept (fsync'd) for `ingest replay`"),
    _key("spool_max_bytes", "int", 1024 * 1024 * 1024, _POSITIVE_INT,
         "bound of the spool's files, bytes; past it put() waits, then fails",
         check=_at_least(1)),
    _key("spool_full_timeout_s", "float", 30.0, "a number of seconds >= 0",
         "how long a full spool or durable log (bound or disk) holds put() before the "
         "typed error", check=_at_least(0)),
    _key("durable", "bool", False, "true or false",
         "keep accepted events in a write-ahead log (durable_dir) so kill -9 loses none; "
         "a restart resends them first"),
    _key("durable_dir", "path", Path("data/durable"), "a directory path",
         "where the durable log lives (used with durable)"),
    _knob("durable_sync", "str", "one of group, interval",
          "group: fdatasync per group before put() returns (survives power loss); interval: "
          "fdatasync every durable_sync_interval_s (survives kill -9; faster)",
          choices=("group", "interval")),
    _knob("durable_sync_interval_s", "float", "a number of seconds >= 0.001",
          "fdatasync period of durable_sync = interval"),
)  # fmt: skip

KEYS_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}
PRODUCER_KEYS: tuple[str, ...] = tuple(key.name for key in KEYS if key.producer)


def convert(key: Key, raw: object, *, from_text: bool) -> Value:
    """Turn a raw value (text from env/flags, or a TOML value) into the key's type.

    Raises ValueError when the value has the wrong shape; range checks are the caller's.
    """
    value = _from_text(key, str(raw).strip()) if from_text else _from_toml(key, raw)
    return value.lower() if key.choices and isinstance(value, str) else value


def _from_text(key: Key, text: str) -> Value:
    if key.kind == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError(text)
    if key.kind == "int":
        return int(text)
    if key.kind == "float":
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(text)
        return number
    if key.kind == "path":
        if not text:  # Path("") is the current directory: never what an empty value meant
            raise ValueError(text)
        return Path(text)
    return text


def _from_toml(key: Key, raw: object) -> Value:
    kind_ok = {
        "bool": isinstance(raw, bool),
        "int": isinstance(raw, int) and not isinstance(raw, bool),
        "float": isinstance(raw, int | float) and not isinstance(raw, bool),
        "str": isinstance(raw, str),
        "path": isinstance(raw, str),
    }[key.kind]
    if not kind_ok:
        raise ValueError(raw)
    if key.kind in ("float", "path"):
        return _from_text(key, str(raw))
    return raw  # type: ignore[return-value]


def valid(key: Key, value: Value) -> bool:
    """Whether a converted value is within what the key allows."""
    if value is None:
        return key.optional
    if key.choices:
        return value in key.choices
    return key.check(value)
