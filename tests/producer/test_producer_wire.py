"""PutRecordBatch wire format and error classification (pure functions, no I/O)."""

from __future__ import annotations

import base64

import orjson
import pytest

from ingest.errors import (
    AccessDeniedError,
    ClientRequestError,
    CredentialsError,
    InvalidArgumentError,
    RequestValidationError,
    ServerError,
    StreamNotFoundError,
    ThrottledError,
)
from ingest.firehose.classify import entry_error, error_from_http
from ingest.firehose.wire import encode_put_record_batch, parse_error, parse_put_record_batch


def test_body_is_the_documented_json_with_base64_records() -> None:
    records = [b"a\n", b"", b"\x00\xff" * 100, '{"é": 1}\n'.encode()]
    body = orjson.loads(encode_put_record_batch(orjson.dumps("s-1"), records))
    assert body["DeliveryStreamName"] == "s-1"
    assert [base64.b64decode(entry["Data"]) for entry in body["Records"]] == records


@pytest.mark.parametrize("count", [1, 15, 16, 17, 500])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 149, 150, 151, 1023, 1024, 1025])
def test_body_is_byte_identical_for_batches_of_one_record_size(size: int, count: int) -> None:
    # Records of one size take the one-base64-call path: every padding case (size % 3), under
    # and over its thresholds, gives exactly the JSON a plain encoder writes, and all bytes.
    records = [bytes((i * 7 + j * 13) % 256 for j in range(size)) for i in range(count)]
    records[-1] = b"\xff" * size  # a last record whose padding bits would differ if set
    expected = orjson.dumps(
        {
            "DeliveryStreamName": "s-1",
            "Records": [{"Data": base64.b64encode(record).decode()} for record in records],
        }
    )
    assert encode_put_record_batch(orjson.dumps("s-1"), records) == expected


def test_a_batch_of_mixed_sizes_is_encoded_record_by_record() -> None:
    records = [b"x" * 150] * 20 + [b"y" * 151] + [b"z" * 150] * 20  # same first and last size
    body = orjson.loads(encode_put_record_batch(orjson.dumps("s-1"), records))
    assert [base64.b64decode(entry["Data"]) for entry in body["Records"]] == records


@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_failed_put_count_is_read_wherever_the_answer_puts_it(where: str) -> None:
    # Long answers (AWS RecordIds are ~220 characters): the count may come before or after
    # the entries, or (any JSON layout) with whitespace and keys anywhere else.
    entries = [{"RecordId": "r" * 220}] * 40 + [{"ErrorCode": "ServiceUnavailableException"}]
    responses = orjson.dumps(entries).decode()
    count = '"FailedPutCount" : 1'
    answer = {
        "first": f'{{{count},"Encrypted":false,"RequestResponses":{responses}}}',
        "last": f'{{"Encrypted":false,"RequestResponses":{responses},{count}}}',
        "middle": f'{{"RequestResponses":{responses},{count},"Padding":"{" " * 300}"}}',
    }[where].encode()
    result = parse_put_record_batch(answer, 41, "req-1")
    assert result.failed_put_count == 1
    assert [f.index for f in result.failures()] == [40]
    assert result.record_id(0) == "r" * 220


def test_all_delivered_answer_gives_record_ids_by_index() -> None:
    answer = (
        b'{"FailedPutCount":0,"Encrypted":false,'
        b'"RequestResponses":[{"RecordId":"a"},{"RecordId":"b"}]}'
    )
    result = parse_put_record_batch(answer, 2, "req-1")
    assert result.failures() == []
    assert [result.record_id(0), result.record_id(1)] == ["a", "b"]
    assert result.request_id == "req-1"


def test_partial_failure_lists_failed_indices_with_typed_errors() -> None:
    answer = orjson.dumps(
        {
            "FailedPutCount": 2,
            "RequestResponses": [
                {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."},
                {"RecordId": "b"},
                {"ErrorCode": "InternalFailure", "ErrorMessage": "oops"},
            ],
        }
    )
    failures = parse_put_record_batch(answer, 3, None).failures()
    assert [f.index for f in failures] == [0, 2]
    assert isinstance(failures[0].error, ThrottledError)
    assert isinstance(failures[1].error, ServerError)
    assert all(f.error.retriable for f in failures)


def test_an_entry_without_record_id_is_failed_even_when_failed_put_count_says_0() -> None:
    answer = b'{"FailedPutCount":0,"RequestResponses":[{"RecordId":"a"},{}]}'
    result = parse_put_record_batch(answer, 2, None)
    assert [f.index for f in result.failures()] == [1]
    assert result.failures()[0].error.code == "MissingRecordId"
    assert result.failures()[0].error.retriable


@pytest.mark.parametrize(
    "answer",
    [b"not json", b"{}", b'{"RequestResponses":[{"RecordId":"a"}]}', b'{"FailedPutCount":1,'
     b'"RequestResponses":[{"RecordId":"a"},{"RecordId":"b"}]}', b"[1, 2]",
     b'{"FailedPutCount":1,"RequestResponses":[1,{"RecordId":"b"}]}'],
)  # fmt: skip
def test_malformed_answer_is_an_ambiguous_retriable_server_error(answer: bytes) -> None:
    with pytest.raises(ServerError) as caught:
        parse_put_record_batch(answer, 2, None)
    assert caught.value.ambiguous
    assert caught.value.retriable


@pytest.mark.parametrize(
    ("status", "body", "cls", "retriable", "ambiguous"),
    [
        (400, b'{"__type":"ResourceNotFoundException","message":"no"}', StreamNotFoundError,
         False, False),
        (400, b'{"__type":"com.amazonaws.firehose.v20150804#InvalidArgumentException",'
              b'"message":"Records size exceeds 4 MB limit"}', InvalidArgumentError, False, False),
        (400, b'{"__type":"ValidationException","message":"x"}', RequestValidationError,
         False, False),
        (400, b'{"__type":"AccessDeniedException","Message":"x"}', AccessDeniedError,
         False, False),
        (403, b"", AccessDeniedError, False, False),
        (400, b'{"__type":"UnrecognizedClientException"}', CredentialsError, False, False),
        (400, b'{"__type":"SomethingNew"}', ClientRequestError, False, False),
        (503, b'{"__type":"ServiceUnavailableException","message":"Slow down."}',
         ThrottledError, True, False),
        (500, b"", ServerError, True, True),
        (502, b"<html>bad gateway</html>", ServerError, True, True),
        (504, b"", ServerError, True, True),
    ],
)  # fmt: skip
def test_error_answers_are_classified_as_data(
    status: int, body: bytes, cls: type, retriable: bool, ambiguous: bool
) -> None:
    error = parse_error(status, body, "rid", None)
    assert type(error) is cls
    assert error.retriable is retriable
    assert error.ambiguous is ambiguous
    assert error.status == status
    assert error.request_id == "rid"


def test_fatal_errors_are_those_where_the_target_is_unusable() -> None:
    assert StreamNotFoundError.fatal
    assert AccessDeniedError.fatal
    assert CredentialsError.fatal
    assert not InvalidArgumentError.fatal
    assert not ThrottledError.fatal


def test_error_type_header_is_used_when_the_body_has_no_code() -> None:
    error = parse_error(400, b"", None, "ResourceNotFoundException:http://internal.amazon.com/")
    assert isinstance(error, StreamNotFoundError)


def test_not_found_message_tells_the_user_what_to_check() -> None:
    error = error_from_http(400, "ResourceNotFoundException", "Firehose x not found", None)
    assert "stream name, the region and the account" in str(error)


def test_unknown_entry_error_code_is_retried_as_server_error() -> None:
    assert isinstance(entry_error("KMS.SomethingOdd", "x"), ServerError)
