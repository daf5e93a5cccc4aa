"""A fast generator of NDJSON events, one ``bytes`` object per event, ``\\n``-terminated::

    {"id":"<uuid4>","ts":"<UTC RFC 3339, ms, Z>","seq":<int from 0>,"producer":"<run id>"}

plus ``"pad":"xxx..."`` only when an event size is requested (then every event is exactly
that many bytes, newline included).

Speed comes from doing per-event work only where it cannot be avoided: the random bits of many
UUIDs come from one ``os.urandom`` call, the version/variant bits are set with
``bytes.translate`` over a strided slice, the hex conversion is one call per batch, the
timestamp text is formatted once per millisecond, and the event is assembled with a single
``bytes`` ``%`` format (every part is already valid JSON, so no serialiser is needed).
"""

from __future__ import annotations

import functools
import os
import struct
import time
import uuid
from itertools import chain

import orjson

from ingest.errors import ConfigError

__all__ = ["EventGenerator", "min_event_size"]

_UUID_BYTES = 16
# Version 4 in the high nibble of byte 6; RFC 4122 variant (0b10) in the top bits of byte 8.
_VERSION_TABLE = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT_TABLE = bytes((b & 0x3F) | 0x80 for b in range(256))
_MAX_SEQ_DIGITS = 19  # seq is an int64 in every consumer we care about
_RANDOM_CHUNK = 1024  # UUIDs drawn per os.urandom call for next_event()
_SAMPLE_ID = b"00000000-0000-0000-0000-000000000000"
_ID_SLOT = b'{"id":"%b"'  # how every event template starts
_DASHED_ID_SLOTS = b'{"id":"%b-%b-%b-%b-%b"'
_SAMPLE_TS = b"2000-01-01T00:00:00.000Z"


def _random_uuid_hex(count: int) -> bytes:
    """`count` random UUID4s as 32 lowercase hex ASCII bytes each, concatenated."""
    raw = bytearray(os.urandom(_UUID_BYTES * count))
    raw[6::_UUID_BYTES] = raw[6::_UUID_BYTES].translate(_VERSION_TABLE)
    raw[8::_UUID_BYTES] = raw[8::_UUID_BYTES].translate(_VARIANT_TABLE)
    return raw.hex().encode("ascii")


def _producer_json(run_id: str) -> bytes:
    """`run_id` as a JSON string, escaped for use inside a ``bytes`` ``%`` template."""
    return orjson.dumps(run_id).replace(b"%", b"%%")


def _event_template(producer_json: bytes, ts: bytes, pad: bytes | None) -> bytes:
    """The one event template: placeholders for the id (``%b``) and seq (``%d``)."""
    head = b'{"id":"%b","ts":"' + ts + b'","seq":%d,"producer":' + producer_json
    return head + (b"}\n" if pad is None else b',"pad":"' + pad + b'"}\n')


def min_event_size(run_id: str) -> int:
    """Smallest `event_size` (bytes) accepted for `run_id`: room for any int64 seq plus pad."""
    template = _event_template(_producer_json(run_id), _SAMPLE_TS, b"")
    return len(template % (_SAMPLE_ID, 10 ** (_MAX_SEQ_DIGITS - 1)))


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
        self._pad_source = b"x" * (event_size or 0)
        self._ts_ms = -1
        self._ts_text = b""
        self._ts_second = -1
        self._ts_second_text = ""
        self._spare_ids: list[bytes] = []

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

    def next_event(self) -> bytes:
        """One event; consumes one `seq`."""
        if not self._spare_ids:
            self._spare_ids = _dashed_uuids(_random_uuid_hex(_RANDOM_CHUNK), _RANDOM_CHUNK)
            self._spare_ids.pop()  # the empty tail
        seq = self.seq
        event = self._run_template(self._timestamp(), seq) % (self._spare_ids.pop(), seq)
        self.seq = seq + 1
        return event

    def batch(self, n: int) -> list[bytes]:
        """`n` consecutive events sharing one timestamp (the batch is made in one instant).

        The fast path: the per-event work is done by C code (struct unpack, ``bytes`` ``%``
        over the whole batch, ``splitlines``), not by Python bytecode per event.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: expected an int >= 0 (events to make), got {n!r}")
        if n == 0:
            return []
        # The five groups of every id, straight from the hex (no dashed id object per event):
        # the template takes them as five %b with the dashes in between.
        parts = _uuid_struct(n).unpack(_random_uuid_hex(n))
        ts = self._timestamp()
        events: list[bytes] = []
        start = self.seq
        while len(events) < n:
            # Within a run of seqs with the same digit count the pad length is constant.
            first = start + len(events)
            end = min(start + n, 10 ** len(str(first)))
            run = end - first
            groups = iter(parts[5 * (first - start) : 5 * (end - start)])
            each = zip(groups, groups, groups, groups, groups, range(first, end), strict=True)
            args = tuple(chain.from_iterable(each))
            template = self._run_template(ts, first).replace(_ID_SLOT, _DASHED_ID_SLOTS, 1)
            events += ((template * run) % args).splitlines(keepends=True)
        self.seq = start + n
        return events

    def _run_template(self, ts: bytes, seq: int) -> bytes:
        """The template (placeholders: id, seq) with `ts` and, if padded, the pad for every
        seq with as many digits as `seq` built in."""
        pad = None
        if self.event_size is not None:
            pad = self._pad_source[: self.event_size - self._fixed_len - len(str(seq))]
        return _event_template(self._producer_json, ts, pad)


def _dashed_uuids(hexs: bytes, n: int) -> list[bytes]:
    """Split 32n hex bytes into dashed UUID strings (n of them, then one empty), all in C."""
    return (b"%b-%b-%b-%b-%b\n" * n % _uuid_struct(n).unpack(hexs)).split(b"\n")


@functools.lru_cache(maxsize=64)
def _uuid_struct(n: int) -> struct.Struct:
    return struct.Struct("8s4s4s4s12s" * n)
