"""Rewrite the `config` part of the chart's values.schema.json from the service's key table.

    .venv/bin/python deploy/helm/sync_config_schema.py          # rewrite the file
    .venv/bin/python deploy/helm/sync_config_schema.py --check  # exit 1 if it is out of date

Each key of `ingest.service.keys.KEYS` becomes a property of `config` with its JSON type (null
allowed: leave the key unset), its choices, and the bounds below, so a wrong value fails at
`helm install` instead of in a crash-looping pod. `run_id`, `http_host` and `report` belong to
the chart (pod name or test id; 0.0.0.0 for the probes; the load test's report path). A key
with a number type needs its bounds listed here: the script refuses to guess them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ingest.service.keys import KEYS

SCHEMA = Path(__file__).resolve().parent / "ingest" / "values.schema.json"
CHART_OWNED = frozenset({"run_id", "http_host", "report"})
JSON_TYPES = {
    "str": "string",
    "path": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
}
WRITABLE = "^/(data|tmp)(/.*)?$"  # the container's root filesystem is read-only
BOUNDS: dict[str, dict[str, Any]] = {
    "stream": {"pattern": "^[a-zA-Z0-9_.-]{1,64}$"},
    "region": {"pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"},
    "endpoint_url": {"pattern": "^https?://[^/?#@\\s]+(/[^?#\\s]*)?$"},
    "local_data_dir": {"minLength": 1, "pattern": WRITABLE},
    "spool_dir": {"minLength": 1, "pattern": WRITABLE},
    "durable_dir": {"minLength": 1, "pattern": WRITABLE},
    "rate": {"minimum": 0},
    "count": {"minimum": 1},
    "duration_s": {"exclusiveMinimum": 0},
    "event_size": {"minimum": 1, "maximum": 1024000},
    "http_port": {"minimum": 1, "maximum": 65535},
    "http_max_connections": {"minimum": 1},
    "http_header_timeout_s": {"exclusiveMinimum": 0},
    "http_idle_timeout_s": {"exclusiveMinimum": 0},
    "drain_timeout_s": {"exclusiveMinimum": 0, "maximum": 3600},
    "stall_timeout_s": {"exclusiveMinimum": 0},
    "unreachable_after_s": {"exclusiveMinimum": 0},
    "progress_every_s": {"exclusiveMinimum": 0, "maximum": 3600},
    "max_queue_records": {"minimum": 1},
    "max_queue_bytes": {"minimum": 1},
    "linger_s": {"minimum": 0},
    "max_inflight": {"minimum": 1},
    "max_attempts": {"minimum": 1},
    "record_deadline_s": {"minimum": 0.001},
    "request_timeout_s": {"minimum": 0.001},
    "connect_timeout_s": {"minimum": 0.001},
    "backoff_base_s": {"minimum": 0},
    "backoff_cap_s": {"minimum": 0},
    "records_per_s": {"exclusiveMinimum": 0},
    "bytes_per_s": {"exclusiveMinimum": 0},
    "pack_bytes": {"minimum": 1, "maximum": 1024000},
    "spool_max_bytes": {"minimum": 1},
    "spool_full_timeout_s": {"minimum": 0},
    "durable_sync_interval_s": {"minimum": 0.001},
}
NOTES = {
    "http_port": "a port from 1 to 65535 (the probes need a fixed port)",
}


def config_properties() -> dict[str, Any]:
    """The `config` properties for the current key table. Raises SystemExit naming a number
    key without bounds here."""
    properties: dict[str, Any] = {}
    for key in KEYS:
        if key.name in CHART_OWNED:
            continue
        if key.kind in ("int", "float") and key.name not in BOUNDS:
            raise SystemExit(f"sync_config_schema: add the bounds of {key.name!r} to BOUNDS")
        allowed = NOTES.get(key.name, key.allowed)
        if key.name in ("local_data_dir", "spool_dir", "durable_dir"):
            allowed += " (under /data or /tmp: the container's root filesystem is read-only)"
        prop: dict[str, Any] = {
            "description": f"{key.help}: {allowed}",
            "type": [JSON_TYPES[key.kind], "null"],
        }
        if key.choices:
            prop["enum"] = [*key.choices, None]
        prop.update(BOUNDS.get(key.name, {}))
        properties[key.name] = prop
    return properties


def main(argv: list[str]) -> int:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    wanted = config_properties()
    if argv == ["--check"]:
        current = schema["properties"]["config"]["properties"]
        if current != wanted:
            added = sorted(wanted.keys() - current.keys())
            print(f"{SCHEMA} is out of date (new keys: {added}); run {__file__}", file=sys.stderr)
            return 1
        return 0
    schema["properties"]["config"]["properties"] = wanted
    SCHEMA.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
