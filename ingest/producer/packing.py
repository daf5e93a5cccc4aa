"""Record packing: many newline-terminated events in one Firehose record (optionally gzip).

Firehose bills every record as at least 5 KB (5,120 bytes), so a 150-byte event costs ~34x its
size. Packing concatenates consecutive events into records of up to `pack_bytes` raw bytes
(never splitting an event; an event larger than that travels alone). The destination object
is the concatenation of the records, so it reads exactly as if the events had been sent one by
one. With gzip, each packed record is one complete gzip member; a concatenation of members is
a valid multi-member gzip file (RFC 1952), which ``zcat`` and Python's `gzip` read back.

The accumulator and the producer's ledger keep counting EVENTS: a batch holds events, the
accumulator sizes it so that its packed form fits the PutRecordBatch limits, and the sender
packs the pending events of a batch just before each send. `PackedResult` maps the per-record
answer back onto the events, so a failed record is retried (or failed) for every event in it.

Grouping is "next fit": a record takes the following events while their raw bytes stay within
`pack_bytes`. Packing a subsequence of events (a resend of the failed ones) never needs more
records than packing the whole: each of its records absorbs the rest of the original record
it starts in.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from itertools import accumulate, pairwise
from typing import Final, Literal

from ingest.firehose.limits import BILLING_INCREMENT_BYTES, MAX_RECORD_BYTES
from ingest.firehose.wire import EntryFailure, PutBatchResult

__all__ = [
    "DEFAULT_PACK_BYTES",
    "GZIP_LEVEL",
    "PackedResult",
    "Packer",
    "billed_total",
    "gzip_bound",
]

DEFAULT_PACK_BYTES: Final = BILLING_INCREMENT_BYTES  # one billing unit
#: zlib's default level: JSON events shrink ~4x in 5 KiB members; level 1 saves little CPU
#: and loses ~20% of the ratio, which is what the bytes quota and the bill count.
GZIP_LEVEL: Final = 6
_GZIP_WRAPPER: Final = 64  # gzip header + trailer (18 bytes) and deflate's end-of-stream slack

Compression = Literal["gzip"] | None


def gzip_bound(raw: int) -> int:
    """An upper bound of the size of one gzip member holding `raw` bytes (deflate stores
    incompressible data in blocks of 5 bytes overhead per 16 KiB; zlib's deflateBound is
    ``raw + raw/4096 + raw/16384 + 25``, below this)."""
    return raw + (raw >> 11) + _GZIP_WRAPPER


#: The largest raw pack (or single event) whose gzip member still fits one Firehose record.
MAX_GZIP_RAW_BYTES: Final = next(
    n for n in range(MAX_RECORD_BYTES, 0, -1) if gzip_bound(n) <= MAX_RECORD_BYTES
)


def billed_total(sizes: list[int]) -> int:
    """Bytes Firehose bills for records of `sizes` bytes: each rounded up to the next 5 KB
    (5,120 bytes)."""
    if not sizes:
        return 0
    if max(sizes) <= BILLING_INCREMENT_BYTES:  # the common case, in C
        return len(sizes) * BILLING_INCREMENT_BYTES
    unit = BILLING_INCREMENT_BYTES
    return sum(max(1, -(-size // unit)) for size in sizes) * unit


class Packer:
    """Packs events into Firehose records of at most `pack_bytes` raw bytes each.

    `compression` None sends the concatenation as is; ``"gzip"`` makes each record one gzip
    member (then `pack_bytes` still counts the raw bytes; the record sent is smaller).
    """

    __slots__ = ("compression", "gzip", "pack_bytes")

    def __init__(self, pack_bytes: int, compression: Compression = None) -> None:
        self.pack_bytes = pack_bytes
        self.compression = compression
        self.gzip = compression == "gzip"

    def groups(self, sizes: list[int]) -> list[int]:
        """The start index of each record for events of `sizes` (next fit), plus the end."""
        limit = self.pack_bytes
        totals = list(accumulate(sizes, initial=0))
        n = len(sizes)
        starts: list[int] = []
        i = 0
        while i < n:
            starts.append(i)
            # The last event that still fits with the record's first one; at least that one.
            j = bisect_right(totals, totals[i] + limit, i + 1) - 1
            i = j if j > i else i + 1
        starts.append(n)
        return starts

    def pack(self, events: list[bytes]) -> tuple[list[bytes], list[int]]:
        """The records for `events` and the start index of each (plus the end, ``len``)."""
        starts = self.groups(list(map(len, events)))
        join = b"".join
        records = [join(events[a:b]) for a, b in pairwise(starts)]
        if self.gzip:
            records = [zlib.compress(record, GZIP_LEVEL, wbits=31) for record in records]
        return records, starts


class PackedResult(PutBatchResult):
    """The answer to a request of packed records, seen per event.

    Entry i of the view is event i of the request; its RecordId, or its error, is that of
    the record that carried it (`starts` as from `Packer.pack`).
    """

    __slots__ = ("_inner", "_starts")

    def __init__(self, inner: PutBatchResult, starts: list[int]) -> None:
        self._inner = inner
        self._starts = starts
        failed = sum(starts[f.index + 1] - starts[f.index] for f in inner.failures())
        super().__init__(failed, None, inner.request_id)

    @property
    def records(self) -> int:
        """Firehose records in the request."""
        return len(self._starts) - 1

    @property
    def responses(self) -> list[dict[str, str]]:
        if self._responses is None:
            starts = self._starts
            expanded: list[dict[str, str]] = []
            for g, entry in enumerate(self._inner.responses):
                expanded.extend([entry] * (starts[g + 1] - starts[g]))
            self._responses = expanded
        return self._responses

    def record_id(self, index: int) -> str | None:
        return self._inner.record_id(bisect_right(self._starts, index) - 1)

    def failed_records(self) -> list[int]:
        """Indices (in the request) of the records that failed."""
        return [f.index for f in self._inner.failures()]

    def failures(self) -> list[EntryFailure]:
        starts = self._starts
        return [
            EntryFailure(i, f.error)
            for f in self._inner.failures()
            for i in range(starts[f.index], starts[f.index + 1])
        ]
