"""The service configuration: one frozen object, built from four layers and validated at start.

Precedence, highest first: command-line flags > environment (`INGEST_<KEY>`, then the standard
AWS variables `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_FIREHOSE`) > the TOML file
(`--config` or `INGEST_CONFIG`) > built-in defaults. AWS credentials are not configuration here:
they stay with botocore's credential chain and are never read, logged or exported by the service.

Every problem raises `ConfigError` whose message names the key, the value, where it came from
and what is allowed; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ingest.errors import ConfigError
from ingest.firehose.limits import DEFAULT_REGION, DEFAULT_STREAM
from ingest.service.keys import (
    KEYS,
    PRODUCER_DEFAULTS,
    PRODUCER_KEYS,
    Key,
    Value,
    convert,
    valid,
)

CONFIG_ENV = "INGEST_CONFIG"
REDACTED = "***"
_USERINFO = re.compile(r"//[^/?#]*@")


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Effective settings of `ingest run` (see `ingest.service.keys` for each key's meaning)."""

    stream: str = DEFAULT_STREAM
    region: str = DEFAULT_REGION
    endpoint_url: str | None = None
    verify_ssl: bool = True
    local: bool = False
    local_data_dir: Path | None = None
    rate: float = 1000.0
    count: int | None = None
    duration_s: float | None = None
    event_size: int | None = None
    run_id: str | None = None
    report: Path | None = None
    verify: bool = False
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_max_connections: int | None = None
    http_header_timeout_s: float = 5.0
    http_idle_timeout_s: float = 30.0
    log_level: str = "info"
    log_format: str = "auto"
    drain_timeout_s: float = 20.0
    stall_timeout_s: float = 60.0
    unreachable_after_s: float = 10.0
    progress_every_s: float = 5.0
    max_queue_records: int = PRODUCER_DEFAULTS.max_queue_records
    max_queue_bytes: int = PRODUCER_DEFAULTS.max_queue_bytes
    linger_s: float = PRODUCER_DEFAULTS.linger_s
    max_inflight: int = PRODUCER_DEFAULTS.max_inflight
    max_attempts: int | None = PRODUCER_DEFAULTS.max_attempts
    record_deadline_s: float = PRODUCER_DEFAULTS.record_deadline_s
    request_timeout_s: float = PRODUCER_DEFAULTS.request_timeout_s
    connect_timeout_s: float = PRODUCER_DEFAULTS.connect_timeout_s
    backoff_base_s: float = PRODUCER_DEFAULTS.backoff_base_s
    backoff_cap_s: float = PRODUCER_DEFAULTS.backoff_cap_s
    records_per_s: float | None = None
    bytes_per_s: float | None = None
    pack_bytes: int | None = None
    pack_compression: str | None = None
    spool_dir: Path = Path("data/spool")
    spool_max_bytes: int = 1024 * 1024 * 1024
    spool_full_timeout_s: float = 30.0
    durable: bool = False
    durable_dir: Path = Path("data/durable")
    durable_sync: str = PRODUCER_DEFAULTS.durable_sync
    durable_sync_interval_s: float = PRODUCER_DEFAULTS.durable_sync_interval_s
    config_file: Path | None = None

    def producer_options(self) -> dict[str, Any]:
        """The producer's tuning knobs, plus the drain deadline as its default close timeout,
        and its per-request debug lines when the log level is debug."""
        values = asdict(self)
        options = {name: values[name] for name in PRODUCER_KEYS}
        debug = self.log_level == "debug"
        durable = {
            "durable_dir": self.durable_dir if self.durable else None,
            "durable_full_timeout_s": self.spool_full_timeout_s,
        }
        return {
            **options,
            **durable,
            "close_timeout_s": self.drain_timeout_s,
            "log_requests": debug,
        }

    def tls_verify(self) -> bool | None:
        """The producer's `verify` argument: None (botocore's rule: AWS_CA_BUNDLE, the
        profile's ca_bundle, else the default CAs), or False with ``verify_ssl = false``."""
        return None if self.verify_ssl else False

    def redacted(self) -> dict[str, object]:
        """The settings as a loggable mapping: URLs lose credentials, paths become text."""
        values: dict[str, object] = {}
        for name, value in asdict(self).items():
            if name == "endpoint_url" and value is not None:
                value = redact_url(value)
            values[name] = str(value) if isinstance(value, Path) else value
        return values


def redact_url(url: str) -> str:
    """Drop user info, query string and fragment from a URL (they may carry credentials)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # unparseable (bad port, broken IPv6 literal): hide by pattern
        head = re.split(r"[?#]", url, maxsplit=1)[0]
        tail = f"?{REDACTED}" if len(head) < len(url) else ""
        return _USERINFO.sub(f"//{REDACTED}@", head) + tail
    if not (parts.username or parts.password or parts.query or parts.fragment):
        return url
    host = parts.hostname or ""
    netloc = f"{REDACTED}@{host}" if parts.username or parts.password else host
    if port is not None:
        netloc += f":{port}"
    query = REDACTED if parts.query or parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def load_config(
    flags: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> ServiceConfig:
    """Merge the layers and validate every key.

    `flags` maps key names to the raw text given on the command line (absent = not given);
    the special name `config` holds the `--config` path. Raises ConfigError.
    """
    values, config_file = load_values(flags, environ, KEYS)
    config = ServiceConfig(**values, config_file=config_file)  # type: ignore[arg-type]
    _check_together(config)
    return config


def load_values(
    flags: Mapping[str, object], environ: Mapping[str, str] | None, keys: Sequence[Key]
) -> tuple[dict[str, Value], Path | None]:
    """The four layers merged and validated for `keys` (the service's, or a command's own on
    top of them, as `ingest loadtest` does); returns the values set anywhere (absent = the
    key's default) and the TOML file read, if any. Raises ConfigError."""
    env = os.environ if environ is None else environ
    by_name = {key.name: key for key in keys}
    config_file = _config_path(flags, env)
    layers: dict[str, tuple[object, str, bool]] = {}  # name -> (raw, source, raw is text)
    if config_file is not None:
        source = "flag --config" if flags.get("config") else f"environment variable {CONFIG_ENV}"
        for name, raw in _read_toml(config_file, source, by_name).items():
            layers[name] = (raw, f"config file {config_file}", False)
    for key in keys:
        from_env = _env_value(key, env)
        if from_env is not None:
            layers[key.name] = (from_env[1], f"environment variable {from_env[0]}", True)
        if flags.get(key.name) is not None:
            layers[key.name] = (flags[key.name], f"flag {key.flag}", True)
    values = {name: _validated(by_name[name], *layer) for name, layer in layers.items()}
    return values, config_file


def _check_together(config: ServiceConfig) -> None:
    """Rules between keys (each key alone was already checked)."""
    if config.verify and not config.local:
        raise ConfigError(
            "verify: invalid value true with local=false; expected local = true (--local): the "
            "run reads its events back from the embedded emulator's files (for Firehose in AWS, "
            "run `ingest verify --s3 s3://BUCKET/PREFIX --report FILE` after the buffer interval)"
        )
    if config.event_size is not None and config.event_size > config.max_queue_bytes:
        raise ConfigError(
            f"event_size: invalid value {config.event_size} with max_queue_bytes="
            f"{config.max_queue_bytes}; expected event_size <= max_queue_bytes"
        )


def unknown_env(environ: Mapping[str, str], keys: Sequence[Key] = KEYS) -> list[str]:
    """INGEST_* variables that name no key (probably typos); the caller warns about them."""
    known = {key.env for key in keys} | {CONFIG_ENV}
    return sorted(name for name in environ if name.startswith("INGEST_") and name not in known)


def _config_path(flags: Mapping[str, object], env: Mapping[str, str]) -> Path | None:
    if flags.get("config"):
        return Path(str(flags["config"]))
    raw = env.get(CONFIG_ENV, "").strip()
    return Path(raw) if raw else None


def _env_value(key: Key, env: Mapping[str, str]) -> tuple[str, str] | None:
    for name in (key.env, *key.aws_env):
        text = env.get(name, "").strip()
        if text:  # an empty variable counts as unset, as in most shells' `VAR=` idiom
            return name, text
    return None


def _read_toml(path: Path, source: str, known: Mapping[str, Key]) -> dict[str, object]:
    # `source` says whether --config or INGEST_CONFIG named the file.
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config: file {path} ({source}) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(
            f"config: cannot read {path} ({source}): {reason}; expected a UTF-8 TOML file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} ({source}) is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(known))
    if unknown:
        allowed = ", ".join(sorted(known))
        raise ConfigError(
            f"{unknown[0]}: unknown key in config file {path}; allowed keys: {allowed}"
        )
    return data


def _validated(key: Key, raw: object, source: str, from_text: bool) -> Value:
    try:
        value = convert(key, raw, from_text=from_text)
        ok = valid(key, value)
    except ValueError:  # the wrong shape for the key's type
        ok = False
    if not ok:
        shown = raw if isinstance(raw, str) else repr(raw)
        if key.name == "endpoint_url":  # the message is printed: never echo a credential
            shown = redact_url(str(shown))
        raise ConfigError(
            f"{key.name}: invalid value {shown!r} (from {source}); expected {key.allowed}"
        )
    return value
