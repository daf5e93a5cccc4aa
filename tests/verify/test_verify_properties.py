"""The reconciler against a model: any multiset of seqs, in any order, cut into any chunks."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.events import EventGenerator
from ingest.verify.reconcile import LineSplitter, Reconciler
from ingest.verify.tally import RunTally
from ingest.verify.verify import _run_result

EVENTS = {
    "plain": EventGenerator(run_id="plain").batch(400),
    "padded": EventGenerator(run_id="padded", event_size=300).batch(400),
}


def model_ranges(counts: list[int], expected: int) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for seq in range(expected):
        if seq >= len(counts) or counts[seq] == 0:
            if ranges and ranges[-1][1] == seq - 1:
                ranges[-1] = (ranges[-1][0], seq)
            else:
                ranges.append((seq, seq))
    return ranges


run_shape = st.tuples(
    st.lists(st.integers(0, 3), min_size=1, max_size=400),  # copies of each seq
    st.integers(0, 5),  # seqs beyond the expected count
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shapes=st.fixed_dictionaries({"plain": run_shape, "padded": run_shape}),
    seed=st.integers(0, 2**32 - 1),
    shuffle=st.sampled_from(["none", "batches", "all"]),
    chunk=st.integers(1, 5000),
)
def test_missing_and_duplicates_match_the_model(
    shapes: dict[str, tuple[list[int], int]], seed: int, shuffle: str, chunk: int
) -> None:
    rng = random.Random(seed)
    expected = {run: max(len(counts) - beyond, 0) for run, (counts, beyond) in shapes.items()}
    lines = [
        (run, seq)
        for run, (counts, _) in shapes.items()
        for seq, copies in enumerate(counts)
        for _ in range(copies)
    ]
    if shuffle == "all":
        rng.shuffle(lines)
    elif shuffle == "batches":  # runs of consecutive lines stay together, as in a batch
        cuts = sorted(rng.sample(range(len(lines) + 1), min(len(lines) + 1, 6)))
        pieces = [lines[a:b] for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
        rng.shuffle(pieces)
        lines = [line for piece in pieces for line in piece]
    data = b"".join(EVENTS[run][seq] for run, seq in lines)

    reconciler = Reconciler(expected)
    splitter = LineSplitter(reconciler, object_ms=0)
    for start in range(0, len(data), chunk):
        splitter.feed(data[start : start + chunk])
    splitter.close()

    assert reconciler.lines == len(lines)
    assert reconciler.malformed_unattributed == 0
    for run, (counts, _) in shapes.items():
        want = expected[run]
        result = _run_result(reconciler.tallies[run], max_ranges=1000)
        inside = counts[:want]
        assert result.delivered_unique == sum(1 for c in inside if c)
        assert result.missing == want - result.delivered_unique
        assert result.missing_ranges == model_ranges(counts, want)
        assert result.missing_range_count == len(model_ranges(counts, want))
        assert result.duplicated_events == sum(c - 1 for c in inside if c > 1)
        assert result.duplicated_seqs == sum(1 for c in inside if c > 1)
        assert result.worst_multiplicity == max(inside, default=0)
        assert result.beyond_expected == sum(counts[want:])


@given(
    count=st.integers(0, 1000),
    first=st.integers(0, 10**6),
    size=st.integers(1, 2000),
    limit=st.integers(1, 10**6 + 5000),
)
def test_a_range_counts_like_seq_by_seq(count: int, first: int, size: int, limit: int) -> None:
    """add_range over a repeated range equals adding its seqs one by one, saturation aside."""
    whole = RunTally("r", limit)
    single = RunTally("r", limit)
    for _ in range(min(count, 3)):
        whole.add_range(first, size)
        for seq in range(first, first + size):
            single.add_range(seq, 1)
    assert (whole.unique, whole.duplicates, whole.beyond, whole.events) == (
        single.unique, single.duplicates, single.beyond, single.events,
    )  # fmt: skip
    assert whole.missing_ranges(5) == single.missing_ranges(5)


SEQ_EDITS = {
    "none": lambda seq: b"%d" % seq,
    "leading zero": lambda seq: b"0%d" % seq,
    "plus sign": lambda seq: b"+%d" % seq,
    "minus sign": lambda seq: b"-%d" % seq,
    "space": lambda seq: b" %d" % seq,
    "underscore": lambda seq: b"1_%d" % seq,
    "next seq": lambda seq: b"%d" % (seq + 1),  # a duplicate and a gap
    "same seq twice": lambda seq: b"%d" % seq * 2,
    "empty": lambda seq: b"",
}


@settings(max_examples=200, deadline=None)
@given(
    first=st.sampled_from([0, 1, 95, 990, 9_950, 99_999, 2**64 - 9]) | st.integers(0, 10**12),
    size=st.integers(1, 250),
    edit=st.sampled_from(sorted(SEQ_EDITS)),
    at=st.integers(0, 249),
    padded=st.booleans(),
)
def test_the_fast_path_counts_like_line_by_line(
    first: int, size: int, edit: str, at: int, padded: bool
) -> None:
    """Consecutive seqs across digit-count boundaries (checked as one text on the fast path),
    with one line's seq edited: the same tallies as parsing every line on its own."""
    generator = EventGenerator(run_id="r", event_size=200 if padded else None, start_seq=first)
    lines = generator.batch(size)
    at %= size
    seq = first + at
    lines[at] = lines[at].replace(b'"seq":%d,' % seq, b'"seq":%b,' % SEQ_EDITS[edit](seq))
    fast, slow = Reconciler(), Reconciler()
    fast.feed_lines(b"".join(lines), 1_000)
    for line in lines:
        slow.line(line.rstrip(b"\n"), 1_000, newline=True)
    assert (fast.lines, fast.malformed_unattributed) == (slow.lines, slow.malformed_unattributed)
    assert fast.tallies.keys() == slow.tallies.keys() == {"r"}
    tallied = [
        (t.unique, t.duplicates, t.events, t.beyond, t.malformed, t.missing_ranges(3),
         t.latency.summary())
        for t in (fast.tallies["r"], slow.tallies["r"])
    ]  # fmt: skip
    assert tallied[0] == tallied[1]
