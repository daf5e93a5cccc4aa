"""The Firehose client: the only object in `ingest` that talks to AWS.

Control plane (DescribeDeliveryStream) goes through an aioboto3 client, which also resolves the
session, credentials, region and endpoint. The data plane (PutRecordBatch) is posted with our
minimal keep-alive HTTP/1.1 client (`http1`; aiohttp only for an ``https://`` proxy): the body
is built by concatenation (`wire`), signed with botocore's SigV4 signer (`signing`) and the
answer parsed with orjson, because botocore's per-entry serialisation and parsing would cost
more CPU than everything else in the producer together. Its TLS and proxy settings are
the ones botocore resolved for the Describe call (`transport`): the same CA
bundle (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``), ``verify``, and proxy
(``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, or the ``proxies`` config); the endpoint itself,
FIPS and dual-stack included, comes from botocore's resolver.

botocore is configured with one attempt (``total_max_attempts=1``): retries belong to the
producer's retry policy alone.
"""

from __future__ import annotations

import inspect
import io
import ssl
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, Final, NamedTuple, Self

import aioboto3
import aiohttp
import orjson
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from ingest.errors import (
    FirehoseConnectionError,
    FirehoseError,
    InvalidArgumentError,
    RequestTimeoutError,
    TlsError,
)
from ingest.firehose import http1
from ingest.firehose.classify import error_from_http
from ingest.firehose.signing import RequestSigner, missing_credentials_error
from ingest.firehose.transport import Transport, resolve_transport
from ingest.firehose.wire import (
    PutBatchResult,
    encode_put_record_batch,
    parse_error,
    parse_put_record_batch,
    target_header,
)

__all__ = ["FirehoseClient", "StreamDescription"]

_LARGE_BODY_BYTES: Final = 1024 * 1024


class StreamDescription(NamedTuple):
    """What DescribeDeliveryStream says about the target stream."""

    name: str
    status: str
    stream_type: str


class FirehoseClient:
    """A client bound to one delivery stream; use ``async with`` (or start/close).

    `request_timeout_s` bounds one PutRecordBatch call (connect + send + answer);
    `max_connections` sizes the HTTP connection pool (the producer passes its max_inflight).
    `verify` is botocore's: None (default) resolves the CA bundle as botocore does, False turns
    certificate checks off, a path names a CA bundle. `proxies` and `proxies_config` are the
    botocore client config's (e.g. ``{"https": "http://proxy:3128"}``); None uses the
    environment (``HTTPS_PROXY``, ``NO_PROXY``, ...), as botocore does.
    """

    def __init__(
        self,
        stream: str,
        *,
        region: str,
        endpoint_url: str | None = None,
        request_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_connections: int = 8,
        session: aioboto3.Session | None = None,
        verify: bool | str | None = None,
        proxies: dict[str, str] | None = None,
        proxies_config: dict[str, Any] | None = None,
    ) -> None:
        self.stream = stream
        self.region = region
        self.endpoint_url = endpoint_url
        self._requested_endpoint_url = endpoint_url
        self._verify = verify
        self._proxies = proxies
        self._proxies_config = proxies_config
        self.transport = Transport()
        self._request_timeout_s = request_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_connections = max_connections
        self._session = session
        self._stream_json = orjson.dumps(stream)
        self._put_target = target_header("PutRecordBatch")
        self._stack = AsyncExitStack()
        self._boto: Any = None
        self._pool: http1.Http1Pool | None = None
        self._http: aiohttp.ClientSession | None = None  # only for an https:// proxy
        self._signer: RequestSigner | None = None
        self._url = ""
        self._proxy: str | None = None
        self._proxy_headers: dict[str, str] | None = None
        self._extra_headers: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Create the aioboto3 client and HTTP pool, resolve endpoint and credentials.

        Raises `CredentialsError` if no credentials can be found.
        """
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        session = self._session or aioboto3.Session(region_name=self.region)
        self._boto = await self._boto_client(session, self._proxies_config)
        transport = resolve_transport(self._boto, self._endpoint())
        if transport.proxy and transport.verify is not False and not transport.proxy_ca_bundle:
            # aiobotocore checks no certificate on a proxied connection unless proxies_config
            # names a proxy_ca_bundle (its connector then loads that and the CA bundle): name
            # the resolved bundle, so the Describe call trusts exactly what PutRecordBatch does.
            await self._stack.aclose()
            fixed = {**(self._proxies_config or {}), "proxy_ca_bundle": transport.ca_bundle}
            self._boto = await self._boto_client(session, fixed)
            transport = resolve_transport(self._boto, self._endpoint())
        self.transport = transport
        self._url = self._endpoint().rstrip("/") + "/"
        self._proxy = transport.proxy
        ssl_context = transport.ssl_context()
        credentials = session.get_credentials()
        if inspect.isawaitable(credentials):
            credentials = await credentials
        self._signer = RequestSigner(credentials, self.region)
        if http1.supports_proxy(self._proxy):
            pool = http1.Http1Pool(
                self._url,
                ssl_context=_checking(ssl_context),
                proxy=self._proxy,
                proxy_headers=transport.proxy_headers,
                max_connections=self._max_connections,
                connect_timeout_s=self._connect_timeout_s,
                request_timeout_s=self._request_timeout_s,
            )
            self._pool = pool
            self._stack.push_async_callback(pool.close)
            return
        # An https:// proxy (TLS to the proxy, then TLS inside it): aiohttp does that.
        # aiohttp sends proxy_headers only on the CONNECT of a tunnel: a plain-http request
        # through a forward proxy carries them itself.
        tunnel = self._url.startswith("https:")
        self._proxy_headers = (transport.proxy_headers or None) if tunnel else None
        self._extra_headers = {} if tunnel else transport.proxy_headers
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=ssl_context),
            timeout=aiohttp.ClientTimeout(
                total=self._request_timeout_s, sock_connect=self._connect_timeout_s
            ),
        )
        self._stack.push_async_callback(self._http.close)

    async def _boto_client(
        self, session: aioboto3.Session, proxies_config: dict[str, Any] | None
    ) -> Any:
        """The aioboto3 client (entered on the exit stack), with one attempt per call."""
        config = AioConfig(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=self._connect_timeout_s,
            read_timeout=self._request_timeout_s,
            proxies=self._proxies,
            proxies_config=proxies_config,
        )
        client = await self._stack.enter_async_context(
            session.client(
                "firehose",
                region_name=self.region,
                endpoint_url=self._requested_endpoint_url,
                config=config,
                verify=self._verify,
            )
        )
        self.endpoint_url = str(client.meta.endpoint_url)
        return client

    def _endpoint(self) -> str:
        return str(self.endpoint_url)

    async def close(self) -> None:
        """Close the HTTP pool and the aioboto3 client. Idempotent."""
        self._pool = None
        self._http = None
        await self._stack.aclose()

    async def put_record_batch(
        self, records: list[bytes], on_sending: Callable[[], None] | None = None
    ) -> PutBatchResult:
        """Send one PutRecordBatch with `records` (1..500, limits checked by the caller).

        Returns the per-entry result of a 200 answer. Raises a `FirehoseError` subclass for a
        failed call; its `ambiguous` flag says whether the records may have been stored.
        Cancellation abandons the request; its outcome is then unknown to the caller once
        `on_sending` (optional) was called: just before the request's first byte is written.
        """
        if self._signer is None or (self._pool is None and self._http is None):
            raise RuntimeError("FirehoseClient is not started")
        body = encode_put_record_batch(self._stream_json, records)
        sent = len(records)
        del records  # the body holds them now: with packing this frees MBs per request in flight
        headers = await self._signer.sign(self._url, body, self._put_target)
        if self._pool is not None:
            # Handed over in a list the pool empties: the body (MBs when packed) is freed as
            # soon as it is written, not held until the answer comes.
            parcel = [body]
            del body
            status, _, request_id, error_type, payload = await self._post(
                self._pool, headers, parcel, on_sending
            )
        else:
            if on_sending is not None:  # aiohttp does not say when it writes: assume now
                on_sending()
            status, request_id, error_type, payload = await self._post_aiohttp(headers, body)
        if status == 200:
            return parse_put_record_batch(payload, sent, request_id)
        raise self._located(parse_error(status, payload, request_id, error_type))

    async def _post(
        self,
        pool: http1.Http1Pool,
        headers: dict[str, str],
        parcel: list[bytes],
        on_sending: Callable[[], None] | None,
    ) -> http1.Answer:
        """POST through our HTTP/1.1 pool; its errors mapped as the aiohttp ones are below."""
        try:
            return await pool.post(headers, parcel, on_sending)
        except http1.TlsCertificateError as exc:
            raise self._tls_error("TlsCertificateNotTrusted", exc.cause or exc) from exc
        except http1.TlsHandshakeError as exc:
            raise self._tls_error("TlsHandshakeFailed", exc.cause or exc) from exc
        except http1.ProxyRefusedError as exc:
            # The proxy refused the CONNECT (e.g. 403, 407): the endpoint was never reached.
            message = f"proxy {self._proxy} answered {exc.status} {exc.reason} to CONNECT"
            raise FirehoseConnectionError("ProxyRefused", message, status=exc.status) from exc
        except http1.ProxyConnectError as exc:
            # The proxy itself could not be reached: nothing can have been stored.
            message = f"proxy {self._proxy} unreachable: {exc}"
            raise FirehoseConnectionError("ProxyConnectFailed", message) from exc
        except http1.ConnectError as exc:
            # Never connected: nothing can have been stored.
            raise FirehoseConnectionError("ConnectFailed", str(exc)) from exc
        except http1.PoolTimeoutError as exc:
            # Every connection stayed busy: this request was never written.
            raise RequestTimeoutError("RequestTimeout", str(exc)) from exc
        except http1.AnswerTimeoutError as exc:
            message = f"no complete answer within {self._request_timeout_s} s"
            raise RequestTimeoutError("RequestTimeout", message, ambiguous=True) from exc
        except http1.ConnectionLostError as exc:
            raise FirehoseConnectionError("ConnectionLost", str(exc), ambiguous=True) from exc

    async def _post_aiohttp(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, str | None, str | None, bytes]:
        """POST through aiohttp (an https:// proxy): status, request id, error type, body."""
        assert self._http is not None
        if self._extra_headers:
            headers.update(self._extra_headers)  # for the forward proxy; not part of the signature
        # aiohttp warns about (and would write in one piece) bodies over 1 MiB given as bytes.
        data: bytes | io.BytesIO = io.BytesIO(body) if len(body) > _LARGE_BODY_BYTES else body
        try:
            async with self._http.post(
                self._url,
                data=data,
                headers=headers,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as response:
                payload = await response.read()
                status = response.status
                request_id = response.headers.get("x-amzn-RequestId")
                error_type = response.headers.get("x-amzn-ErrorType")
        except aiohttp.ClientConnectorCertificateError as exc:
            raise self._tls_error("TlsCertificateNotTrusted", exc.certificate_error) from exc
        except aiohttp.ClientSSLError as exc:
            raise self._tls_error("TlsHandshakeFailed", exc) from exc
        except aiohttp.ClientProxyConnectionError as exc:
            # The proxy itself could not be reached: nothing can have been stored.
            message = f"proxy {self._proxy} unreachable: {_describe(exc)}"
            raise FirehoseConnectionError("ProxyConnectFailed", message) from exc
        except aiohttp.ClientHttpProxyError as exc:
            # The proxy refused the CONNECT (e.g. 403, 407): the endpoint was never reached.
            message = f"proxy {self._proxy} answered {exc.status} {exc.message} to CONNECT"
            raise FirehoseConnectionError("ProxyRefused", message, status=exc.status) from exc
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # Never connected: nothing can have been stored.
            raise FirehoseConnectionError("ConnectFailed", _describe(exc)) from exc
        except TimeoutError as exc:
            message = f"no complete answer within {self._request_timeout_s} s"
            raise RequestTimeoutError("RequestTimeout", message, ambiguous=True) from exc
        except aiohttp.ClientError as exc:
            raise FirehoseConnectionError("ConnectionLost", _describe(exc), ambiguous=True) from exc
        return status, request_id, error_type, payload

    async def describe_stream(self) -> StreamDescription:
        """DescribeDeliveryStream for the bound stream (a control-plane call: AWS allows 5/s per
        account, so never poll it in a loop). Raises a typed `FirehoseError`."""
        if self._boto is None:
            raise RuntimeError("FirehoseClient is not started")
        try:
            answer = await self._boto.describe_delivery_stream(DeliveryStreamName=self.stream)
        except (NoCredentialsError, PartialCredentialsError):
            raise missing_credentials_error() from None
        except ClientError as exc:
            raise self._located(_from_client_error(exc)) from None
        except SSLError as exc:
            raise self._tls_error("TlsCertificateNotTrusted", exc.kwargs.get("error", exc)) from exc
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            raise RequestTimeoutError("RequestTimeout", str(exc)) from exc
        except BotoCoreError as exc:
            raise FirehoseConnectionError("ConnectFailed", str(exc)) from exc
        described = answer["DeliveryStreamDescription"]
        return StreamDescription(
            name=described["DeliveryStreamName"],
            status=described.get("DeliveryStreamStatus", "UNKNOWN"),
            stream_type=described.get("DeliveryStreamType", "DirectPut"),
        )

    async def check_target(self) -> StreamDescription:
        """Describe the stream and verify it accepts PutRecordBatch (DirectPut, not deleting).

        Raises `StreamNotFoundError`, `AccessDeniedError`, `CredentialsError`,
        `InvalidArgumentError` (wrong stream type or status) or a transport `FirehoseError`.
        """
        described = await self.describe_stream()
        if described.stream_type == "KinesisStreamAsSource":
            raise InvalidArgumentError(
                "InvalidArgumentException",
                f"stream {self.stream!r} reads from a Kinesis stream; PutRecordBatch needs a "
                "DirectPut stream",
            )
        if described.status in {"DELETING", "CREATING_FAILED", "DELETING_FAILED"}:
            raise InvalidArgumentError(
                "StreamNotActive", f"stream {self.stream!r} is {described.status}"
            )
        return described

    def _tls_error(self, code: str, cause: object) -> TlsError:
        """A fatal TLS error naming the endpoint and what was trusted (a wrong CA bundle, a
        missing one, or a certificate for another host name all end here)."""
        return TlsError(code, f"{self._url}: {cause} ({self.transport.describe()})")

    def _located(self, error: FirehoseError) -> FirehoseError:
        """A fatal error names the stream and region: a typo or a wrong region shows at once."""
        if not error.fatal:
            return error
        return error.with_context(f"stream {self.stream!r} in region {self.region!r}")


def _checking(context: ssl.SSLContext | bool) -> ssl.SSLContext:
    """`Transport.ssl_context`'s answer as a context: False (``verify`` off) becomes one that
    checks nothing, as aiohttp's ``ssl=False`` did."""
    if isinstance(context, ssl.SSLContext):
        return context
    unchecked = ssl.create_default_context()
    unchecked.check_hostname = False
    unchecked.verify_mode = ssl.CERT_NONE
    return unchecked


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _from_client_error(exc: ClientError) -> FirehoseError:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    request_id = exc.response.get("ResponseMetadata", {}).get("RequestId")
    return error_from_http(status, error.get("Code"), error.get("Message", ""), request_id)
