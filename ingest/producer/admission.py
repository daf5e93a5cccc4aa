"""Checks a record must pass before the producer takes it: type and size.

Pure functions; each error names the field, the value and what was expected.
"""

from __future__ import annotations

from itertools import repeat

from ingest.errors import RecordTooLargeError
from ingest.firehose.limits import MAX_RECORD_BYTES

__all__ = [
    "check_many",
    "check_newlines",
    "event_sizes",
    "not_newline_terminated",
    "record_size",
    "record_sizes",
]

_NEWLINE = b"\n"


def record_size(record: object, largest: int) -> int:
    """Size in bytes of one record; raises `TypeError` (not bytes) or `RecordTooLargeError`
    (over `largest`: the Firehose limit or the queue byte bound)."""
    if type(record) is not bytes:
        raise _not_bytes("record", record)
    size = len(record)
    if size > largest:
        raise _too_large(size, largest, "record")
    return size


def record_sizes(records: list[bytes], largest: int) -> list[int]:
    """Sizes of many records, all checked before any is used (errors name the index)."""
    if records and set(map(type, records)) != {bytes}:  # one C-level pass on the fast path
        index, wrong = next((i, r) for i, r in enumerate(records) if type(r) is not bytes)
        raise _not_bytes(f"records[{index}]", wrong)
    sizes = list(map(len, records))
    if sizes and max(sizes) > largest:
        index = next(i for i, size in enumerate(sizes) if size > largest)
        raise _too_large(sizes[index], largest, f"records[{index}]")
    return sizes


def event_sizes(records: list[bytes], largest: int) -> list[int]:
    """`record_sizes` plus `check_newlines`, for packing, in one pass fewer: ``bytes.endswith``
    called through the class refuses any object that is not bytes, so the newline pass is
    also the type check; the precise error comes from the full checks when it fails."""
    try:
        valid = all(map(bytes.endswith, records, repeat(_NEWLINE)))  # one C-level pass
    except TypeError:
        valid = False
    if not valid:
        record_sizes(records, largest)  # raises the type error, if that is the problem
        check_newlines(records)  # else the newline error
    sizes = list(map(len, records))
    if sizes and max(sizes) > largest:
        index = next(i for i, size in enumerate(sizes) if size > largest)
        raise _too_large(sizes[index], largest, f"records[{index}]")
    return sizes


def check_newlines(records: list[bytes]) -> None:
    """Packing joins events end to end: each must end with a newline, or two would merge."""
    if not all(map(bytes.endswith, records, repeat(_NEWLINE))):  # one C-level pass
        index = next(i for i, record in enumerate(records) if not record.endswith(_NEWLINE))
        raise not_newline_terminated(f"records[{index}]", records[index])


def not_newline_terminated(field: str, record: bytes) -> ValueError:
    return ValueError(
        f"{field}: expected a newline-terminated event (pack_bytes is set: events are packed "
        f"end to end), got {_preview(record)}"
    )


def check_many(records: object) -> None:
    """`put_many` wants an iterable of records; one bytes/str object is a likely mistake."""
    if isinstance(records, bytes | bytearray | memoryview | str):
        raise TypeError(
            f"records: expected an iterable of bytes records, got one "
            f"{type(records).__name__} {_preview(records)} (use put() for a single record)"
        )


def _not_bytes(field: str, value: object) -> TypeError:
    hint = ""
    if isinstance(value, str):
        hint = " (encode text first, e.g. value.encode())"
    elif isinstance(value, bytearray | memoryview):
        hint = " (convert with bytes(value))"
    return TypeError(f"{field}: expected bytes, got {type(value).__name__} {_preview(value)}{hint}")


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _too_large(size: int, largest: int, field: str) -> RecordTooLargeError:
    if size > MAX_RECORD_BYTES:
        limit = f"the Firehose limit of {MAX_RECORD_BYTES:,} bytes per record (before base64)"
    else:
        limit = f"max_queue_bytes={largest:,}"
    return RecordTooLargeError(f"{field}: {size:,} bytes exceeds {limit}; never sent")
