"""Wires the probes and metrics onto the HTTP server and ties its life to the run."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping
from contextlib import AsyncExitStack

import structlog

from ingest.errors import ConfigError
from ingest.service.config import ServiceConfig
from ingest.service.health import Health, RunState, StatsSource
from ingest.service.http import DEFAULT_LIMITS, ROUTES, HttpServer, build_app
from ingest.service.metrics import ProducerCollector, build_registry

log = structlog.get_logger(__name__)


async def start_server(
    stack: AsyncExitStack,
    config: ServiceConfig,
    source: StatsSource,
    state: RunState,
    health: Health,
    info: Mapping[str, str],
) -> HttpServer:
    """Listen on http_host:http_port until `stack` unwinds. Raises ConfigError (exit 2)
    naming the key when the address cannot be used."""
    registry = build_registry(ProducerCollector(source, state, health, info))
    limits = dataclasses.replace(
        DEFAULT_LIMITS,
        max_connections=config.http_max_connections,
        header_timeout_s=config.http_header_timeout_s,
        idle_timeout_s=config.http_idle_timeout_s,
    )
    server = HttpServer(build_app(health, registry), config.http_host, config.http_port, limits)
    try:
        await server.start()
    except OSError as exc:
        await server.stop()
        # An unknown host name is the host's fault; anything else (in use, not ours) the pair's.
        key = "http_host" if isinstance(exc, socket.gaierror) else "http_port"
        raise ConfigError(
            f"{key}: cannot listen on {config.http_host}:{config.http_port} "
            f"({exc.strerror or exc}); choose another http_host/http_port (0 = any free port)"
        ) from None
    stack.push_async_callback(server.stop)
    log.info("http_listening", url=server.url, routes=list(ROUTES), **server.bounds)
    return server
