"""Generation pacing: events come in chunks at the configured rate, never one sleep per event."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.service.pacing import MAX_SLEEP_S, MIN_SLEEP_S, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_grants_what_accrued_in_chunks() -> None:
    clock = Clock()
    pacer = Pacer(1000, max_chunk=300, clock=clock)
    assert pacer.take() == 0
    clock.now = 0.5
    assert [pacer.take(), pacer.take(), pacer.take()] == [300, 200, 0]


def test_limit_caps_the_grant() -> None:
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    clock.now = 1.0
    assert pacer.take(limit=7) == 7


def test_unpaced_grants_a_full_chunk_without_waiting() -> None:
    pacer = Pacer(0, max_chunk=123)
    assert pacer.take() == 123
    assert pacer.take(limit=5) == 5
    assert pacer.wait_s() == 0.0


def test_sleeps_are_bounded_whatever_the_rate() -> None:
    for rate in (0.5, 10, 1e6):
        wait = Pacer(rate, clock=Clock()).wait_s()
        assert MIN_SLEEP_S <= wait <= MAX_SLEEP_S


def test_burst_after_a_stall_is_at_most_one_second_of_events() -> None:
    clock = Clock()
    pacer = Pacer(100, max_chunk=10_000, clock=clock)
    clock.now = 60.0
    assert pacer.take() == 100


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        Pacer(-1)


@given(
    rate=st.floats(min_value=0.1, max_value=1e6),
    steps=st.lists(st.floats(min_value=0.0, max_value=0.5), min_size=1, max_size=50),
)
def test_never_grants_more_than_the_rate_allows(rate: float, steps: list[float]) -> None:
    clock = Clock()
    pacer = Pacer(rate, clock=clock)
    granted = 0
    for step in steps:
        clock.now += step
        granted += pacer.take()
        assert granted <= rate * clock.now + 1e-6
