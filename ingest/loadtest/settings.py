"""The configuration of `ingest loadtest`: every key of `ingest run`, plus the load test's own.

The load test's keys live in the same four layers with the same precedence (flags >
`INGEST_<KEY>` environment > TOML file > defaults) and the same error messages; they are only
added on top of the service's table here, never to it. `fleet_index` also reads
`JOB_COMPLETION_INDEX`, which a Kubernetes Indexed Job sets in each pod.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ingest.errors import ConfigError
from ingest.service.config import ServiceConfig, _check_together, load_values
from ingest.service.keys import KEYS, KEYS_BY_NAME, Key, Value

PROFILES = ("constant", "ramp", "steps")
FIND_MAX_BACKOFF = {"backoff_base_s": 0.01, "backoff_cap_s": 0.1}
DEFAULT_PRICE_PER_GB = 0.029  # USD per GB ingested, us-east-1 Direct PUT
_TEST_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,58}")  # room left for "-<index>" in a run id

# Keys of `ingest run` that mean nothing to a load test (it serves no HTTP and keeps no spool):
# accepted in the TOML file and environment so one profile serves both commands, but given no
# flag. `report` is shared: the load test writes its own report there; `unreachable_after_s`
# too: a load test against a dead endpoint stops at once, like `ingest run`.
_SERVICE_ONLY_PREFIXES = ("http_", "spool_", "durable")
_SERVICE_ONLY = frozenset({"stall_timeout_s", "verify"})


def _service_only(key: Key) -> bool:
    return key.name in _SERVICE_ONLY or key.name.startswith(_SERVICE_ONLY_PREFIXES)


def _number(
    low: float, high: float = math.inf, *, low_open: bool = False
) -> Callable[[object], bool]:
    """A check: a number from `low` (excluded with `low_open`) to `high`."""

    def check(value: object) -> bool:
        if not isinstance(value, int | float):
            return False
        return (low < value if low_open else low <= value) and value <= high

    return check


def _key(name: str, kind: str, default: Value, allowed: str, help: str, **extra: object) -> Key:
    return Key(name=name, kind=kind, default=default, allowed=allowed, help=help, **extra)  # type: ignore[arg-type]


LOADTEST_KEYS: tuple[Key, ...] = (
    _key("profile", "str", "constant", "one of constant, ramp, steps",
         "rate profile: constant (--rate), ramp (--rate to --ramp-to over --duration), steps "
         "(--rate plus --step every --step-every, up to --ramp-to)", choices=PROFILES),
    _key("ramp_to", "float", None, "a number of events/s > 0",
         "final rate of a ramp, ceiling of steps (events/s)", optional=True,
         check=_number(0, low_open=True)),
    _key("step", "float", None, "a number of events/s > 0",
         "rate added at every step of the steps profile (events/s)", optional=True,
         check=_number(0, low_open=True)),
    _key("step_every_s", "float", 10.0, "a number of seconds > 0",
         "seconds between two steps of the steps profile", check=_number(0, low_open=True)),
    _key("find_max", "bool", False, "true or false",
         "search the highest rate the stream sustains without throttling (starts at --rate)"),
    _key("hold_s", "float", 10.0, "a number of seconds > 0 and <= 3600",
         "seconds each --find-max step is held", check=_number(0, 3600, low_open=True)),
    _key("max_p99_s", "float", 1.0, "a number of seconds > 0",
         "--find-max: a step whose PutRecordBatch p99 latency passes this is too fast",
         check=_number(0, low_open=True)),
    _key("price_per_gb", "float", DEFAULT_PRICE_PER_GB, "a number of USD >= 0",
         "ingestion price per GB billed, for the cost estimate (default: us-east-1 Direct PUT)",
         check=_number(0)),
    _key("fleet_size", "int", 1, "an integer >= 1",
         "processes forming one test; each takes 1/N of the rates and of --count",
         check=_number(1)),
    _key("fleet_index", "int", None, "an integer >= 0 and < fleet_size",
         "this process's index in the fleet (Kubernetes Indexed Jobs set JOB_COMPLETION_INDEX)",
         optional=True, check=_number(0), aws_env=("JOB_COMPLETION_INDEX",)),
    _key("test_id", "str", None, "1-58 characters from A-Z a-z 0-9 _ . : -",
         "id of the test; the run id becomes <test id>-<fleet index>", optional=True,
         check=lambda value: _TEST_ID_RE.fullmatch(str(value)) is not None),
    _key("html", "path", None, "a file path in an existing directory",
         "write the report as one self-contained HTML file with charts", optional=True,
         check=KEYS_BY_NAME["report"].check, metavar="FILE"),
)  # fmt: skip

ALL_KEYS: tuple[Key, ...] = (*KEYS, *LOADTEST_KEYS)
FLAG_KEYS: tuple[Key, ...] = tuple(key for key in ALL_KEYS if not _service_only(key))


@dataclass(frozen=True, kw_only=True)
class LoadtestSettings:
    """The load test's own keys (see LOADTEST_KEYS), after the fleet share was applied."""

    profile: str = "constant"
    ramp_to: float | None = None
    step: float | None = None
    step_every_s: float = 10.0
    find_max: bool = False
    hold_s: float = 10.0
    max_p99_s: float = 1.0
    price_per_gb: float = DEFAULT_PRICE_PER_GB
    fleet_size: int = 1
    fleet_index: int | None = None
    test_id: str | None = None
    html: Path | None = None

    def as_dict(self) -> dict[str, object]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def load_loadtest_config(
    flags: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> tuple[ServiceConfig, LoadtestSettings]:
    """Both halves of the configuration, checked together. Raises ConfigError."""
    values, config_file = load_values(flags, environ, ALL_KEYS)
    own = {key.name for key in LOADTEST_KEYS}
    service = ServiceConfig(
        **{k: v for k, v in values.items() if k not in own},  # type: ignore[arg-type]
        config_file=config_file,
    )
    settings = LoadtestSettings(**{k: v for k, v in values.items() if k in own})  # type: ignore[arg-type]
    if settings.find_max:
        # Retries must keep a throttled stream saturated for --find-max to measure the stream's
        # ceiling rather than the client's backoff: short backoff unless set explicitly.
        fast = {k: v for k, v in FIND_MAX_BACKOFF.items() if k not in values}
        service = replace(service, **fast)  # type: ignore[arg-type]
    _check_together(service)
    _check(service, settings)
    return _fleet_share(service, settings)


def _check(service: ServiceConfig, s: LoadtestSettings) -> None:
    if s.profile == "ramp":
        if s.ramp_to is None:
            raise ConfigError("ramp_to: missing; --profile ramp needs --ramp-to (events/s)")
        if service.duration_s is None:
            raise ConfigError("duration_s: missing; --profile ramp needs --duration (seconds)")
    if s.profile == "steps" and s.step is None:
        raise ConfigError("step: missing; --profile steps needs --step (events/s per step)")
    if s.profile != "constant" and service.rate == 0:
        raise ConfigError(
            f"rate: invalid value 0 with --profile {s.profile}; expected a starting rate > 0"
        )
    if s.find_max and service.rate == 0:
        raise ConfigError("rate: invalid value 0 with --find-max; expected a starting rate > 0")
    if s.find_max and s.profile != "constant":
        raise ConfigError(
            f"profile: invalid value {s.profile!r} with --find-max; --find-max makes its own steps"
        )
    if s.find_max and s.fleet_size > 1:
        raise ConfigError(
            f"fleet_size: invalid value {s.fleet_size} with --find-max; expected 1 (each process "
            "would search alone against a shared quota)"
        )
    if s.fleet_index is not None and s.fleet_index >= s.fleet_size:
        raise ConfigError(
            f"fleet_index: invalid value {s.fleet_index} with --fleet-size {s.fleet_size}; "
            f"expected an index from 0 to {s.fleet_size - 1} "
            "(from --fleet-index or JOB_COMPLETION_INDEX)"
        )
    if s.fleet_size > 1 and s.fleet_index is None:
        raise ConfigError(
            f"fleet_index: missing with --fleet-size {s.fleet_size}; give --fleet-index or set "
            "JOB_COMPLETION_INDEX"
        )
    if service.run_id is not None and (s.test_id is not None or s.fleet_size > 1):
        raise ConfigError(
            f"run_id: invalid value {service.run_id!r} with --test-id/--fleet-size; the run id "
            "of a fleet member is <test id>-<fleet index>"
        )
    if s.fleet_size > 1 and s.test_id is None:
        raise ConfigError(
            f"test_id: missing with --fleet-size {s.fleet_size}; every member needs the same "
            "--test-id so their reports merge"
        )
    if service.count is not None and s.fleet_size > service.count:
        raise ConfigError(
            f"count: invalid value {service.count} with --fleet-size {s.fleet_size}; expected "
            "at least one event per member"
        )


def _fleet_share(
    service: ServiceConfig, s: LoadtestSettings
) -> tuple[ServiceConfig, LoadtestSettings]:
    """Each member's share: rates divided by the fleet size, --count split (the first
    members take the remainder), the run id "<test id>-<index>"."""
    index = s.fleet_index if s.fleet_index is not None else 0
    n = s.fleet_size
    run_id = service.run_id if s.test_id is None else f"{s.test_id}-{index}"
    count = service.count
    if count is not None:
        count = count // n + (1 if index < count % n else 0)
    service = replace(service, rate=service.rate / n, count=count, run_id=run_id)
    share = {
        "ramp_to": None if s.ramp_to is None else s.ramp_to / n,
        "step": None if s.step is None else s.step / n,
        "fleet_index": index,
    }
    return service, replace(s, **share)  # type: ignore[arg-type]
