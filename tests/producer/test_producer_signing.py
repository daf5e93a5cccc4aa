"""The hand-built PutRecordBatch requests carry a valid SigV4 signature.

A small aiohttp server re-computes each signature from what actually arrived on the wire (with
botocore's signer and the secret it knows) and refuses a mismatch like AWS does, so the test
catches any header the HTTP client adds or changes after signing.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aioboto3
import orjson
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from ingest.errors import CredentialsError
from ingest.producer import Producer

SECRET = "verifier-secret"
ACCESS_KEY = "AKIDVERIFIER"


@dataclass
class Verifier:
    secret: str
    valid: int = 0
    tokens: list[str | None] = field(default_factory=list)
    records: list[bytes] = field(default_factory=list)

    def signature_ok(self, request: web.Request, body: bytes) -> bool:
        auth = request.headers["Authorization"]
        parts = dict(item.strip().split("=", 1) for item in auth.split(" ", 1)[1].split(","))
        access_key, date, region, service, _ = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        headers = {name: request.headers[name] for name in signed}
        rebuilt = AWSRequest(
            method=request.method, url=f"http://{request.host}{request.path_qs}", data=body,
            headers=headers,
        )  # fmt: skip
        rebuilt.context["timestamp"] = request.headers["X-Amz-Date"]
        token = request.headers.get("X-Amz-Security-Token")
        signer = SigV4Auth(ReadOnlyCredentials(access_key, self.secret, token), service, region)
        expected = signer.signature(
            signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt)), rebuilt
        )
        self.tokens.append(token)
        return bool(expected == parts["Signature"] and date == headers["x-amz-date"][:8])

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.signature_ok(request, body):
            error = {"__type": "InvalidSignatureException", "message": "signature mismatch"}
            return web.json_response(error, status=400)
        self.valid += 1
        sent = orjson.loads(body)["Records"]
        self.records += [base64.b64decode(entry["Data"]) for entry in sent]
        answer = {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"} for _ in sent]}
        return web.Response(body=orjson.dumps(answer), content_type="application/x-amz-json-1.1")


@pytest.fixture
def verifier() -> Verifier:
    return Verifier(SECRET)


@pytest.fixture
async def verifying_endpoint(verifier: Verifier, serve_post: Callable[..., Awaitable[str]]) -> str:
    return await serve_post(verifier.handle)


def session(secret: str = SECRET, token: str | None = None) -> aioboto3.Session:
    return aioboto3.Session(
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        aws_session_token=token,
        region_name="eu-west-1",
    )


async def test_signed_requests_verify_on_the_server(
    verifying_endpoint: str, verifier: Verifier
) -> None:
    records = [b"%d\n" % i for i in range(1200)]
    async with Producer(
        "s", "eu-west-1", verifying_endpoint, session=session(), linger_s=0.001
    ) as producer:
        receipts = await producer.put_many(records)
        assert await receipts.wait() == []
    assert verifier.valid >= 3
    assert verifier.records == records


async def test_session_token_is_sent_and_signed(
    verifying_endpoint: str, verifier: Verifier
) -> None:
    async with Producer("s", "eu-west-1", verifying_endpoint, session=session(token="tok")) as p:
        await (await p.put(b"x\n"))
    assert verifier.tokens == ["tok"]


async def test_wrong_secret_fails_fast_as_a_credentials_error(verifying_endpoint: str) -> None:
    async with Producer(
        "s", "eu-west-1", verifying_endpoint, session=session(secret="wrong"), max_attempts=5
    ) as producer:
        receipt = await producer.put(b"x\n")
        await producer.flush()
        assert receipt.failure is not None
        assert receipt.failure.reason == "credentials"
        assert receipt.failure.attempts == 1  # not retried
        with pytest.raises(CredentialsError, match="InvalidSignatureException"):
            await producer.put(b"y\n")
    assert producer.stats().records_failed == {"credentials": 1}


class RotatingProvider:
    """A credential provider whose keys expire at once; refreshing yields the valid secret."""

    METHOD = "test-rotating"
    CANONICAL_NAME = "test-rotating"

    def __init__(self) -> None:
        self.refreshes = 0

    def metadata(self, secret: str) -> dict[str, str]:
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)  # inside the refresh window
        return {"access_key": ACCESS_KEY, "secret_key": secret, "token": "t",
                "expiry_time": soon.isoformat()}  # fmt: skip

    async def refresh(self) -> dict[str, str]:
        self.refreshes += 1
        return self.metadata(SECRET)

    async def load(self) -> AioRefreshableCredentials:
        return AioRefreshableCredentials.create_from_metadata(
            self.metadata("stale-secret"), self.refresh, self.METHOD
        )


async def test_refreshable_credentials_are_refreshed_before_signing(
    verifying_endpoint: str, verifier: Verifier
) -> None:
    provider = RotatingProvider()
    botocore_session = AioSession()
    botocore_session.get_component("credential_provider").insert_before("env", provider)
    rotating = aioboto3.Session(botocore_session=botocore_session, region_name="eu-west-1")
    async with Producer("s", "eu-west-1", verifying_endpoint, session=rotating) as producer:
        assert await (await producer.put(b"x\n"))
    assert provider.refreshes >= 1
    assert verifier.valid == 1


async def test_no_credentials_anywhere_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, verifying_endpoint: str
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    producer = Producer("s", "eu-west-1", verifying_endpoint)
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        await producer.start()
