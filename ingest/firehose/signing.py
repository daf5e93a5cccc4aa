"""SigV4 signing of hand-built requests with botocore's own signer.

Credentials come from the aiobotocore session (environment, profile, role, ...). Refreshable
credentials are asked for a frozen copy on every request, which refreshes them when they are
near expiry, so a long-running producer never signs with stale keys.
"""

from __future__ import annotations

import inspect
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

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
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": target},
        )
        SigV4Auth(frozen, SERVICE_NAME, self._region).add_auth(request)
        return dict(request.headers.items())
