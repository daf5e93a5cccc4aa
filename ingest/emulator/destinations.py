"""Where a stream's objects go: a local directory laid out as S3, or an S3-compatible store.

Both are atomic per object: a reader sees an object whole or not at all. The directory writes
under ``<data_dir>/.tmp/`` and renames into place; S3 gets a single PutObject (never multipart).
Every failure is raised as ``DestinationError`` (an ``OSError``) and leaves nothing behind, so the
stream can keep its buffer and try again later.
"""

from __future__ import annotations

import asyncio
import os
import re
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog

from ingest.emulator.delivery import ObjectWriter, check_prefix

log = structlog.get_logger(__name__)

#: S3 bucket naming rules (general purpose buckets): 3-63 characters, lower case letters,
#: digits, dots and hyphens, starting and ending with a letter or digit.
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_CONNECT_TIMEOUT_S = 5.0
S3_READ_TIMEOUT_S = 30.0


class DestinationError(OSError):
    """An object could not be written; nothing of it is visible. The message says why."""


class Destination(Protocol):
    """Receives whole objects. ``put`` is atomic: the object is visible whole, or not at all."""

    def describe(self) -> str:
        """Where objects go, for logs and messages (``directory /data`` or ``s3://bucket``)."""
        ...

    def check_prefix(self, prefix: str) -> str | None:
        """Why keys starting with ``prefix`` cannot be stored here, or None."""
        ...

    async def open(self) -> None:
        """Get ready to write (create the directory, connect); DestinationError if impossible."""
        ...

    async def put(self, key: str, body: list[bytes]) -> int:
        """Store the concatenated ``body`` as object ``key``; the bytes stored."""
        ...

    async def close(self) -> None: ...


def check_bucket(bucket: str) -> str | None:
    """Why ``bucket`` is not a valid S3 bucket name, or None."""
    if BUCKET_PATTERN.fullmatch(bucket) is None or ".." in bucket:
        return "expected 3-63 lower-case letters, digits, dots or hyphens"
    return None


def check_endpoint_url(url: str) -> str | None:
    """Why ``url`` cannot be an S3 endpoint URL, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        return str(error)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL such as http://127.0.0.1:9000"
    if parts.query or parts.fragment:
        return "expected no query string or fragment"
    return None


def directory_problem(path: Path) -> str | None:
    """Why objects cannot be written under `path` (created if missing), or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(path, os.W_OK | os.X_OK):
        return "not writable"
    return None


class DirectoryDestination:
    """Objects as files under ``data_dir`` (see ``delivery.ObjectWriter``)."""

    def __init__(self, data_dir: Path) -> None:
        self.writer = ObjectWriter(data_dir)

    def describe(self) -> str:
        return f"directory {self.writer.data_dir}"

    def check_prefix(self, prefix: str) -> str | None:
        return check_prefix(prefix)

    async def open(self) -> None:
        try:
            self.writer.prepare(self.writer.data_dir)
        except OSError as error:
            raise DestinationError(
                error.errno, error.strerror or str(error), str(self.writer.data_dir)
            ) from error

    async def put(self, key: str, body: list[bytes]) -> int:
        try:
            return await asyncio.to_thread(self.writer.write, key, body)
        except OSError as error:
            where = error.filename or self.writer.data_dir / key
            raise DestinationError(error.errno, error.strerror or str(error), str(where)) from error

    async def close(self) -> None:
        return None


class S3Destination:
    """Objects in ``bucket`` of an S3-compatible store, one PutObject each.

    Credentials come from botocore's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a
    profile, a role). The bucket is created on ``open`` if it does not exist yet, so a fresh
    MinIO or moto_server needs no set-up step. Path-style addressing, which every S3-compatible
    store accepts (virtual-host style needs DNS for ``bucket.host``).
    """

    def __init__(self, bucket: str, endpoint_url: str | None, region: str) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}{where}"

    def check_prefix(self, prefix: str) -> str | None:
        return None  # any key is legal in S3

    async def open(self) -> None:
        # Imported here: the directory destination (the default) does not pay for botocore.
        import aioboto3
        from botocore.config import Config

        config = Config(
            connect_timeout=S3_CONNECT_TIMEOUT_S,
            read_timeout=S3_READ_TIMEOUT_S,
            # The stream retries a failed object itself; one retry here covers a dropped
            # keep-alive connection without hiding an outage for long.
            retries={"mode": "standard", "total_max_attempts": 2},
            s3={"addressing_style": "path"},
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            aioboto3.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
            )
        )
        try:
            await self._ensure_bucket(client)
        except BaseException:
            await stack.aclose()
            raise
        self._stack, self._client = stack, client

    async def _ensure_bucket(self, client: Any) -> None:
        from botocore.exceptions import ClientError

        try:
            await client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise DestinationError(f"{self.describe()}: {_why(error)}") from error
        except Exception as error:  # unreachable, no credentials, bad TLS: botocore's own types
            raise DestinationError(f"{self.describe()}: {_why(error)}") from error
        try:
            if self.region == "us-east-1":
                await client.create_bucket(Bucket=self.bucket)
            else:
                await client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self.region},
                )
        except Exception as error:
            why = _why(error)
            raise DestinationError(f"{self.describe()}: cannot create the bucket: {why}") from error
        log.info("emulator_bucket_created", bucket=self.bucket, endpoint=self.endpoint_url)

    async def put(self, key: str, body: list[bytes]) -> int:
        if self._client is None:
            raise DestinationError(f"{self.describe()}: not open")
        data = body[0] if len(body) == 1 else b"".join(body)
        try:
            await self._client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as error:  # botocore raises many unrelated types for one outage
            raise DestinationError(f"cannot put s3://{self.bucket}/{key}: {_why(error)}") from error
        return len(data)

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()


def _why(error: BaseException) -> str:
    """One line for a botocore or network error (never a traceback)."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        code = response["Error"].get("Code", "")
        message = response["Error"].get("Message", "")
        return f"{code}: {message}".strip(": ") or str(error)
    return str(error) or type(error).__name__
