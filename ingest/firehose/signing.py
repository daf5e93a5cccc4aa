"""SigV4 signing of hand-built PutRecordBatch requests.

Credentials come from the aiobotocore session (environment, profile, role, ...). Refreshable
credentials are asked for a frozen copy on every request, which refreshes them when they are
near expiry, so a long-running producer never signs with stale keys.

The signature is the one botocore's `SigV4Auth` computes for the same request (the tests check
it against botocore, on the wire), built directly: botocore's generic signer (an `AWSRequest`,
header maps, URL parsing and four HMACs per call) cost more CPU than everything else in a
request but the socket write. Here the host and path are derived once per URL, the signing key
once per day and secret, and a request costs two SHA-256 and one HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import time
from functools import lru_cache
from typing import Any
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


class RequestSigner:
    """Signs POST requests to one Firehose endpoint.

    `credentials` is a botocore/aiobotocore credentials object (static or refreshable).
    """

    def __init__(self, credentials: Any, region: str) -> None:
        if credentials is None:
            raise missing_credentials_error()
        self._credentials = credentials
        self._region = region
        self._key: tuple[str, str, bytes] = ("", "", b"")  # (secret, day, signing key)

    async def _frozen(self) -> Any:
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
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        host, path = _url_parts(url)
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": target, "X-Amz-Date": stamp}
        token = frozen.token
        if token:
            headers["X-Amz-Security-Token"] = token
            signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            canonical_headers = (
                f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{stamp}\n"
                f"x-amz-security-token:{' '.join(token.split())}\nx-amz-target:{target}\n"
            )
        else:
            signed = "content-type;host;x-amz-date;x-amz-target"
            canonical_headers = (
                f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-amz-date:{stamp}\n"
                f"x-amz-target:{target}\n"
            )
        canonical = (
            f"POST\n{path}\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{day}/{self._region}/{SERVICE_NAME}/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = self._signing_key(frozen.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={frozen.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers

    def _signing_key(self, secret: str, day: str) -> bytes:
        """HMAC chain date -> region -> service -> aws4_request, kept for the day."""
        cached_secret, cached_day, key = self._key
        if cached_secret != secret or cached_day != day:
            key = f"AWS4{secret}".encode()
            for part in (day, self._region, SERVICE_NAME, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key = (secret, day, key)
        return key


@lru_cache(maxsize=16)
def _url_parts(url: str) -> tuple[str, str]:
    """The signed Host value and canonical path of `url`, exactly as botocore derives them
    (lowercase host, port only when not the scheme's default, IPv6 in brackets)."""
    path = quote(normalize_url_path(urlsplit(url).path), safe="/~")
    return _host_from_url(url), path
