"""The health and metrics server: aiohttp on the service's own event loop.

Routes: GET /healthz (liveness), GET /readyz (readiness), GET /metrics (Prometheus text); HEAD
answers like GET without the body (probes such as Kubernetes' or a load balancer's may use it).
Anything else is 404; another method on a known path is 405. No access log: probes and scrapes
every few seconds would drown the useful lines.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ingest.service.health import Health, Verdict

ROUTES = ("/healthz", "/readyz", "/metrics")


def build_app(health: Health, registry: CollectorRegistry) -> web.Application:
    """The application; handlers only read state, so they are safe at any moment of the run."""

    async def healthz(_: web.Request) -> web.Response:
        return _probe(health.live())

    async def readyz(_: web.Request) -> web.Response:
        return _probe(health.ready())

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz, allow_head=True)
    app.router.add_get("/readyz", readyz, allow_head=True)
    app.router.add_get("/metrics", metrics, allow_head=True)
    return app


def _probe(verdict: Verdict) -> web.Response:
    return web.Response(status=200 if verdict.ok else 503, text=verdict.reason + "\n")


class HttpServer:
    """Start/stop wrapper around AppRunner + TCPSite; `port` is the bound port once started."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host = host
        self.port = port

    async def start(self) -> None:
        """Bind and serve. Raises OSError when the address is taken or not allowed."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self.port)
        await site.start()
        self.port = _bound_port(self._runner, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"


def _bound_port(runner: web.AppRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
