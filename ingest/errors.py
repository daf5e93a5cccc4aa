"""One exception hierarchy for the whole package.

```
IngestError                          root: `except IngestError` catches everything ingest raises
├── ConfigError (+ValueError)        bad configuration or option value (service: exit code 2)
├── ProducerError                    the producer refused or could not do what was asked
│   ├── ProducerClosedError          put after close() began
│   ├── ProducerCrashedError         a background task died; __cause__ holds why
│   ├── QueueFullError               put_nowait with the bound reached
│   ├── PutTimeoutError (+TimeoutError)  put(timeout=...) waited too long for space
│   ├── RecordTooLargeError (+ValueError) record over 1,024,000 bytes or the queue byte bound
│   └── RecordFailedError            awaited receipt of a record whose fate is "failed"
├── SpoolError                       the dead-letter spool or the --durable log
│   ├── SpoolFullError               byte bound or disk full past the backpressure deadline
│   ├── SpoolLockedError             another process holds the log's lock
│   └── SpoolIOError                 a write or fsync failed and could not be repaired
└── FirehoseError(code, message)     an answer (or non-answer) of the Firehose endpoint
    ├── StreamNotFoundError          ResourceNotFoundException                      fatal
    ├── AccessDeniedError            AccessDeniedException, HTTP 403                fatal
    ├── CredentialsError             missing, invalid or expired credentials        fatal
    ├── InvalidArgumentError         InvalidArgumentException, KMS, source errors
    ├── RequestValidationError       ValidationException (a producer bug)
    ├── ClientRequestError           any other 4xx
    ├── ThrottledError               ServiceUnavailableException, 429          retriable
    ├── ServerError                  HTTP 5xx, InternalFailure                 retriable
    ├── FirehoseConnectionError      refused / reset connection                retriable
    ├── TlsError                     certificate not trusted, TLS handshake failed  fatal
    └── RequestTimeoutError          no complete answer in time                retriable
```

Classification is data: every `FirehoseError` class carries `reason` (a stable slug used as
the failure reason in counters), `retriable` (resending can help) and `fatal` (the target
itself is unusable, so every later request would fail the same way). An instance carries
`ambiguous`: the write may have been stored although the call did not succeed, so a resend
can duplicate records.
"""

from __future__ import annotations

from typing import ClassVar, Self


class IngestError(Exception):
    """Root of every exception raised by `ingest`."""


class ConfigError(IngestError, ValueError):
    """A configuration value is invalid; the message names the field, the value and what is
    expected."""


class ProducerError(IngestError):
    """The producer refused an operation or could not carry it out."""


class ProducerClosedError(ProducerError):
    """The producer is closing or closed and accepts no more records."""


class ProducerCrashedError(ProducerError):
    """A background task of the producer died; pending records were failed. See __cause__."""


class QueueFullError(ProducerError):
    """`put_nowait` found the queue bound (records or bytes) reached."""


class PutTimeoutError(ProducerError, TimeoutError):
    """`put(timeout=...)` waited longer than `timeout` seconds for queue space.

    `accepted` counts the records taken before the timeout (``put_many``: the first ones).
    """

    def __init__(self, message: str, accepted: int = 0) -> None:
        super().__init__(message)
        self.accepted = accepted


class RecordTooLargeError(ProducerError, ValueError):
    """A record can never be sent: over the Firehose per-record limit or the queue byte bound."""


class RecordFailedError(ProducerError):
    """Raised by awaiting the receipt of a record that failed; `.reason` is its failure reason."""

    def __init__(self, reason: str, message: str, attempts: int) -> None:
        super().__init__(f"record failed ({reason}) after {attempts} attempt(s): {message}")
        self.reason = reason
        self.attempts = attempts


class FirehoseError(IngestError):
    """An error answer (or no answer) from Firehose.

    `code` is the AWS error code (e.g. ``ResourceNotFoundException``) or a local code for
    transport failures; `status` the HTTP status if there was one.
    """

    reason: ClassVar[str] = "firehose_error"
    retriable: ClassVar[bool] = False
    fatal: ClassVar[bool] = False

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.ambiguous = ambiguous

    def with_context(self, context: str) -> Self:
        """A copy of this error whose message ends with `context` (e.g. the stream)."""
        return type(self)(
            self.code,
            f"{self.message} [{context}]" if self.message else f"[{context}]",
            status=self.status,
            request_id=self.request_id,
            ambiguous=self.ambiguous,
        )


class StreamNotFoundError(FirehoseError):
    """The delivery stream does not exist (in this account and region)."""

    reason = "stream_not_found"
    fatal = True


class AccessDeniedError(FirehoseError):
    """The credentials are valid but not allowed to write to (or describe) the stream."""

    reason = "access_denied"
    fatal = True


class CredentialsError(FirehoseError):
    """No credentials were found, or Firehose rejected them (invalid, expired, bad signature)."""

    reason = "credentials"
    fatal = True


class InvalidArgumentError(FirehoseError):
    """Firehose refused the request's arguments (e.g. a stream that is not DirectPut)."""

    reason = "invalid_argument"


class RequestValidationError(FirehoseError):
    """Firehose found a count or size constraint broken: a producer bug, never retried."""

    reason = "validation"


class ClientRequestError(FirehoseError):
    """Any other 4xx answer: the request itself is wrong, resending cannot help."""

    reason = "client_error"


class ThrottledError(FirehoseError):
    """Throttled (``ServiceUnavailableException``, "Slow down."): nothing stored, back off."""

    reason = "throttled"
    retriable = True


class ServerError(FirehoseError):
    """A 5xx answer. 500/502/504 are ambiguous: the records may have been stored."""

    reason = "server_error"
    retriable = True


class FirehoseConnectionError(FirehoseError):
    """The connection failed. Ambiguous once the request may have reached the server."""

    reason = "connection_error"
    retriable = True


class RequestTimeoutError(FirehoseError):
    """No complete answer within the request timeout; the records may have been stored."""

    reason = "timeout"
    retriable = True


class TlsError(FirehoseError):
    """The endpoint's certificate is not trusted (CA bundle, host name) or the TLS handshake
    failed. Nothing was sent; every request fails the same way until the trust settings
    (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``, ``verify``) or the endpoint change."""

    reason = "tls"
    fatal = True


class SpoolError(IngestError):
    """A segment log (the dead-letter spool or the `--durable` log) cannot do what was asked."""


class SpoolFullError(SpoolError):
    """The spool or durable log is at its byte bound or its disk is full, and stayed so past
    the backpressure deadline: the records were NOT stored there (never a silent drop)."""


class SpoolLockedError(SpoolError):
    """Another process (a running `ingest run` or `ingest replay`) holds the log's lock."""


class SpoolIOError(SpoolError):
    """Writing or syncing the log failed and could not be repaired (e.g. fsync failed twice)."""
