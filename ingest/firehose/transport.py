"""The data path's TLS and proxy settings, taken from the botocore client that makes the
Describe call, so PutRecordBatch goes where DescribeDeliveryStream goes and trusts what it
trusts.

botocore resolves them when it creates the client's endpoint, and aiobotocore keeps the result
on the endpoint's HTTP session:

- ``verify``: the ``verify`` argument of ``session.client`` (``False`` turns checking off, a
  path names a CA bundle); else the session's ``ca_bundle`` (``AWS_CA_BUNDLE`` or the profile's
  ``ca_bundle``); else ``REQUESTS_CA_BUNDLE``; else the default bundle (certifi's).
- proxies: the client config's ``proxies``; else ``HTTPS_PROXY``/``HTTP_PROXY`` from the
  environment, unless ``NO_PROXY`` names the endpoint (``botocore.utils.get_environ_proxies``),
  plus the config's ``proxies_config`` (``proxy_ca_bundle``, ``proxy_client_cert``).

`resolve_transport` reads those resolved values, never the environment itself, and
`Transport.ssl_context` turns them into one `ssl.SSLContext` that checks the certificate chain
*and* the host name (botocore's own context leaves the host name to urllib3, which aiohttp
does not do).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from botocore.httpsession import get_cert_path

from ingest.errors import ConfigError

__all__ = ["Transport", "resolve_transport"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Transport:
    """How to reach one endpoint: certificate checking, CA bundle, proxy and client cert."""

    #: False: no certificate check; True: the default CA bundle; a str: that CA bundle file.
    verify: bool | str = True
    #: The proxy for the endpoint's scheme, user info removed (it travels in `proxy_headers`).
    proxy: str | None = None
    #: Headers for the proxy (Proxy-Authorization): on the CONNECT of an https:// endpoint, on
    #: every forwarded request of an http:// one.
    proxy_headers: dict[str, str] = field(default_factory=dict)
    #: proxies_config's proxy_ca_bundle: the CA bundle for an https:// proxy (trusted too).
    proxy_ca_bundle: str | None = None
    #: client certificate (and key) for mutual TLS: botocore's ``client_cert``.
    client_cert: str | tuple[str, str] | None = None

    @property
    def ca_bundle(self) -> str | None:
        """The CA bundle file certificates are checked against (None: checking is off)."""
        if self.verify is False:
            return None
        return str(get_cert_path(self.verify))

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What aiohttp takes as ``ssl=``: False when checking is off, else a context trusting
        exactly the resolved CA bundle (plus the proxy's, for an https:// proxy).

        Raises ConfigError naming the file when a bundle or client certificate is unusable."""
        bundle = self.ca_bundle
        if bundle is None:
            return False
        context = _load(lambda: ssl.create_default_context(cafile=bundle), "ca_bundle", bundle)
        if self.proxy_ca_bundle:
            extra = self.proxy_ca_bundle
            _load(lambda: context.load_verify_locations(cafile=extra), "proxy_ca_bundle", extra)
        if self.client_cert:
            cert, key = (
                self.client_cert
                if isinstance(self.client_cert, tuple)
                else (self.client_cert, None)
            )
            _load(lambda: context.load_cert_chain(cert, key), "client_cert", cert)
        return context

    def describe(self) -> str:
        """For logs and errors: ``direct`` or ``via proxy http://host:port``, and the trust."""
        route = f"via proxy {self.proxy}" if self.proxy else "direct"
        trust = "certificate check off" if self.verify is False else f"CA bundle {self.ca_bundle}"
        return f"{route}, {trust}"


def _load(action: Callable[[], _T], setting: str, path: str) -> _T:
    """`action()`; a ConfigError naming the botocore setting and the file when it fails."""
    try:
        return action()
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{setting}: cannot use {path!r}: {reason}; expected a readable PEM file"
        ) from None


def resolve_transport(boto_client: Any, url: str) -> Transport:
    """The settings botocore resolved for `boto_client` (an aiobotocore client), applied to
    `url` (its endpoint): the same verify value, the same proxy and proxy headers."""
    try:
        http = boto_client._endpoint.http_session
        verify = http._verify
        proxy_config = http._proxy_config
        cert_file, key_file = http._cert_file, http._key_file
    except AttributeError as exc:  # pragma: no cover - only with an unsupported aiobotocore
        raise RuntimeError(
            f"cannot read the TLS/proxy settings of aiobotocore's HTTP session ({exc}); "
            "use the aiobotocore version in requirements.lock"
        ) from exc
    proxy = proxy_config.proxy_url_for(url)
    settings = proxy_config.settings
    client_cert: str | tuple[str, str] | None = None
    if cert_file:
        client_cert = (cert_file, key_file) if key_file else cert_file
    return Transport(
        verify=verify if isinstance(verify, str) else bool(verify),
        proxy=_without_userinfo(proxy) if proxy else None,
        # botocore builds them from the proxy URL's user info (Basic auth).
        proxy_headers=dict(proxy_config.proxy_headers_for(proxy)) if proxy else {},
        proxy_ca_bundle=settings.get("proxy_ca_bundle"),
        client_cert=client_cert,
    )


def _without_userinfo(url: str) -> str:
    """The proxy URL without ``user:password@``: botocore already turned that into the
    Proxy-Authorization header, and a URL with a password must never reach a log line."""
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))
