"""The spool tests log through structlog; start each from its defaults (stderr), whatever an
earlier test in the session configured (e.g. an `ingest run` called in-process whose captured
stderr is closed by now)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
