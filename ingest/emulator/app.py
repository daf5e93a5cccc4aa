"""The HTTP layer: one ``POST /`` endpoint dispatching on ``X-Amz-Target``, on aiohttp's low-level
server (no router or middleware on the hot path).

Order of checks, as AWS does it: body size bound, Authorization present, known target, JSON body,
then the operation. ``GET /_emulator/stats`` returns the counters (not part of Firehose).

Bodies are read through the bounded server (`ingest.bounded_http`): within a body timeout (408
and close past it), and only while the budget of concurrently buffered body bytes holds it (503
ServiceUnavailableException "Slow down." otherwise, which clients retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from ingest.bounded_http import BodyTimeoutError, BoundedServer, BudgetExhaustedError
from ingest.emulator.backend import Backend
from ingest.emulator.faults import CallFaults
from ingest.emulator.protocol import (
    CONTENT_TYPE,
    MAX_BODY_BYTES,
    TARGET_PREFIX,
    ApiError,
    internal_failure,
    parse_body,
    slow_down,
)

ControlOp = Callable[[dict[str, Any]], Awaitable[bytes]]
DataOp = Callable[[dict[str, Any], CallFaults, str], Awaitable[bytes]]
STATS_PATH = "/_emulator/stats"
log = structlog.get_logger(__name__)


def _too_large(size: int | str) -> ApiError:
    return ApiError(
        413,
        "InvalidArgumentException",
        f"Request body of {size} bytes exceeds the emulator's bound of {MAX_BODY_BYTES} bytes",
    )


class FirehoseHandler:
    """Turns HTTP requests into backend calls and ``ApiError`` into AWS-shaped error responses."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        #: Set on shutdown: injected latency ends at once, so stop() never waits it out.
        self.stopping = asyncio.Event()
        #: The bounded server reading the bodies (None: plain ``request.read()``, unbounded).
        self.server: BoundedServer | None = None
        self._data_ops: dict[str, DataOp] = {
            "PutRecordBatch": backend.put_record_batch,
            "PutRecord": backend.put_record,
        }
        self._control_ops: dict[str, ControlOp] = {
            "CreateDeliveryStream": backend.create_delivery_stream,
            "DescribeDeliveryStream": backend.describe_delivery_stream,
            "ListDeliveryStreams": backend.list_delivery_streams,
            "DeleteDeliveryStream": backend.delete_delivery_stream,
        }

    def request_factory(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        """Requests whose ``read()`` stops (with 413) past MAX_BODY_BYTES instead of 1 MiB."""
        loop = asyncio.get_running_loop()
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY_BYTES
        )

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        base = self.backend.ids.next_base()
        try:
            return await self._dispatch(request, base)
        except BudgetExhaustedError:  # refused before reading: close instead of draining it
            return self._error(slow_down(), base, close=True)
        except BodyTimeoutError as error:
            return self._error(ApiError(408, "RequestTimeoutException", str(error)), base)
        except ApiError as error:
            if error.status < 500:
                self.backend.stats.client_errors += 1
            return self._error(error, base)
        except ConnectionResetError:
            # The client went away mid-body: nothing was stored and nobody hears an answer.
            # Not our failure: counted, and one debug line rather than a traceback.
            self.backend.stats.client_disconnects += 1
            log.debug("emulator_client_disconnected", path=request.path)
            return web.Response(status=400)
        except Exception as error:  # a bug must still look like AWS on the wire, not a bare 500
            log.exception("emulator_internal_error", error=repr(error))
            return self._error(internal_failure(), base)

    async def _dispatch(self, request: web.BaseRequest, base: str) -> web.StreamResponse:
        if request.method == "GET" and request.path == STATS_PATH:
            return web.Response(
                body=orjson.dumps(self.backend.stats.as_dict()), content_type="application/json"
            )
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise _too_large(length)
        if self.server is None:
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise _too_large(f"more than {MAX_BODY_BYTES}") from None
            return await self._dispatch_body(request, raw, base)
        # The buffer is emptied (and its budget given back) as soon as the call is answered.
        async with self.server.body(request, MAX_BODY_BYTES) as buffer:
            if len(buffer) > MAX_BODY_BYTES:
                raise _too_large(f"more than {MAX_BODY_BYTES}")
            return await self._dispatch_body(request, buffer, base)

    async def _dispatch_body(
        self, request: web.BaseRequest, raw: bytes | bytearray, base: str
    ) -> web.StreamResponse:
        if "Authorization" not in request.headers:
            raise ApiError(
                400, "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        operation = self._operation(request)
        self.backend.stats.calls[operation] += 1
        body = parse_body(raw)
        data_op = self._data_ops.get(operation)
        if data_op is not None:
            return await self._data_call(request, data_op, body, base)
        return self._answer(await self._control_ops[operation](body), base)

    def _operation(self, request: web.BaseRequest) -> str:
        target = request.headers.get("X-Amz-Target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        known = operation in self._data_ops or operation in self._control_ops
        if request.method != "POST" or not target.startswith(TARGET_PREFIX) or not known:
            raise ApiError(400, "UnknownOperationException", f"Unknown operation {target!r}")
        return operation

    async def _data_call(
        self, request: web.BaseRequest, op: DataOp, body: dict[str, Any], base: str
    ) -> web.StreamResponse:
        faults = self.backend.faults.for_call()
        if faults.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), faults.delay_s)
        if faults.reset:
            self.backend.stats.connections_reset += 1
            _reset_connection(request)
            # The client is gone; aiohttp drops this response quietly when it cannot be sent.
            return web.Response(status=500)
        return self._answer(await op(body, faults, base), base)

    def _answer(self, body: bytes, base: str, status: int = 200) -> web.Response:
        return web.Response(
            status=status,
            body=body,
            content_type=CONTENT_TYPE,
            headers={"x-amzn-RequestId": self.backend.ids.request_id(base)},
        )

    def _error(self, error: ApiError, base: str, *, close: bool = False) -> web.Response:
        response = self._answer(error.body(), base, error.status)
        if close or error.status in (408, 413):
            response.force_close()  # the rest of the body is never read
        return response


def _reset_connection(request: web.BaseRequest) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashing front end would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
