"""A fast generator of NDJSON events, one ``bytes`` object per event, ``\\n``-terminated::

    {"id":"<uuid4>","ts":"<UTC RFC 3339, ms, Z>","seq":<int from 0>,"producer":"<run id>"}

plus ``"pad":"xxx..."`` only when an event size is requested (then every event is exactly
that many bytes, newline included).

Speed comes from doing no Python work per event. Within a run of seqs with the same number
of digits every event has the same length, so a run is made as one fixed-stride buffer: the
template (timestamp, producer, pad, the id's dashes and its version digit already in place)
repeated once per event, then each varying column (31 hex digits of the id, each digit of
seq) is written for the whole run with one strided slice assignment, in C. The random bytes
of every id in a run come from one ``os.urandom`` call, laid out column-wise so that each hex
digit column is one ``bytes.translate``; the seq digits are periodic, so they are cut from
small constant patterns. ``struct`` unpacks split the buffer into the events. The timestamp
text is formatted once per millisecond.
"""

from __future__ import annotations

import functools
import os
import struct
import time
import uuid

import orjson

from ingest.errors import ConfigError

__all__ = ["EventGenerator", "min_event_size"]

_UUID_BYTES = 16
_UUID_HEX = 2 * _UUID_BYTES
_MAX_SEQ_DIGITS = 19  # seq is an int64 in every consumer we care about
_RANDOM_CHUNK = 1024  # ids made at once for next_event()
_SAMPLE_TS = b"2000-01-01T00:00:00.000Z"

# The id as it sits in an event template: dashes and the version digit are constant, the other
# 31 hex digits are filled in. `_HEX_AT[j]` is where hex digit j of the 32 goes in the text.
_ID_TEMPLATE = b"00000000-0000-4000-8000-000000000000"
_HEX_AT = tuple(j + (j >= 8) + (j >= 12) + (j >= 16) + (j >= 20) for j in range(_UUID_HEX))
_VERSION_DIGIT = 12  # the "4" of a version 4 UUID, constant in the template
_VARIANT_DIGIT = 16  # must be 8, 9, a or b (RFC 4122 variant): its 2 low bits stay random
_HIGH_HEX = bytes(b"0123456789abcdef"[byte >> 4] for byte in range(256))
_LOW_HEX = bytes(b"0123456789abcdef"[byte & 15] for byte in range(256))
_VARIANT_HEX = bytes(b"89ab"[byte >> 4 & 3] for byte in range(256))
# (hex digit, table making it from its random byte) for the 31 digits that are filled in.
_DIGIT_TABLES = tuple(
    (j, _VARIANT_HEX if j == _VARIANT_DIGIT else _LOW_HEX if j % 2 else _HIGH_HEX)
    for j in range(_UUID_HEX)
    if j != _VERSION_DIGIT
)

_HEAD = b'{"id":"'
_ID_AT = len(_HEAD)  # where the id starts in an event

# Seq digits: the digit at place d (units = 0) of consecutive ints repeats with period
# 10**(d + 1), so places below `_TILED_PLACES` are cut from these patterns; higher places
# change only every 1000 events or more and are written as constant stretches.
_TILED_PLACES = 3
_DIGIT_TILES = tuple(
    b"".join(bytes([48 + digit]) * 10**place for digit in range(10))
    for place in range(_TILED_PLACES)
)
_DIGITS = tuple(bytes([48 + digit]) for digit in range(10))

# The buffer is split into events by `struct` unpacks of at most `_SPLIT_MAX` events, the
# rest in power-of-two counts, so the cached `Struct`s stay few per event length.
_SPLIT_MAX = 1024
# Events built per buffer at most: bounds the buffer (~300 KB for 150-byte events); bigger
# buffers measured no faster (they fall out of the CPU caches).
_RUN_MAX = 2048


def _producer_json(run_id: str) -> bytes:
    """`run_id` as a JSON string."""
    return orjson.dumps(run_id)


def _tail(producer_json: bytes, pad_len: int | None) -> bytes:
    """The end of an event after its seq: producer, the pad if any, and the newline."""
    tail = b',"producer":' + producer_json
    return tail + (b"}\n" if pad_len is None else b',"pad":"' + b"x" * pad_len + b'"}\n')


def min_event_size(run_id: str) -> int:
    """Smallest `event_size` (bytes) accepted for `run_id`: room for any int64 seq plus pad."""
    head = _HEAD + _ID_TEMPLATE + b'","ts":"' + _SAMPLE_TS + b'","seq":'
    return len(head) + _MAX_SEQ_DIGITS + len(_tail(_producer_json(run_id), 0))


class EventGenerator:
    """Produces events with increasing `seq`, starting at 0 (or `start_seq`).

    `run_id` (default: 12 random hex digits) is the ``producer`` field; `event_size` (bytes,
    newline included) adds a ``pad`` so every event has exactly that size. Not thread-safe;
    cheap to create. Raises `ConfigError` for a non-str `run_id`, a negative `start_seq`, or
    an `event_size` that is not an int or is below `min_event_size(run_id)`.
    """

    def __init__(
        self, run_id: str | None = None, event_size: int | None = None, *, start_seq: int = 0
    ) -> None:
        if run_id is not None and not isinstance(run_id, str):
            raise ConfigError(f"run_id: expected a str or None, got {run_id!r}")
        if isinstance(start_seq, bool) or not isinstance(start_seq, int) or start_seq < 0:
            raise ConfigError(f"start_seq: expected an int >= 0, got {start_seq!r}")
        self.run_id = run_id if run_id is not None else uuid.uuid4().hex[:12]
        # Length of a padded event without its pad and without the digits of seq.
        self._fixed_len = 0
        if event_size is not None:
            if isinstance(event_size, bool) or not isinstance(event_size, int):
                raise ConfigError(f"event_size: expected an int, got {event_size!r}")
            smallest = min_event_size(self.run_id)
            if event_size < smallest:
                raise ConfigError(
                    f"event_size: {event_size} bytes is too small for run id "
                    f"{self.run_id!r}; expected at least {smallest}"
                )
            self._fixed_len = smallest - _MAX_SEQ_DIGITS
        self.event_size = event_size
        self.seq = start_seq
        self._producer_json = _producer_json(self.run_id)
        # Tails by seq digit count (the pad shrinks as seq grows); at most 20 small entries.
        self._tails: dict[int, bytes] = {}
        self._ts_ms = -1
        self._ts_text = b""
        self._ts_second = -1
        self._ts_second_text = ""
        # next_event(): ids made ahead, and the %-template for the current ms and digit count.
        self._spare_ids: list[bytes] = []
        self._one_template = b""
        self._one_from_ns = self._one_until_ns = self._one_low = self._one_below = 0

    def _timestamp(self) -> bytes:
        """The current UTC time as RFC 3339 text with milliseconds, formatted once per ms."""
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._ts_ms:
            second, millis = divmod(now_ms, 1000)
            if second != self._ts_second:
                self._ts_second = second
                self._ts_second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._ts_ms = now_ms
            self._ts_text = f"{self._ts_second_text}.{millis:03d}Z".encode("ascii")
        return self._ts_text

    def _tail_for(self, digits: int) -> bytes:
        """The event's end after a seq of `digits` digits (padded to `event_size` if set)."""
        tail = self._tails.get(digits)
        if tail is None:
            pad_len = None
            if self.event_size is not None:
                # Seqs beyond int64 do not fit the size: no pad then (never a negative one).
                pad_len = max(0, self.event_size - self._fixed_len - digits)
            tail = self._tails[digits] = _tail(self._producer_json, pad_len)
        return tail

    def next_event(self) -> bytes:
        """One event; consumes one `seq`."""
        seq = self.seq
        # The template holds while the clock is in its ms and seq has its digit count (the
        # seq attribute is public: a caller may also move it back).
        valid_now = self._one_from_ns <= time.time_ns() < self._one_until_ns
        if not (valid_now and self._one_low <= seq < self._one_below):
            self._one_template = self._one_event_template(seq)
        try:
            event_id = self._spare_ids.pop()
        except IndexError:
            self._spare_ids = _dashed_uuids(_RANDOM_CHUNK)
            event_id = self._spare_ids.pop()
        self.seq = seq + 1
        return self._one_template % (event_id, seq)

    def _one_event_template(self, seq: int) -> bytes:
        """The %-template (placeholders: id, seq) for next_event() during this millisecond and
        for seqs with as many digits as `seq`; notes when it stops being valid."""
        ts = self._timestamp()
        self._one_from_ns = self._ts_ms * 1_000_000
        self._one_until_ns = self._one_from_ns + 1_000_000
        digits = len(str(seq))
        self._one_low = 10 ** (digits - 1) if digits > 1 else 0
        self._one_below = 10**digits
        tail = self._tail_for(digits).replace(b"%", b"%%")
        return _HEAD + b'%b","ts":"' + ts + b'","seq":%d' + tail

    def batch(self, n: int) -> list[bytes]:
        """`n` consecutive events sharing one timestamp (the batch is made in one instant).

        No Python bytecode runs per event: see the module docstring.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: expected an int >= 0 (events to make), got {n!r}")
        if n == 0:
            return []
        head = _HEAD + _ID_TEMPLATE + b'","ts":"' + self._timestamp() + b'","seq":'
        events: list[bytes] = []
        start = self.seq
        end = start + n
        first = start
        while first < end:
            # A run of seqs with the same digit count: every event in it has the same length.
            digits = len(str(first))
            last = min(end, 10**digits, first + _RUN_MAX)
            run = last - first
            template = head + b"0" * digits + self._tail_for(digits)
            size = len(template)
            buf = bytearray(template) * run
            _fill_ids(buf, _ID_AT, size, run)
            _fill_seqs(buf, len(head), size, first, digits, run)
            _split(buf, size, run, events)
            first = last
        self.seq = end
        return events


def _fill_ids(buf: bytearray, at: int, stride: int, count: int) -> None:
    """Write `count` fresh random ids into the id templates in `buf`, the first at `at`, one
    every `stride` bytes.

    The random bytes are used column-wise (byte k of every id is in one contiguous run), so
    each hex digit column is one ``translate`` of a contiguous slice, then one strided write.
    """
    raw = os.urandom(_UUID_BYTES * count)
    for digit, table in _DIGIT_TABLES:
        offset = digit // 2 * count
        buf[at + _HEX_AT[digit] :: stride] = raw[offset : offset + count].translate(table)


def _fill_seqs(buf: bytearray, at: int, stride: int, first: int, digits: int, count: int) -> None:
    """Write seqs `first` .. `first + count` (all of `digits` digits) at `at`, one every
    `stride` bytes."""
    for place in range(digits):
        column = at + digits - 1 - place
        if place < _TILED_PLACES:
            tile = _DIGIT_TILES[place]
            period = len(tile)
            skip = first % period
            pattern = tile * ((skip + count) // period + 1)
            buf[column::stride] = pattern[skip : skip + count]
            continue
        # A constant digit for each stretch of 10**place seqs.
        unit = 10**place
        seq = first
        end = first + count
        while seq < end:
            upto = min(end, (seq // unit + 1) * unit)
            offset = column + (seq - first) * stride
            buf[offset : column + (upto - first) * stride : stride] = _DIGITS[seq // unit % 10] * (
                upto - seq
            )
            seq = upto


def _split(buf: bytearray, size: int, count: int, into: list[bytes]) -> None:
    """Append the `count` events of `size` bytes each in `buf` to `into`."""
    offset = 0
    while count:
        part = _SPLIT_MAX if count >= _SPLIT_MAX else 1 << (count.bit_length() - 1)
        into += _splitter(size, part).unpack_from(buf, offset)
        offset += part * size
        count -= part


def _dashed_uuids(count: int) -> list[bytes]:
    """`count` fresh random dashed UUID4 strings."""
    size = len(_ID_TEMPLATE)
    buf = bytearray(_ID_TEMPLATE) * count
    _fill_ids(buf, 0, size, count)
    ids: list[bytes] = []
    _split(buf, size, count, ids)
    return ids


# 11 counts per event length; a 1024-string Struct is ~33 KB, so at most ~2.4 MB cached.
@functools.lru_cache(maxsize=64)
def _splitter(size: int, count: int) -> struct.Struct:
    """Unpacks `count` consecutive `size`-byte strings (cached: building one takes tens of µs)."""
    return struct.Struct(f"{size}s" * count)
