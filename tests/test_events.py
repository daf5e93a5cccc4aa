"""The NDJSON event generator: format, uniqueness, sequence, exact padding, bad sizes."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.errors import ConfigError
from ingest.events import EventGenerator, min_event_size

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def test_event_has_the_documented_fields_and_is_newline_terminated() -> None:
    event = EventGenerator("run-1").next_event()
    assert event.endswith(b"\n")
    assert event.count(b"\n") == 1
    body = orjson.loads(event)
    assert list(body) == ["id", "ts", "seq", "producer"]
    assert body["seq"] == 0
    assert body["producer"] == "run-1"
    assert TS.fullmatch(body["ts"])


def test_ids_are_valid_random_uuid4s_and_unique() -> None:
    events = EventGenerator().batch(20_000)
    ids = [orjson.loads(event)["id"] for event in events]
    assert len(set(ids)) == len(ids)
    for text in ids[:2000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_seq_counts_up_across_next_event_and_batch() -> None:
    generator = EventGenerator("r", start_seq=7)
    seqs = [orjson.loads(generator.next_event())["seq"]]
    seqs += [orjson.loads(event)["seq"] for event in generator.batch(5)]
    seqs.append(orjson.loads(generator.next_event())["seq"])
    assert seqs == list(range(7, 14))
    assert generator.seq == 14


def test_timestamp_is_current_utc_with_milliseconds() -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ts = orjson.loads(EventGenerator().next_event())["ts"]
    parsed = dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert before <= parsed <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_run_id_with_quotes_still_gives_valid_json() -> None:
    run_id = 'a"b\\c%d'
    event = EventGenerator(run_id, event_size=200).next_event()
    assert orjson.loads(event)["producer"] == run_id
    assert len(event) == 200


def test_no_pad_field_without_a_requested_size() -> None:
    assert b'"pad"' not in EventGenerator("r").next_event()


@given(extra=st.integers(min_value=0, max_value=5000), seq=st.integers(0, 10**18))
def test_padded_events_have_exactly_the_requested_size(extra: int, seq: int) -> None:
    size = min_event_size("run") + extra
    generator = EventGenerator("run", event_size=size, start_seq=seq)
    for event in [generator.next_event(), *generator.batch(3)]:
        assert len(event) == size
        assert orjson.loads(event)["pad"].strip("x") == ""


@pytest.mark.parametrize("size", [0, 10, -1])
def test_too_small_event_size_is_refused_with_the_minimum(size: int) -> None:
    with pytest.raises(ConfigError, match=r"event_size: .* expected at least \d+"):
        EventGenerator("run", event_size=size)


def test_non_int_event_size_is_refused() -> None:
    with pytest.raises(ConfigError, match="event_size: expected an int"):
        EventGenerator("run", event_size="150")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"run_id": 5}, "run_id: expected a str or None, got 5"),
        ({"start_seq": -1}, "start_seq: expected an int >= 0, got -1"),
        ({"start_seq": "0"}, "start_seq: expected an int >= 0, got '0'"),
    ],
)
def test_bad_generator_options_name_the_field_and_the_value(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        EventGenerator(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [-1, "3", 2.0])
def test_batch_refuses_a_count_that_is_not_a_non_negative_int(n: object) -> None:
    with pytest.raises(ValueError, match="n: expected an int >= 0"):
        EventGenerator("r").batch(n)  # type: ignore[arg-type]


def test_an_empty_batch_consumes_no_seq() -> None:
    generator = EventGenerator("r")
    assert generator.batch(0) == []
    assert generator.seq == 0
