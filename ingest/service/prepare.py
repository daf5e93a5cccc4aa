"""Checks of one run's configuration that need more than one key, done before logging starts.

A mistake found here is a usage error like a bad flag: the plain one-line message and exit 2,
never a log line (nothing has been logged or started yet).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from ingest.emulator.destinations import directory_problem
from ingest.errors import ConfigError
from ingest.events import min_event_size
from ingest.firehose.limits import MAX_RECORD_BYTES
from ingest.service.config import ServiceConfig


def new_run_id() -> str:
    """A random run id: 12 hex digits, as `EventGenerator` would choose."""
    return uuid.uuid4().hex[:12]


def prepare_run(config: ServiceConfig) -> ServiceConfig:
    """The configuration one run uses. The run id is chosen now (so the logged configuration
    shows the real one), the event size is checked against that id (its length sets the
    smallest event), and the local data directory is created and must be writable.
    Raises ConfigError."""
    if config.run_id is None:
        config = replace(config, run_id=new_run_id())
    run_id = config.run_id
    assert run_id is not None
    if config.event_size is not None:
        smallest = min_event_size(run_id)
        if config.event_size < smallest:
            raise ConfigError(
                f"event_size: invalid value {config.event_size}; expected bytes from {smallest} "
                f"(the unpadded event with run id {run_id!r}; a longer run id needs more) "
                f"to {MAX_RECORD_BYTES}"
            )
    if config.local and config.local_data_dir is not None:
        problem = directory_problem(config.local_data_dir)
        if problem:
            raise ConfigError(
                f"local_data_dir: cannot use {str(config.local_data_dir)!r} ({problem}); "
                "expected a writable directory path (created if missing)"
            )
    return config
