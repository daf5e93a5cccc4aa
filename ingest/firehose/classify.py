"""Error classification as data: AWS error code / HTTP status -> typed `FirehoseError`.

The table below is the single place that decides what is retriable; the exception classes in
`ingest.errors` carry `retriable`, `fatal` and `reason`. Ambiguity (the write may have been
stored although the call failed) is decided here too: HTTP 500/502/504 are ambiguous, a 503
(throttling) and every 4xx are not.
"""

from __future__ import annotations

from typing import Final

from ingest.errors import (
    AccessDeniedError,
    ClientRequestError,
    CredentialsError,
    FirehoseError,
    InvalidArgumentError,
    RequestValidationError,
    ServerError,
    StreamNotFoundError,
    ThrottledError,
)

__all__ = ["entry_error", "error_class_for", "error_from_http", "normalize_code"]

ERROR_CLASS_BY_CODE: Final[dict[str, type[FirehoseError]]] = {
    "ResourceNotFoundException": StreamNotFoundError,
    "AccessDeniedException": AccessDeniedError,
    "AccessDenied": AccessDeniedError,
    "UnrecognizedClientException": CredentialsError,
    "InvalidSignatureException": CredentialsError,
    "SignatureDoesNotMatch": CredentialsError,
    "IncompleteSignature": CredentialsError,
    "MissingAuthenticationToken": CredentialsError,
    "InvalidClientTokenId": CredentialsError,
    "ExpiredTokenException": CredentialsError,
    "ExpiredToken": CredentialsError,
    "NoCredentials": CredentialsError,
    "InvalidArgumentException": InvalidArgumentError,
    "InvalidKMSResourceException": InvalidArgumentError,
    "InvalidSourceException": InvalidArgumentError,
    "ValidationException": RequestValidationError,
    "SerializationException": RequestValidationError,
    "ServiceUnavailableException": ThrottledError,
    "ThrottlingException": ThrottledError,
    "LimitExceededException": ThrottledError,
    "TooManyRequestsException": ThrottledError,
    "InternalFailure": ServerError,
    "InternalFailureException": ServerError,
    "InternalServerError": ServerError,
    "ServiceFailure": ServerError,
}

_HINTS: Final[dict[type[FirehoseError], str]] = {
    StreamNotFoundError: "check the stream name, the region and the account",
    AccessDeniedError: "the credentials lack firehose:PutRecordBatch/DescribeDeliveryStream",
    CredentialsError: "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile or the role",
}

_AMBIGUOUS_STATUSES: Final = frozenset({500, 502, 504})


def normalize_code(raw: str) -> str:
    """``aws.protocol#Code`` or ``Code:http://...`` -> ``Code`` (botocore accepts both)."""
    return raw.rsplit("#", 1)[-1].split(":", 1)[0].strip()


def error_class_for(code: str, status: int | None) -> type[FirehoseError]:
    """The error class for an error code, falling back on the HTTP status."""
    known = ERROR_CLASS_BY_CODE.get(code)
    if known is not None:
        return known
    if status == 403:
        return AccessDeniedError
    if status == 429 or status == 503:
        return ThrottledError
    if status is not None and status >= 500:
        return ServerError
    return ClientRequestError


def error_from_http(
    status: int, code: str | None, message: str, request_id: str | None
) -> FirehoseError:
    """The typed error for a non-200 answer. `code` may carry a namespace (normalised here);
    it is None when the answer carried none."""
    code = normalize_code(code or "") or f"HTTP{status}"
    cls = error_class_for(code, status)
    hint = _HINTS.get(cls)
    if hint:
        message = f"{message} ({hint})" if message else hint
    return cls(
        code,
        message,
        status=status,
        request_id=request_id,
        ambiguous=status in _AMBIGUOUS_STATUSES,
    )


def entry_error(code: str, message: str) -> FirehoseError:
    """The typed error for one failed entry of a 200 answer (nothing stored for it).

    Unknown entry codes are treated as server-side failures (retried, bounded by attempts).
    """
    cls = ERROR_CLASS_BY_CODE.get(code, ServerError)
    return cls(code, message)
