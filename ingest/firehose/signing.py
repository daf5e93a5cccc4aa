"""SigV4 signing of hand-built PutRecordBatch requests.

Credentials come from the aiobotocore session (environment, profile, role, ...). Refreshable
credentials are asked for a frozen copy on every request, which refreshes them when they are
near expiry, so a long-running producer never signs with stale keys.

The signature is the one botocore's `SigV4Auth` computes for the same request (the tests check
it against botocore, on the wire), built directly: botocore's generic signer (an `AWSRequest`,
header maps, URL parsing and four HMACs per call) cost more CPU than everything else in a
request but the socket write. Here everything but the date and the body's hash is built once
per (URL, target, credentials) and the signing key once per day and secret: a request costs the
SHA-256 of its body (the only part that grows with it), one SHA-256 of a short text, one
one-shot HMAC and a few string joins.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from botocore.auth import _host_from_url
from botocore.utils import normalize_url_path

from ingest.errors import CredentialsError
from ingest.firehose.wire import CONTENT_TYPE

__all__ = ["RequestSigner", "missing_credentials_error"]

SERVICE_NAME = "firehose"


def missing_credentials_error() -> CredentialsError:
    """The error for "no credentials found anywhere", with what to set."""
    return CredentialsError(
        "NoCredentials",
        "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "AWS_PROFILE, or run with an IAM role)",
    )


class _Template(NamedTuple):
    """The parts of a signed request that only change with the URL, target or credentials."""

    key: tuple[str, str, str, str | None]  # (url, target, access key, token)
    canonical_head: str  # canonical request up to the x-amz-date value
    canonical_tail: str  # from after the date up to the payload hash
    authorization_head: str  # "AWS4-HMAC-SHA256 Credential=<access key>/" (then the scope)
    authorization_tail: str  # ", SignedHeaders=...", then the signature
    headers: dict[str, str]  # the constant headers (a copy is returned per request)


class RequestSigner:
    """Signs POST requests to one Firehose endpoint.

    `credentials` is a botocore/aiobotocore credentials object (static or refreshable);
    `clock` gives the signing time in seconds since the epoch.
    """

    def __init__(
        self, credentials: Any, region: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        if credentials is None:
            raise missing_credentials_error()
        self._credentials = credentials
        self._region = region
        # (secret, day, the signing key derived from them)
        self._key: tuple[str, str, bytes] = ("", "", b"")
        self._await = inspect.iscoroutinefunction(credentials.get_frozen_credentials)
        self._scope_tail = f"/{region}/{SERVICE_NAME}/aws4_request"
        self._template: _Template | None = None
        self._clock = clock
        self._second = -1  # the whole second of the cached X-Amz-Date stamp
        self._stamp = ""

    async def _frozen(self) -> Any:
        if self._await:
            return await self._credentials.get_frozen_credentials()
        frozen = self._credentials.get_frozen_credentials()
        if inspect.isawaitable(frozen):
            # aiobotocore: refreshes (under its lock) only when expiry is near.
            frozen = await frozen
        return frozen

    async def sign(self, url: str, body: bytes, target: str) -> dict[str, str]:
        """The headers to send with `body` to `url` for the ``X-Amz-Target`` `target`.

        Raises `CredentialsError` when the credentials cannot be obtained or refreshed.
        """
        try:
            frozen = await self._frozen()
        except Exception as exc:  # any provider failure means "no usable credentials"
            raise CredentialsError("CredentialsRefreshFailed", str(exc)) from exc
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise missing_credentials_error()
        now = int(self._clock())
        if now != self._second:  # strftime once a second, not once a request
            self._second = now
            self._stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        stamp = self._stamp
        day = stamp[:8]
        template = self._template
        token = frozen.token or None
        if template is None or template.key != (url, target, frozen.access_key, token):
            template = self._template = self._build(url, target, frozen.access_key, token)
        payload_hash = hashlib.sha256(body).hexdigest()
        canonical = f"{template.canonical_head}{stamp}{template.canonical_tail}{payload_hash}"
        scope = day + self._scope_tail
        to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = self._hmac(frozen.secret_key, day, to_sign.encode())
        headers = template.headers.copy()
        headers["X-Amz-Date"] = stamp
        headers["Authorization"] = (
            f"{template.authorization_head}{scope}{template.authorization_tail}{signature}"
        )
        return headers

    def _build(self, url: str, target: str, access_key: str, token: str | None) -> _Template:
        host, path = _url_parts(url)
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": target}
        if token:
            headers["X-Amz-Security-Token"] = token
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            tail = f"\nx-amz-security-token:{' '.join(token.split())}\nx-amz-target:{target}\n"
        else:
            signed = "content-type;host;x-amz-date;x-amz-target"
            tail = f"\nx-amz-target:{target}\n"
        return _Template(
            key=(url, target, access_key, token),
            canonical_head=f"POST\n{path}\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:",
            canonical_tail=f"{tail}\n{signed}\n",
            authorization_head=f"AWS4-HMAC-SHA256 Credential={access_key}/",
            authorization_tail=f", SignedHeaders={signed}, Signature=",
            headers=headers,
        )

    def _hmac(self, secret: str, day: str, message: bytes) -> str:
        """HMAC-SHA256 (hex) of `message` under the day's signing key (the HMAC chain date ->
        region -> service -> aws4_request), derived once per day and secret."""
        cached_secret, cached_day, key = self._key
        if cached_secret != secret or cached_day != day:
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, SERVICE_NAME, "aws4_request"):
                key = hmac.digest(key, part.encode(), "sha256")
            self._key = (secret, day, key)
        return hmac.digest(key, message, "sha256").hex()


@lru_cache(maxsize=16)
def _url_parts(url: str) -> tuple[str, str]:
    """The signed Host value and canonical path of `url`, exactly as botocore derives them
    (lowercase host, port only when not the scheme's default, IPv6 in brackets)."""
    path = quote(normalize_url_path(urlsplit(url).path), safe="/~")
    return _host_from_url(url), path
