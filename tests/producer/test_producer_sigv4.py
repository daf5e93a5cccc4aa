"""The producer's own SigV4 signer gives exactly botocore's signature for the same request."""

from __future__ import annotations

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

from ingest.firehose.signing import RequestSigner


@pytest.mark.parametrize(
    "url",
    [
        "https://firehose.us-east-1.amazonaws.com/",
        "https://Firehose.EU-West-1.amazonaws.com:443/",
        "http://127.0.0.1:4573/",
        "https://[::1]:8443/",
    ],
)
@pytest.mark.parametrize("token", [None, "session  token with spaces"])
async def test_signature_equals_botocores(url: str, token: str | None) -> None:
    body = b'{"DeliveryStreamName":"s","Records":[{"Data":"e30K"}]}'
    target = "Firehose_20150804.PutRecordBatch"
    signer = RequestSigner(Credentials("AKIDEXAMPLE", "secret/key+1", token), "eu-west-1")
    for _ in range(2):  # the second request uses the cached signing key
        headers = await signer.sign(url, body, target)
        credentials = ReadOnlyCredentials("AKIDEXAMPLE", "secret/key+1", token)
        expected = _botocore_authorization(url, body, headers, credentials, "eu-west-1")
        assert headers["Authorization"] == expected
        assert headers.get("X-Amz-Security-Token") == token


def _botocore_authorization(
    url: str, body: bytes, headers: dict[str, str], credentials: ReadOnlyCredentials, region: str
) -> str:
    """The Authorization header botocore's SigV4 computes for the same request and time."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={k: v for k, v in headers.items() if k != "Authorization"},
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(credentials, "firehose", region)
    signature = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    signer._inject_signature_to_request(request, signature)
    return str(request.headers["Authorization"])


async def test_rotated_credentials_are_signed_with_the_new_ones_at_once() -> None:
    # What is cached per credentials (the signing key, the constant header parts) must follow
    # a refresh: new keys, a session token appearing, then going away again.
    url, body, target = "https://firehose.eu-west-1.amazonaws.com/", b"{}", "T.PutRecordBatch"
    credentials = Credentials("AKIDONE", "secret-one", None)
    signer = RequestSigner(credentials, "eu-west-1")
    for access, secret, token in [
        ("AKIDONE", "secret-one", None),
        ("AKIDTWO", "secret-two", "token-two"),
        ("AKIDTWO", "secret-three", "token-three"),
        ("AKIDONE", "secret-one", None),
    ]:
        credentials.access_key, credentials.secret_key, credentials.token = access, secret, token
        headers = await signer.sign(url, body, target)
        expected = ReadOnlyCredentials(access, secret, token)
        assert headers["Authorization"] == _botocore_authorization(
            url, body, headers, expected, "eu-west-1"
        )
        assert headers.get("X-Amz-Security-Token") == token


async def test_the_date_and_signing_key_follow_the_clock_across_midnight() -> None:
    url, body, target = "https://firehose.us-east-1.amazonaws.com/", b"{}", "T.PutRecordBatch"
    midnight = 1_796_256_000  # 2026-12-03T00:00:00Z
    now = [midnight - 0.5]
    signer = RequestSigner(Credentials("AKID", "secret"), "us-east-1", clock=lambda: now[0])
    dates = []
    for now[0] in (midnight - 0.5, midnight - 0.1, midnight + 0.1, midnight + 1.2):
        headers = await signer.sign(url, body, target)
        dates.append(headers["X-Amz-Date"])
        assert headers["Authorization"] == _botocore_authorization(
            url, body, headers, ReadOnlyCredentials("AKID", "secret", None), "us-east-1"
        )
    assert dates == [
        "20261202T235959Z",
        "20261202T235959Z",
        "20261203T000000Z",
        "20261203T000001Z",
    ]
