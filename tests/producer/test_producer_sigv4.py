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
        request = AWSRequest(
            method="POST",
            url=url,
            data=body,
            headers={k: v for k, v in headers.items() if k != "Authorization"},
        )
        request.context["timestamp"] = headers["X-Amz-Date"]
        botocore = SigV4Auth(
            ReadOnlyCredentials("AKIDEXAMPLE", "secret/key+1", token), "firehose", "eu-west-1"
        )
        botocore._inject_signature_to_request(
            request,
            botocore.signature(
                botocore.string_to_sign(request, botocore.canonical_request(request)), request
            ),
        )
        assert headers["Authorization"] == request.headers["Authorization"]
        assert headers.get("X-Amz-Security-Token") == token
