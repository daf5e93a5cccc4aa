"""The reconciler: NDJSON lines in, per run id tallies out; the hot loop of `ingest verify`.

Lines are fed a chunk of complete lines at a time. A chunk in the generator's exact layout
(``{"id":"<36>","ts":"<24>","seq":<digits>,"producer":...}``) is checked and parsed with a few
C-level passes over the whole chunk (bytes counts, slices, ``map``), with no per-line Python
bytecode (one producer's consecutive seqs are compared, joined, with their expected decimal
text: no int per line); any chunk that fails a check is parsed line by line with orjson. A line is
well-formed when it is a JSON object with an integer ``seq`` >= 0 and a string ``producer``;
``ts`` (RFC 3339) is needed only for the latency.
"""

from __future__ import annotations

import calendar
import operator
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from itertools import compress, groupby, pairwise, repeat
from operator import itemgetter

import orjson

from ingest.verify.tally import RunTally

#: Longest line kept whole: Firehose's record limit. A longer line is malformed and skipped
#: while streaming, so memory stays bounded even for an object without any newline.
MAX_LINE_BYTES = 1_024_000

# The generator's layout, by byte offset within a line.
_HEAD = b'{"id":"'
_NL_HEAD = b"\n" + _HEAD
_TS_AT = 51  # after {"id":"<36 chars>","ts":"
_SEQ_AT = 83  # after the 24-character ts and ","seq":
_TS_TOKEN = slice(_TS_AT, _SEQ_AT)  # the ts, then ","seq":
_SEQ_KEY_TAIL = b'","seq":'
_FIXED_QUOTES = 10  # quotes up to the seq digits
_DIGITS = re.compile(rb"\d+")
_LEADING_ZERO = re.compile(rb"(?:^|\n)0[^\n]")
_MAX_JSON_INT = 2**64 - 1  # orjson reads a larger integer as a float
_TS_RE = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z")
_PRODUCER_RE = re.compile(rb'"producer":"((?:[^"\\\n]|\\.)*)"')
_CACHE_LIMIT = 65_536
# Decimal text of a hundred consecutive numbers: "<hundreds>00\n<hundreds>01\n..." is
# b"<hundreds>".join(_HUNDRED); 0..99 have no leading zeros, so they are written out.
_HUNDRED = [b"", *(b"%02d\n" % units for units in range(100))]
_FIRST_HUNDRED = b"".join(b"%d\n" % number for number in range(100))
_FIRST_HUNDRED_AT = [len(b"".join(b"%d\n" % n for n in range(number))) for number in range(100)]


class Reconciler:
    """Counts what arrived, by run id and seq.

    `expected` is an int (applies to every run id found, or only to `run_id`), a mapping run id
    -> count (only those run ids are reconciled; each starts with nothing delivered) or None
    (every run id found, or only `run_id`, with seqs 0..highest seen expected).
    """

    def __init__(
        self, expected: int | Mapping[str, int] | None = None, run_id: str | None = None
    ) -> None:
        self._default: int | None = None
        self._only: frozenset[str] | None = None
        self.tallies: dict[str, RunTally] = {}
        if isinstance(expected, Mapping):
            wanted = {rid: n for rid, n in expected.items() if run_id is None or rid == run_id}
            self.tallies = {rid: RunTally(rid, n) for rid, n in wanted.items()}
            self._only = frozenset(wanted)
        else:
            self._default = expected
            if run_id is not None:
                self._only = frozenset((run_id,))
                self.tallies[run_id] = RunTally(run_id, expected)
        # Events of run ids outside the reconciliation: counted, no seq kept (expected 0).
        self._ignored = RunTally("", 0)
        self.lines = 0
        self.malformed_unattributed = 0
        self.no_newline_unattributed = 0
        self._tails: dict[bytes, RunTally | None] = {}  # line tail after the seq; None: odd
        self._clock: dict[bytes, int | None] = {}  # ts token -> epoch ms; None: not a ts

    @property
    def ignored_events(self) -> int:
        """Well-formed events of run ids left out by `run_id` or the report."""
        return self._ignored.events

    def tally(self, run_id: str) -> RunTally:
        """The tally of `run_id`, created on first sight (the shared ignored one if left out)."""
        found = self.tallies.get(run_id)
        if found is not None:
            return found
        if self._only is not None:
            return self._ignored
        found = self.tallies[run_id] = RunTally(run_id, self._default)
        return found

    # -- feeding ---------------------------------------------------------------------------

    def feed_lines(self, chunk: bytes, object_ms: int) -> None:
        """Complete lines (`chunk` ends with a newline) of an object timed `object_ms`."""
        if not chunk:
            return
        if not self._fast(chunk, object_ms):
            for line in chunk.split(b"\n")[:-1]:
                self.line(line, object_ms, newline=True)

    def line(self, line: bytes, object_ms: int, *, newline: bool) -> None:
        """One line (without its newline) parsed on its own: the slow path, and the last line
        of an object that ends without a newline (`newline` False)."""
        self.lines += 1
        tally = None
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            seq = event.get("seq")
            producer = event.get("producer")
            if isinstance(producer, str) and type(seq) is int and seq >= 0:
                tally = self.tally(producer)
                tally.add_range(seq, 1)
                ts = event.get("ts")
                if isinstance(ts, str):
                    ts_ms = parse_ts(ts)
                    if ts_ms is not None:
                        tally.latency.add(object_ms - ts_ms)
                if not newline:
                    tally.no_newline += 1
                return
        # Malformed: charge it to its run id when one can still be read from it.
        found = _PRODUCER_RE.search(line)
        if found is not None:
            try:
                tally = self.tally(orjson.loads(b'"' + found.group(1) + b'"'))
            except orjson.JSONDecodeError:
                tally = None
        if tally is None:
            self.malformed_unattributed += 1
            self.no_newline_unattributed += not newline
        else:
            tally.malformed += 1
            tally.no_newline += not newline

    def overlong_line(self, *, newline: bool) -> None:
        """A line longer than MAX_LINE_BYTES, skipped unread: malformed, run id unknown."""
        self.lines += 1
        self.malformed_unattributed += 1
        self.no_newline_unattributed += not newline

    # -- the fast path -----------------------------------------------------------------------

    def _fast(self, chunk: bytes, object_ms: int) -> bool:
        """Parse a chunk in the generator's layout with C-level passes; False (nothing counted)
        when any line departs from it, so the caller parses line by line instead."""
        lines = chunk.split(b"\n")
        lines.pop()  # the empty piece after the final newline
        n = len(lines)
        # Every line starts with {"id":"; its seq's digits start at 83 (checked below with
        # the ts before them).
        if not chunk.startswith(_HEAD):
            return False
        head = _DIGITS.match(lines[0], _SEQ_AT)
        if head is None:
            return False
        tail = lines[0][head.end() :]  # ,"producer":"..."}  (plus "pad" when sized)
        single = self._tail_tally(tail)
        tallies: list[RunTally] | None = None
        ending = tail + b"\n"
        if single is not None and chunk.endswith(ending) and chunk.count(ending + _HEAD) == n - 1:
            # One producer and one tail (each of the n-1 newlines inside the chunk sits between
            # the tail and the next line's head): the digits sit between two fixed offsets.
            digits = list(map(itemgetter(slice(_SEQ_AT, -len(tail))), lines))
            quotes = n * (_FIXED_QUOTES + tail.count(b'"'))
        elif chunk.count(_NL_HEAD) != n - 1:
            return False
        else:  # several producers, or padded events whose tails differ with the seq's width
            parts = list(map(bytes.partition, map(itemgetter(slice(_SEQ_AT, None)), lines),
                             repeat(b",")))  # fmt: skip
            digits = list(map(itemgetter(0), parts))
            tails = Counter(map(b",".__add__, map(itemgetter(2), parts)))
            quotes = n * _FIXED_QUOTES
            owners: dict[bytes, RunTally] = {}
            for each, times in tails.items():
                owner = self._tail_tally(each)
                if owner is None:
                    return False
                owners[each] = owner
                quotes += times * each.count(b'"')
            tallies = list(map(owners.__getitem__, map(b",".__add__, map(itemgetter(2), parts))))
            single = None
        # No quote anywhere but in the keys and the tails: the id is a plain string.
        if chunk.count(b'"') != quotes:
            return False
        # The common case, one producer's consecutive seqs, is checked against their expected
        # text in one comparison (no int per line); any other case parses each seq.
        first = _consecutive_from(digits) if single is not None else None
        seqs: list[int] = []
        if first is None:
            if not all(digits) or not b"".join(digits).isdigit():
                return False
            if _LEADING_ZERO.search(b"\n".join(digits)):  # not JSON: orjson decides
                return False
            try:
                seqs = list(map(int, digits))
            except ValueError:  # more digits than int() accepts
                return False
            if max(seqs) > _MAX_JSON_INT:  # a float to orjson: not a seq
                return False
        # Each line's [51:83] is a valid ts then ","seq": ; lines of one batch share their ts,
        # so only the places where it (or the run id) changes are looked at, in C (groupby).
        tokens = list(map(itemgetter(_TS_TOKEN), lines))
        if tallies is None:
            assert single is not None
            runs = [(token, single, len(list(same))) for token, same in groupby(tokens)]
        else:
            owned = groupby(zip(tokens, tallies, strict=True))
            runs = [(token, owner, len(list(same))) for (token, owner), same in owned]
        clock = self._clock
        stamps: list[int] = []
        for token, _, _ in runs:
            if token not in clock:
                if len(clock) > _CACHE_LIMIT:
                    clock.clear()
                clock[token] = _token_ms(token)
            ms = clock[token]
            if ms is None:
                return False
            stamps.append(ms)
        # Checked: now count.
        self.lines += n
        if first is not None:
            assert single is not None
            single.add_range(first, n)
        else:
            _add_runs(single, seqs, tallies)
        for (_, owner, count), ms in zip(runs, stamps, strict=True):
            owner.latency.add(object_ms - ms, count)
        return True

    def _tail_tally(self, tail: bytes) -> RunTally | None:
        """The run tally for a line tail ``,"producer":...}``; None unless the tail is a plain
        JSON continuation with a string producer (and no second id, ts or seq)."""
        if tail in self._tails:
            return self._tails[tail]
        found = None
        try:
            rest = orjson.loads(b"{" + tail[1:]) if tail[:1] == b"," else None
        except orjson.JSONDecodeError:
            rest = None
        if (
            isinstance(rest, dict)
            and isinstance(rest.get("producer"), str)
            and not ({"id", "ts", "seq"} & rest.keys())
        ):
            found = self.tally(rest["producer"])
        if len(self._tails) > _CACHE_LIMIT:
            self._tails.clear()
        self._tails[tail] = found
        return found


def _add_runs(single: RunTally | None, seqs: list[int], tallies: list[RunTally] | None) -> None:
    """Add seqs as runs of consecutive seqs of one run id (the common shape: Firehose keeps a
    batch's records in order), found with C-level maps; each run costs one `add_range`."""
    n = len(seqs)
    steps = list(map(operator.sub, seqs[1:], seqs[:-1]))
    if tallies is None and steps.count(1) == n - 1:
        assert single is not None
        single.add_range(seqs[0], n)
        return
    breaks = map((1).__ne__, steps)
    if tallies is not None:
        breaks = map(operator.or_, breaks, map(operator.is_not, tallies[1:], tallies[:-1]))
    cuts = [0, *compress(range(1, n), breaks), n]
    for start, end in pairwise(cuts):
        owner = single if tallies is None else tallies[start]
        assert owner is not None
        owner.add_range(seqs[start], end - start)


def _consecutive_from(digits: list[bytes]) -> int | None:
    """The first seq when `digits` are exactly consecutive seqs written in decimal (no sign,
    no leading zero, nothing else), else None."""
    try:
        first = int(digits[0])
    except ValueError:
        return None
    if first < 0 or first + len(digits) - 1 > _MAX_JSON_INT:
        return None
    text, start = _decimal_lines(first, len(digits))
    written = b"\n".join(digits)
    end = start + len(written)
    if not text.startswith(written, start) or text[end : end + 1] != b"\n":
        return None
    return first


def _decimal_lines(first: int, count: int) -> tuple[bytes, int]:
    """(text, start): text[start:] is ``<first>\n<first + 1>\n...``, `count` numbers at least.
    Built a hundred numbers per join from a template, with no str per number."""
    low, high = first // 100, (first + count - 1) // 100
    text = b"".join(
        (b"%d" % hundred).join(_HUNDRED) if hundred else _FIRST_HUNDRED
        for hundred in range(low, high + 1)
    )
    if low == 0:
        return text, _FIRST_HUNDRED_AT[first]
    return text, (first - low * 100) * (len(b"%d" % low) + 3)


def _token_ms(token: bytes) -> int | None:
    """Epoch ms of a ``<24-character ts>","seq":`` token; None if it is not one."""
    if token[24:] != _SEQ_KEY_TAIL:
        return None
    return _ts_ms(token[:24])


def _ts_ms(text: bytes) -> int | None:
    match = _TS_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, millis = map(int, match.groups())
    try:
        datetime(year, month, day, hour, minute, second)  # a range check only
    except ValueError:
        return None
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return seconds * 1000 + millis


def parse_ts(text: str) -> int | None:
    """Epoch ms of an RFC 3339 timestamp (any precision, any offset); None if unreadable."""
    fast = _ts_ms(text.encode())
    if fast is not None:
        return fast
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return round(when.timestamp() * 1000)


def feed_all(reconciler: Reconciler, chunks: Iterable[bytes], object_ms: int) -> None:
    """Feed a whole object given as decoded chunks (a convenience for tests)."""
    lines = LineSplitter(reconciler, object_ms)
    for chunk in chunks:
        lines.feed(chunk)
    lines.close()


class LineSplitter:
    """Cuts one object's decoded bytes into complete lines for the reconciler, carrying a
    partial line between chunks (bounded by MAX_LINE_BYTES)."""

    __slots__ = ("_carry", "_object_ms", "_reconciler", "_skipping")

    def __init__(self, reconciler: Reconciler, object_ms: int) -> None:
        self._reconciler = reconciler
        self._object_ms = object_ms
        self._carry = b""
        self._skipping = False  # inside an overlong line: drop bytes up to its newline

    def feed(self, data: bytes) -> None:
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._skipping = False
            self._reconciler.overlong_line(newline=True)
            data = data[newline + 1 :]
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self._carry += data
        else:
            head = data if cut == len(data) else data[:cut]  # no copy when it ends a line
            if self._carry:
                head = self._carry + head
            self._carry = data[cut:]
            self._reconciler.feed_lines(head, self._object_ms)
        if len(self._carry) > MAX_LINE_BYTES:  # counted once its end is known
            self._carry = b""
            self._skipping = True

    def close(self) -> None:
        """The object ended: a last line without a newline is counted as such."""
        if self._skipping:
            self._skipping = False
            self._reconciler.overlong_line(newline=False)
        elif self._carry:
            self._reconciler.line(self._carry, self._object_ms, newline=False)
        self._carry = b""
