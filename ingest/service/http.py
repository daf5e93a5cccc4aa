"""The health and metrics server: aiohttp on the service's own event loop.

Routes: GET /healthz (liveness), GET /readyz (readiness), GET /metrics (Prometheus text); HEAD
answers like GET without the body (probes such as Kubernetes' or a load balancer's may use it).
Anything else is 404; another method on a known path is 405. No access log: probes and scrapes
every few seconds would drown the useful lines.

The server is bounded (`ingest.bounded_http`): a connection cap below the fd limit, header and
idle timeouts, bodies never read, one log line per kind of refusal per interval. It shares the
event loop and the fd table with the producer, so a flood of slow clients must neither starve
the producer's own connections nor delay the probes (a probe evicts the oldest slow client).
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ingest.bounded_http import BoundedServer, Handler, ServerLimits
from ingest.service.health import Health, Verdict

ROUTES = ("/healthz", "/readyz", "/metrics")
_METHODS = frozenset({"GET", "HEAD"})
#: Probes and scrapes need few connections; the rest of the fds are the producer's. GET only,
#: so no body is ever buffered.
DEFAULT_LIMITS = ServerLimits(
    default_max_connections=256,
    fd_share=0.25,
    backlog=64,
    header_timeout_s=5.0,
    body_timeout_s=5.0,
    idle_timeout_s=30.0,
    max_buffered_bytes=1,
)


def build_app(health: Health, registry: CollectorRegistry) -> Handler:
    """The request handler (one small dispatch, no router); it only reads state, so it is safe
    at any moment of the run."""

    async def healthz(_: web.BaseRequest) -> web.StreamResponse:
        return _probe(health.live())

    async def readyz(_: web.BaseRequest) -> web.StreamResponse:
        return _probe(health.ready())

    async def metrics(_: web.BaseRequest) -> web.StreamResponse:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    routes: dict[str, Handler] = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        route = routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="404: Not Found\n")
        if request.method not in _METHODS:
            return web.Response(
                status=405, text="405: Method Not Allowed\n", headers={"Allow": "GET, HEAD"}
            )
        response = await route(request)
        if request.body_exists:  # never read: close rather than drain it
            response.force_close()
        return response

    return dispatch


def _probe(verdict: Verdict) -> web.Response:
    return web.Response(status=200 if verdict.ok else 503, text=verdict.reason + "\n")


class HttpServer:
    """Start/stop wrapper around a bounded server + TCPSite; `port` is the bound port once
    started."""

    def __init__(
        self, handler: Handler, host: str, port: int, limits: ServerLimits = DEFAULT_LIMITS
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._server: BoundedServer | None = None
        self._runner: web.ServerRunner | None = None
        self._host = host
        self.port = port

    async def start(self) -> None:
        """Bind and serve. Raises OSError when the address is taken or not allowed."""
        server = BoundedServer(self._handler, name="service", limits=self._limits, access_log=None)
        self._server = server
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        # The backlog is also asyncio's accept burst: the cap leaves room for it (ServerLimits).
        site = web.TCPSite(self._runner, self._host, self.port, backlog=self._limits.backlog)
        await site.start()
        self.port = _bound_port(self._runner, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            self._server.close()

    @property
    def bounds(self) -> dict[str, object]:
        """The effective bounds (connection cap etc.) once started, for the start-up log."""
        return {} if self._server is None else self._server.describe()

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"


def _bound_port(runner: web.BaseRunner, requested: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return requested
