"""Where Firehose puts an object: its key from Prefix, ErrorOutputPrefix, FileExtension,
CustomTimeZone and CompressionFormat, as the real service evaluates them.

A key is ``<evaluated prefix><stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid><extension>``, timed by
the arrival of the oldest record in the object, in ``CustomTimeZone`` (UTC by default) for both
the prefix and the file name. Prefix rules (Firehose developer guide, "Custom prefixes for
Amazon S3 objects", and what real Firehose was seen to write):

- ``!{timestamp:<Java DateTimeFormatter pattern>}`` is the oldest record's arrival time; every
  instance in one prefix is the same instant. Text in single quotes is literal (``''`` = ``'``).
- ``!{firehose:random-string}`` is 11 random characters, a new one per instance.
- ``!{firehose:error-output-type}`` (ErrorOutputPrefix only) is why the records failed, e.g.
  ``processing-failed``.
- A prefix without any ``!{timestamp:...}`` gets ``yyyy/MM/dd/HH/`` appended exactly as it is:
  ``legacy`` becomes ``legacy2026/07/13/14/`` (no slash is added).
- ErrorOutputPrefix may be left out only when Prefix has no expression; it then is
  ``<Prefix><error-output-type>/yyyy/MM/dd/HH/``. An ErrorOutputPrefix with expressions must
  contain ``!{firehose:error-output-type}``; Prefix must not. ``!{`` may appear only as the
  start of an expression; neither prefix may evaluate to more than 512 characters.
- GZIP objects end in ``.gz``; a ``FileExtension`` (``^$|\\.[0-9a-z!\\-_.*'()]+``, at most 128
  characters) replaces that default.

Problems are raised as ``LayoutError`` naming the configuration field; the API answers them as
Firehose does (``InvalidArgumentException``, or ``ValidationException`` for a model constraint).
"""

from __future__ import annotations

import re
import secrets
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: CompressionFormat values of the Firehose model, and the ones the emulator can write.
COMPRESSION_FORMATS: Final = ("UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY")
SUPPORTED_COMPRESSION: Final = ("UNCOMPRESSED", "GZIP")
DEFAULT_EXTENSIONS: Final = {"UNCOMPRESSED": "", "GZIP": ".gz"}
FILE_EXTENSION_PATTERN: Final = re.compile(r"^$|\.[0-9a-z!\-_.*'()]+")
TIME_ZONE_PATTERN: Final = re.compile(r"^$|[a-zA-Z/_]+")
MAX_EVALUATED_PREFIX: Final = 512
MAX_PREFIX: Final = 1024
RANDOM_STRING_LENGTH: Final = 11
#: What ``!{firehose:error-output-type}`` evaluates to, by cause of failure.
ERROR_OUTPUT_TYPES: Final = (
    "processing-failed",
    "format-conversion-failed",
    "http-endpoint-failed",
    "elasticsearch-failed",
    "splunk-failed",
)
DEFAULT_DATE_PATH: Final = "yyyy/MM/dd/HH/"
_EXPRESSION: Final = re.compile(r"!\{([^{}:]*):([^{}]*)\}")
_RANDOM_ALPHABET: Final = "0123456789abcdef"
_MONTHS: Final = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_DAYS: Final = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class LayoutError(ValueError):
    """A layout setting Firehose would refuse. ``field`` is its configuration name."""

    def __init__(self, field: str, message: str, *, validation: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        #: True for a model constraint (ValidationException), False for InvalidArgumentException.
        self.validation = validation


# -- Java DateTimeFormatter patterns ----------------------------------------------------------
Formatter = Callable[[datetime], str]


def _number(value: Callable[[datetime], int], width: int) -> Formatter:
    return lambda t: str(value(t)).zfill(width)


def _year(count: int, value: Callable[[datetime], int]) -> Formatter:
    if count == 2:  # reduced two-digit year
        return lambda t: f"{value(t) % 100:02d}"
    return _number(value, count)


def _week_year(t: datetime) -> int:
    # java.time with the US week definition (weeks start on Sunday; week 1 holds January 1st):
    # a week belongs to the year of its Saturday.
    return (t + timedelta(days=6 - (t.isoweekday() % 7))).year


def _week_of_year(t: datetime) -> int:
    jan1 = t.replace(year=_week_year(t), month=1, day=1)
    first_sunday = jan1 - timedelta(days=jan1.isoweekday() % 7)
    return (t.replace(tzinfo=None) - first_sunday.replace(tzinfo=None)).days // 7 + 1


def _offset(t: datetime) -> str:
    seconds = int((t.utcoffset() or timedelta()).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}{minutes:02d}"


def _text(names: list[str], index: Callable[[datetime], int], count: int) -> Formatter:
    """Java text styles: 3 or fewer letters short ("Sep"), 4 full, 5 narrow ("S")."""
    if count == 4:
        return lambda t: names[index(t)]
    if count == 5:
        return lambda t: names[index(t)][0]
    return lambda t: names[index(t)][:3]


def _letter(letter: str, count: int) -> Formatter:
    """Formatter for ``count`` repetitions of a pattern letter; ValueError if Java refuses it."""

    def at_most(limit: int) -> None:
        if count > limit:
            raise ValueError(f"too many pattern letters: {letter * count!r}")

    if letter in "yu":
        at_most(19)
        return _year(count, lambda t: t.year)
    if letter == "Y":
        at_most(19)
        return _year(count, _week_year)
    if letter in "ML":
        at_most(5)
        if count >= 3:
            return _text(_MONTHS, lambda t: t.month - 1, count)
        return _number(lambda t: t.month, count)
    if letter == "E":
        at_most(5)
        return _text(_DAYS, lambda t: t.weekday(), count)
    if letter == "a":
        at_most(1)
        return lambda t: "AM" if t.hour < 12 else "PM"
    if letter == "S":
        at_most(9)
        return lambda t: f"{t.microsecond:06d}000"[:count]
    if letter == "Z":
        at_most(3)
        return _offset
    fields: dict[str, tuple[int, Callable[[datetime], int]]] = {
        "d": (2, lambda t: t.day),
        "D": (3, lambda t: t.timetuple().tm_yday),
        "H": (2, lambda t: t.hour),
        "k": (2, lambda t: t.hour or 24),
        "K": (2, lambda t: t.hour % 12),
        "h": (2, lambda t: t.hour % 12 or 12),
        "m": (2, lambda t: t.minute),
        "s": (2, lambda t: t.second),
        "w": (2, _week_of_year),
    }
    if letter in fields:
        limit, value = fields[letter]
        at_most(limit)
        return _number(value, count)
    if letter in "GQqecFWVvzOXxnNAgp":
        raise ValueError(f"pattern letter {letter!r} is valid in Java but not supported here")
    raise ValueError(f"unknown pattern letter: {letter!r}")


def compile_timestamp(pattern: str) -> Formatter:
    """A formatter for a Java DateTimeFormatter ``pattern``; ValueError says what is wrong."""
    parts: list[Formatter | str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = i + 1
            literal = []
            while True:
                if end >= len(pattern):
                    raise ValueError("unterminated quote")
                if pattern[end] == "'":
                    if end + 1 < len(pattern) and pattern[end + 1] == "'":
                        literal.append("'")
                        end += 2
                        continue
                    break
                literal.append(pattern[end])
                end += 1
            parts.append("".join(literal) if end > i + 1 else "'")
            i = end + 1
        elif char.isascii() and char.isalpha():
            end = i
            while end < len(pattern) and pattern[end] == char:
                end += 1
            parts.append(_letter(char, end - i))
            i = end
        elif char in "[]{}#":
            raise ValueError(f"{char!r} is reserved (optional sections are not supported)")
        else:
            parts.append(char)
            i += 1
    fixed = tuple(parts)
    return lambda t: "".join(p if isinstance(p, str) else p(t) for p in fixed)


# -- prefixes ---------------------------------------------------------------------------------
Part = str | Callable[[datetime, str], str]


@dataclass(frozen=True)
class Template:
    """A parsed prefix: literal text and expressions, evaluated by ``render``."""

    parts: tuple[Part, ...]
    has_expression: bool
    has_timestamp: bool
    has_error_type: bool

    def render(self, when: datetime, error_type: str = "") -> str:
        return "".join(p if isinstance(p, str) else p(when, error_type) for p in self.parts)


def _random_string(_when: datetime, _error_type: str) -> str:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(RANDOM_STRING_LENGTH))


def _error_type(_when: datetime, error_type: str) -> str:
    return error_type


def parse_prefix(field: str, prefix: str) -> Template:
    """Parse ``prefix`` (the value of configuration field ``field``); LayoutError if invalid."""
    if len(prefix) > MAX_PREFIX:
        raise LayoutError(
            field,
            f"Value at '{_member(field)}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_PREFIX}",
            validation=True,
        )
    parts: list[Part] = []
    position = 0
    flags = {"expression": False, "timestamp": False, "error": False}
    for match in _EXPRESSION.finditer(prefix):
        parts.append(prefix[position : match.start()])
        parts.append(_expression(field, prefix, match.group(1), match.group(2), flags))
        position = match.end()
    rest = prefix[position:]
    if "!{" in rest or any("!{" in p for p in parts if isinstance(p, str)):
        raise LayoutError(
            field,
            f"{field} {prefix!r}: '!{{' may only start an expression of the form "
            "!{namespace:value}",
        )
    parts.append(rest)
    return Template(
        tuple(p for p in parts if p != ""),
        flags["expression"],
        flags["timestamp"],
        flags["error"],
    )


def _expression(
    field: str, prefix: str, namespace: str, value: str, flags: dict[str, bool]
) -> Part:
    flags["expression"] = True
    where = f"{field} {prefix!r}: expression !{{{namespace}:{value}}}"
    if namespace == "timestamp":
        try:
            formatter = compile_timestamp(value)
        except ValueError as error:
            raise LayoutError(
                field, f"{where} is not a valid Java DateTimeFormatter pattern: {error}"
            ) from None
        if not value:
            raise LayoutError(field, f"{where} has an empty pattern")
        flags["timestamp"] = True
        return lambda when, _error_type: formatter(when)
    if namespace == "firehose":
        if value == "random-string":
            return _random_string
        if value == "error-output-type":
            if field == "Prefix":
                raise LayoutError(
                    field, f"{where}: Prefix can't contain !{{firehose:error-output-type}}"
                )
            flags["error"] = True
            return _error_type
        raise LayoutError(
            field, f"{where}: the firehose namespace has random-string and error-output-type"
        )
    if namespace in ("partitionKeyFromQuery", "partitionKeyFromLambda"):
        raise LayoutError(
            field,
            f"{where} needs dynamic partitioning, which the emulator does not support",
        )
    raise LayoutError(field, f"{where}: unknown namespace {namespace!r} (timestamp or firehose)")


def _member(field: str) -> str:
    return field[0].lower() + field[1:]


# -- the layout of one stream -----------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How one stream names and encodes its objects. Build it with ``Layout.from_config``."""

    prefix: Template
    error_prefix: Template
    extension: str
    zone: tzinfo
    compression: str

    @classmethod
    def from_config(
        cls, config: dict[str, Any], kind: str = "S3DestinationConfiguration"
    ) -> Layout:
        """Validate the layout fields of a destination configuration (as boto3 sends them)."""
        prefix_text = _string(config, "Prefix", kind) or ""
        error_text = _string(config, "ErrorOutputPrefix", kind) or ""
        prefix = parse_prefix("Prefix", prefix_text)
        if prefix.has_expression and not error_text:
            raise LayoutError(
                "ErrorOutputPrefix",
                "ErrorOutputPrefix cannot be null or empty when Prefix contains expressions",
            )
        if error_text:
            error_prefix = parse_prefix("ErrorOutputPrefix", error_text)
            if error_prefix.has_expression and not error_prefix.has_error_type:
                raise LayoutError(
                    "ErrorOutputPrefix",
                    f"ErrorOutputPrefix {error_text!r} contains expressions, so it must contain "
                    "at least one !{firehose:error-output-type}",
                )
            if not error_prefix.has_expression:
                error_prefix = parse_prefix(
                    "ErrorOutputPrefix", error_text + "!{firehose:error-output-type}/"
                )
        else:
            error_prefix = parse_prefix(
                "ErrorOutputPrefix", prefix_text + "!{firehose:error-output-type}/"
            )
        compression = config.get("CompressionFormat") or "UNCOMPRESSED"
        if compression not in COMPRESSION_FORMATS:
            raise LayoutError(
                "CompressionFormat",
                f"Value '{compression}' at '{_member(kind)}.compressionFormat' failed to "
                f"satisfy constraint: Member must satisfy enum value set: "
                f"[{', '.join(COMPRESSION_FORMATS)}]",
                validation=True,
            )
        if compression not in SUPPORTED_COMPRESSION:
            raise LayoutError(
                "CompressionFormat",
                f"CompressionFormat {compression} is not supported by the emulator "
                f"(it writes {' or '.join(SUPPORTED_COMPRESSION)})",
            )
        extension = _string(config, "FileExtension", kind)
        if extension is not None:
            _check_pattern(kind, "FileExtension", extension, FILE_EXTENSION_PATTERN, 128)
        zone_name = _string(config, "CustomTimeZone", kind)
        zone: tzinfo = UTC
        if zone_name:
            _check_pattern(kind, "CustomTimeZone", zone_name, TIME_ZONE_PATTERN, 50)
            zone = _zone(zone_name)
        layout = cls(
            prefix=_with_date_path(prefix),
            error_prefix=_with_date_path(error_prefix),
            extension=DEFAULT_EXTENSIONS[compression] if extension is None else extension,
            zone=zone,
            compression=compression,
        )
        layout._check_evaluated_lengths(prefix_text, error_text)
        return layout

    def _check_evaluated_lengths(self, prefix_text: str, error_text: str) -> None:
        # The widest instant the patterns can show: long month and day names, two-digit fields.
        widest = datetime(2026, 9, 30, 23, 59, 59, 999999, tzinfo=self.zone)
        longest_type = max(ERROR_OUTPUT_TYPES, key=len)
        for field, text, template in (
            ("Prefix", prefix_text, self.prefix),
            ("ErrorOutputPrefix", error_text, self.error_prefix),
        ):
            evaluated = template.render(widest, longest_type)
            if len(evaluated) > MAX_EVALUATED_PREFIX:
                raise LayoutError(
                    field,
                    f"{field} {text!r} evaluates to {len(evaluated)} characters; "
                    f"the limit is {MAX_EVALUATED_PREFIX}",
                )

    def local_time(self, epoch_s: float) -> datetime:
        return datetime.fromtimestamp(epoch_s, self.zone)

    def evaluated_prefix(self, epoch_s: float) -> str:
        """The data prefix for an object whose oldest record arrived at ``epoch_s``."""
        return self.prefix.render(self.local_time(epoch_s))

    def object_key(
        self, stream: str, version: str, oldest_epoch_s: float, *, error_type: str | None = None
    ) -> str:
        """The key of an object whose oldest record arrived at ``oldest_epoch_s``; under the
        ErrorOutputPrefix when ``error_type`` (one of ERROR_OUTPUT_TYPES) is given."""
        when = self.local_time(oldest_epoch_s)
        template = self.prefix if error_type is None else self.error_prefix
        head = template.render(when, error_type or "")
        return f"{head}{stream}-{version}-{when:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{self.extension}"

    def encode(self, chunks: Iterable[bytes]) -> list[bytes]:
        """The object's content: the records concatenated, gzip-compressed for GZIP. Blocks:
        call it in a worker thread for large objects."""
        if self.compression != "GZIP":
            return list(chunks)
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
        out = [compressor.compress(chunk) for chunk in chunks]
        out.append(compressor.flush())
        return [b"".join(out)]


def _with_date_path(template: Template) -> Template:
    """Append ``yyyy/MM/dd/HH/`` (glued on, no slash) to a prefix with no timestamp."""
    if template.has_timestamp:
        return template
    formatter = compile_timestamp(DEFAULT_DATE_PATH)
    return Template(
        (*template.parts, lambda when, _error_type: formatter(when)),
        template.has_expression,
        True,
        template.has_error_type,
    )


def _string(config: dict[str, Any], field: str, kind: str) -> str | None:
    value = config.get(field)
    if value is None or isinstance(value, str):
        return value
    raise LayoutError(
        field, f"{kind}.{field}: expected a string, got {type(value).__name__}", validation=True
    )


def _check_pattern(kind: str, field: str, value: str, pattern: re.Pattern[str], most: int) -> None:
    where = f"'{_member(kind)}.{_member(field)}'"
    if len(value) > most:
        raise LayoutError(
            field,
            f"Value '{value}' at {where} failed to satisfy constraint: "
            f"Member must have length less than or equal to {most}",
            validation=True,
        )
    if pattern.fullmatch(value) is None:
        raise LayoutError(
            field,
            f"Value '{value}' at {where} failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern.pattern}",
            validation=True,
        )


def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise LayoutError(
            "CustomTimeZone",
            f"CustomTimeZone {name!r} is not a known time zone (e.g. UTC, Asia/Tokyo, "
            "America/New_York)",
        ) from None
