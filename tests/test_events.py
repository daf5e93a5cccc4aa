"""The NDJSON event generator: format, uniqueness, sequence, exact padding, bad sizes."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import orjson
import pytest
from hypothesis import given, settings
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


# A run id that needs JSON escaping, '%' (the next_event template is %-formatted) and
# non-ASCII text; lone surrogates are no str JSON can carry.
RUN_IDS = st.one_of(
    st.sampled_from(["r", "", 'a"b\\c%d%%s', "tab\there\nnl\x00\x1f\x7f", "é\u2028ü☃𝄞"]),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
# Seqs just below a digit-count change (9 -> 10, 99999 -> 100000, ...) or small ones.
START_SEQS = st.one_of(
    st.integers(0, 30),
    st.builds(lambda k, back: max(0, 10**k - back), st.integers(1, 18), st.integers(0, 30)),
)
CALLS = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.integers(0, 40)),
        st.tuples(st.just("next"), st.just(0)),
        # Callers may move the public `seq` (the service resumes a run that way).
        st.tuples(st.just("seq"), START_SEQS),
    ),
    min_size=1,
    max_size=12,
)


def _check_event(event: bytes, run_id: str, size: int | None, seq: int) -> dict[str, object]:
    """The event as the reference sees it: stdlib json, uuid and datetime, field by field;
    then rebuilt from its fields, it must give back exactly the same bytes."""
    assert event.endswith(b"\n")
    assert event.count(b"\n") == 1
    body = json.loads(event)
    keys = ["id", "ts", "seq", "producer"] + (["pad"] if size is not None else [])
    assert list(body) == keys
    parsed = uuid.UUID(body["id"])
    assert str(parsed) == body["id"]  # lowercase, dashed
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122
    assert TS.fullmatch(body["ts"])
    assert body["seq"] == seq
    assert body["producer"] == run_id
    if size is not None:
        assert len(event) == size
        assert set(body["pad"]) <= {"x"}
    assert orjson.dumps(body) + b"\n" == event
    return dict(body)


@settings(deadline=None, max_examples=150)
@given(
    run_id=RUN_IDS,
    extra=st.one_of(st.none(), st.integers(0, 300)),
    start_seq=START_SEQS,
    calls=CALLS,
)
def test_events_match_a_reference_field_by_field_across_calls(
    run_id: str, extra: int | None, start_seq: int, calls: list[tuple[str, int]]
) -> None:
    size = None if extra is None else min_event_size(run_id) + extra
    generator = EventGenerator(run_id, size, start_seq=start_seq)
    expected_seq = start_seq
    ids: list[object] = []
    for call, arg in calls:
        if call == "seq":
            generator.seq = expected_seq = arg
            continue
        before = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
        events = generator.batch(arg) if call == "batch" else [generator.next_event()]
        after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        bodies = [_check_event(e, run_id, size, expected_seq + i) for i, e in enumerate(events)]
        expected_seq += len(events)
        assert generator.seq == expected_seq
        assert len({body["ts"] for body in bodies}) <= 1  # a batch shares one timestamp
        for body in bodies[:1]:
            ts = dt.datetime.strptime(str(body["ts"]), "%Y-%m-%dT%H:%M:%S.%fZ")
            assert before <= ts.replace(tzinfo=dt.UTC) <= after
        ids += [body["id"] for body in bodies]
    assert len(set(ids)) == len(ids)


def test_a_large_batch_across_two_digit_count_changes_keeps_size_and_order() -> None:
    size = min_event_size("big") + 7
    generator = EventGenerator("big", size, start_seq=10**4 - 5_000)
    events = generator.batch(100_000)  # seqs 5,000 .. 104,999: 4, 5 then 6 digits
    assert {len(event) for event in events} == {size}
    seqs = [orjson.loads(event)["seq"] for event in events]
    assert seqs == list(range(10**4 - 5_000, 10**4 + 95_000))
    assert generator.seq == 10**4 + 95_000


def test_every_random_hex_digit_of_the_ids_varies() -> None:
    generator = EventGenerator("r")
    ids = [orjson.loads(e)["id"] for e in generator.batch(2_000)]
    ids += [orjson.loads(generator.next_event())["id"] for _ in range(2_000)]
    for events in (ids[:2_000], ids[2_000:]):
        digits = [text.replace("-", "") for text in events]
        for position in range(32):
            seen = {text[position] for text in digits}
            if position == 12:
                assert seen == {"4"}  # version
            elif position == 16:
                assert seen == set("89ab")  # RFC 4122 variant, 2 random bits
            else:
                assert seen == set("0123456789abcdef"), position


def test_ids_are_unique_across_many_batches_and_single_events() -> None:
    generator = EventGenerator("r")
    events = [event for _ in range(40) for event in generator.batch(1_000)]
    events += [generator.next_event() for _ in range(3_000)]
    ids = {orjson.loads(event)["id"] for event in events}
    assert len(ids) == len(events)
