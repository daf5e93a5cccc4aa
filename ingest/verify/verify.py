"""`verify_destination`: read a destination back and reconcile it by run id and seq.

The destination is a directory laid out as S3 (the emulator's data dir) or an S3 bucket and
prefix (any S3-compatible store through `s3_endpoint_url`). Objects are streamed and decoded
chunk by chunk; memory is bounded by the seq ranges (one byte per seq per run id) plus a few
chunks in flight, never by the number of objects, lines or duplicates.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

import aioboto3

from ingest.verify.reconcile import LineSplitter, Reconciler
from ingest.verify.sources import (
    CHUNK_BYTES,
    DamagedObject,
    Decoder,
    ObjectRef,
    object_time_ms,
    parse_s3_url,
    walk_directory,
)
from ingest.verify.tally import SATURATED, RunTally

DEFAULT_RANGES = 10
S3_CONCURRENCY = 8  # objects downloaded at once: hides per-object latency, bounds memory
_DAMAGE_SHOWN = 5


class VerifyError(Exception):
    """The destination could not be read (unreachable S3, missing bucket, refused access)."""


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What arrived for one producer run id. Counts are events; seq ranges are inclusive."""

    run_id: str
    expected: int | None  # None: unknown, seqs 0..highest seen were expected
    delivered_unique: int
    missing: int
    missing_ranges: list[tuple[int, int]]  # the first ones, (first seq, last seq)
    missing_range_count: int
    duplicated_events: int  # extra copies of seqs already delivered
    duplicated_seqs: int  # seqs that arrived more than once
    worst_multiplicity: int  # most copies of one seq (255 means 255 or more)
    beyond_expected: int  # events with a seq >= expected (or past the tracked range)
    highest_seq: int | None  # the highest seq seen within the tracked range
    malformed_lines: int  # unparseable lines that still name this run id
    lines_without_newline: int  # an object's last line that lacks its newline
    latency_samples: int
    latency_p50_s: float | None
    latency_p99_s: float | None
    latency_max_s: float | None

    @property
    def ok(self) -> bool:
        """Nothing missing (and, when nothing was expected explicitly, something arrived)."""
        nothing = self.expected is None and self.delivered_unique == 0
        return self.missing == 0 and not nothing


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """The reconciliation of one destination."""

    source: str
    objects: int
    objects_timed_by_name: int
    objects_damaged: int
    damage: list[str]  # the first few "key: reason" lines
    lines: int
    malformed_unattributed: int  # malformed lines with no readable run id
    no_newline_unattributed: int
    ignored_events: int  # events of run ids outside the reconciliation (--run-id, --report)
    runs: list[RunResult] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(run.missing for run in self.runs)

    @property
    def ok(self) -> bool:
        """True when every reconciled run id is complete (and there was at least one)."""
        return bool(self.runs) and all(run.ok for run in self.runs)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON: every field, plus the totals and the verdict."""
        data = asdict(self)
        data["missing"] = self.missing
        data["ok"] = self.ok
        for run, entry in zip(self.runs, data["runs"], strict=True):
            entry["missing_ranges"] = [list(pair) for pair in run.missing_ranges]
            entry["ok"] = run.ok
        return data


async def verify_destination(
    *,
    data_dir: str | os.PathLike[str] | None = None,
    s3_url: str | None = None,
    s3_endpoint_url: str | None = None,
    region: str | None = None,
    expected: int | Mapping[str, int] | None = None,
    run_id: str | None = None,
    time_zone: tzinfo = UTC,
    since_s: float | None = None,
    max_ranges: int = DEFAULT_RANGES,
    session: aioboto3.Session | None = None,
) -> VerifyResult:
    """Read every object at the destination and reconcile its events per run id.

    Exactly one of `data_dir` (a directory laid out as S3) or `s3_url` (``s3://bucket/prefix``,
    read through aioboto3 with `s3_endpoint_url`, `region` and `session`, default credentials
    otherwise). `expected`: an int applies to every run id found (or only `run_id`); a mapping
    run id -> events generated reconciles exactly those run ids; None expects seqs 0..highest
    seen. `time_zone` is the zone of the time in object names (a stream's CustomTimeZone).
    `since_s` (epoch s) skips objects timed before it. Raises ValueError for bad arguments and
    VerifyError when the destination cannot be read.
    """
    if (data_dir is None) == (s3_url is None):
        raise ValueError("give exactly one of data_dir or s3_url")
    if max_ranges < 0:
        raise ValueError(f"max_ranges: expected an int >= 0, got {max_ranges!r}")
    reconciler = Reconciler(expected, run_id)
    since_ms = None if since_s is None else int(since_s) * 1000  # names have 1 s resolution
    if data_dir is not None:
        root = Path(data_dir)
        if not await asyncio.to_thread(root.is_dir):
            raise ValueError(f"data_dir: {str(root)!r} is not a directory")
        reading = _Reading(reconciler, str(root), since_ms)
        # File reads and parsing block: keep them off the event loop (e.g. a service's HTTP).
        try:
            await asyncio.to_thread(_read_directory, reading, root, time_zone)
        except asyncio.CancelledError:
            reading.stopped = True  # the thread gives up at its next chunk (Ctrl-C, shutdown)
            raise
    else:
        assert s3_url is not None
        bucket, prefix = parse_s3_url(s3_url)
        reading = _Reading(reconciler, s3_url, since_ms)
        await _read_s3(reading, bucket, prefix, s3_endpoint_url, region, session, time_zone)
    return reading.result(max_ranges)


class _Reading:
    """Counters of one verification besides the reconciler's."""

    def __init__(self, reconciler: Reconciler, source: str, since_ms: int | None) -> None:
        self.reconciler = reconciler
        self.source = source
        self.since_ms = since_ms
        self.objects = 0
        self.by_name = 0
        self.damage: list[str] = []
        self.damaged = 0
        self.stopped = False  # set from the event loop: the reading thread stops early

    def wanted(self, ref: ObjectRef) -> bool:
        if self.since_ms is not None and ref.time_ms < self.since_ms:
            return False
        self.objects += 1
        self.by_name += ref.timed_by_name
        return True

    def damaged_object(self, key: str, reason: str) -> None:
        self.damaged += 1
        if len(self.damage) < _DAMAGE_SHOWN:
            self.damage.append(f"{key}: {reason}")

    def result(self, max_ranges: int) -> VerifyResult:
        rec = self.reconciler
        runs = [_run_result(rec.tallies[name], max_ranges) for name in sorted(rec.tallies)]
        return VerifyResult(
            source=self.source,
            objects=self.objects,
            objects_timed_by_name=self.by_name,
            objects_damaged=self.damaged,
            damage=self.damage,
            lines=rec.lines,
            malformed_unattributed=rec.malformed_unattributed,
            no_newline_unattributed=rec.no_newline_unattributed,
            ignored_events=rec.ignored_events,
            runs=runs,
        )


def _run_result(tally: RunTally, max_ranges: int) -> RunResult:
    range_count, ranges = tally.missing_ranges(max_ranges)
    latency = tally.latency.summary()
    return RunResult(
        run_id=tally.run_id,
        expected=tally.expected,
        delivered_unique=tally.unique,
        missing=tally.missing(),
        missing_ranges=ranges,
        missing_range_count=range_count,
        duplicated_events=tally.duplicates,
        duplicated_seqs=tally.duplicated_seqs(),
        worst_multiplicity=min(tally.worst_multiplicity(), SATURATED),
        beyond_expected=tally.beyond,
        highest_seq=tally.highest - 1 if tally.highest else None,
        malformed_lines=tally.malformed,
        lines_without_newline=tally.no_newline,
        latency_samples=latency.samples,
        latency_p50_s=latency.p50_s,
        latency_p99_s=latency.p99_s,
        latency_max_s=latency.max_s,
    )


class _ObjectFeed:
    """One object on its way in: raw bytes -> decoded bytes -> complete lines.

    Decoding is tried twice: a gzip object (Firehose's GZIP compression) may hold records that
    are gzip members themselves (a producer's packed, compressed records)."""

    def __init__(self, reading: _Reading, ref: ObjectRef) -> None:
        self._reading = reading
        self._key = ref.key
        self._outer = Decoder()
        self._inner = Decoder()
        self._lines = LineSplitter(reading.reconciler, ref.time_ms)
        self._broken = False

    def feed(self, raw: bytes) -> None:
        if self._broken:
            return
        try:
            for data in self._outer.feed(raw):
                for text in self._inner.feed(data):
                    self._lines.feed(text)
        except DamagedObject as exc:
            self._broken = True
            self._reading.damaged_object(self._key, str(exc))

    def close(self) -> None:
        if not self._broken:
            try:
                for data in self._outer.close():
                    for text in self._inner.feed(data):
                        self._lines.feed(text)
                for text in self._inner.close():
                    self._lines.feed(text)
            except DamagedObject as exc:
                self._reading.damaged_object(self._key, str(exc))
        self._lines.close()


def _read_directory(reading: _Reading, root: Path, zone: tzinfo) -> None:
    for path, ref in walk_directory(root, zone):
        if not reading.wanted(ref):
            continue
        feed = _ObjectFeed(reading, ref)
        try:
            with open(path, "rb", buffering=0) as file:
                while raw := file.read(CHUNK_BYTES):
                    if reading.stopped:
                        return
                    feed.feed(raw)
        except FileNotFoundError:  # removed between the listing and the read
            reading.objects -= 1
            continue
        except OSError as exc:
            reading.damaged_object(ref.key, exc.strerror or str(exc))
        feed.close()


async def _read_s3(
    reading: _Reading,
    bucket: str,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    session: aioboto3.Session | None,
    zone: tzinfo,
) -> None:
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{prefix}" + (f" at {endpoint_url}" if endpoint_url else "")
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60
    )
    session = session or aioboto3.Session()
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    try:
        async with session.client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config
        ) as s3:
            queue: asyncio.Queue[ObjectRef | None] = asyncio.Queue(maxsize=S3_CONCURRENCY * 4)
            workers = [
                asyncio.create_task(_s3_worker(s3, bucket, queue, reading))
                for _ in range(S3_CONCURRENCY)
            ]
            try:
                paginator = s3.get_paginator("list_objects_v2")
                async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                    for item in page.get("Contents", ()):
                        key = item["Key"]
                        if key.endswith("/"):
                            continue  # a "folder" marker, not an object
                        ref = ObjectRef(key, *object_time_ms(
                            key, item["LastModified"].timestamp(), zone))  # fmt: skip
                        if reading.wanted(ref):
                            await _put_or_fail(queue, ref, workers)
                for _ in workers:
                    await _put_or_fail(queue, None, workers)
                await asyncio.gather(*workers)
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        message = error.get("Message") or code
        raise VerifyError(f"cannot read {where}: {code}: {message}") from None
    except BotoCoreError as exc:  # unreachable endpoint, no credentials, timeouts
        raise VerifyError(f"cannot read {where}: {exc}") from None
    except OSError as exc:
        raise VerifyError(f"cannot read {where}: {exc}") from None


async def _put_or_fail(
    queue: asyncio.Queue[ObjectRef | None],
    item: ObjectRef | None,
    workers: list[asyncio.Task[None]],
) -> None:
    """Queue an item, but surface a worker's failure instead of waiting on a full queue."""
    put = asyncio.ensure_future(queue.put(item))
    try:
        while not put.done():
            for worker in workers:
                if worker.done():
                    worker.result()  # raises the worker's error, if any
            running = {worker for worker in workers if not worker.done()}
            await asyncio.wait({put, *running}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        put.cancel()


async def _s3_worker(
    s3: Any, bucket: str, queue: asyncio.Queue[ObjectRef | None], reading: _Reading
) -> None:
    while (ref := await queue.get()) is not None:
        feed = _ObjectFeed(reading, ref)
        response = await s3.get_object(Bucket=bucket, Key=ref.key)
        body = response["Body"]  # aiobotocore's StreamingBody: read(n) streams the object
        pieces: list[bytes] = []
        held = 0
        async with body:
            # read(n) returns what the socket has (often a few KiB): gather a good share of a
            # chunk first, so the per-chunk work is paid per 256 KiB, not per network read.
            while raw := await body.read(CHUNK_BYTES - held):
                pieces.append(raw)
                held += len(raw)
                if held >= CHUNK_BYTES // 4:
                    feed.feed(b"".join(pieces))
                    pieces, held = [], 0
        if pieces:
            feed.feed(b"".join(pieces))
        feed.close()
