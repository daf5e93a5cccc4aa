"""`ingest replay`: resend the dead-letter spool through the producer, journaling deliveries.

Order of work, chosen so a kill at any moment loses nothing and resends nothing seen delivered:
lock the spool (a running `ingest run` or another replay holds it: refuse); recover it; load the
journal; send every entry neither journaled nor (without `include_ambiguous`) marked "may
already be stored", in batches with at most `window` in flight; after each batch is settled,
journal its delivered seqs (fdatasync) before more are counted; at the end move the spool's
checkpoint over the contiguous prefix now delivered (fsync), delete the segments below it,
compact the journal. Records that fail again stay in the spool for the next replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ingest.errors import SpoolLockedError
from ingest.producer import Producer
from ingest.producer.batch import Receipts
from ingest.producer.stats import FailedRecord
from ingest.spool.deadletter import SpooledRecord, decode_entry
from ingest.spool.journal import ReplayJournal
from ingest.spool.log import KIND_DEAD_LETTER, KIND_DURABLE, SegmentLog, find_logs

__all__ = ["ReplayReport", "replay_spool"]

_log = structlog.get_logger(__name__)
CHUNK = 500  # records per put_many (one PutRecordBatch at most)


@dataclass
class ReplayReport:
    """What a replay did, in records."""

    directory: str
    in_spool: int = 0  # entries above the checkpoint at start
    already_delivered: int = 0  # journaled by an earlier replay: not resent
    sent: int = 0
    delivered: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # failed again, by reason (kept)
    skipped_ambiguous: int = 0  # may already be stored: kept (see --include-ambiguous)
    unreadable: int = 0  # entries that are not spool entries (kept)
    quarantined: int = 0  # corrupt segments moved aside at open
    segments_deleted: int = 0
    logs: int = 0  # spool logs replayed (one per run id under the service's spool_dir)
    busy: list[str] = field(default_factory=list)  # logs locked by a running process: skipped

    @property
    def undelivered(self) -> int:
        return sum(self.failed.values()) + self.skipped_ambiguous + self.unreadable

    def add(self, other: ReplayReport) -> None:
        for name in ("in_spool", "already_delivered", "sent", "delivered", "skipped_ambiguous",
                     "unreadable", "quarantined", "segments_deleted", "logs"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, count in other.failed.items():
            self.failed[reason] = self.failed.get(reason, 0) + count
        self.busy += other.busy

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "in_spool": self.in_spool,
            "already_delivered": self.already_delivered,
            "sent": self.sent,
            "delivered": self.delivered,
            "failed": dict(self.failed),
            "skipped_ambiguous": self.skipped_ambiguous,
            "unreadable": self.unreadable,
            "quarantined": self.quarantined,
            "segments_deleted": self.segments_deleted,
            "logs": self.logs,
            "busy": list(self.busy),
            "undelivered": self.undelivered,
        }

    def render(self) -> str:
        failed = sum(self.failed.values())
        reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(self.failed.items()))
        lines = [
            f"ingest replay {self.directory}",
            f"  in spool            {self.in_spool:>10,}",
            f"  already delivered   {self.already_delivered:>10,}  (journaled earlier)",
            f"  sent                {self.sent:>10,}",
            f"  delivered           {self.delivered:>10,}",
            f"  failed again        {failed:>10,}" + (f"  ({reasons})" if reasons else ""),
            f"  skipped ambiguous   {self.skipped_ambiguous:>10,}  (may already be stored; "
            "resend with --include-ambiguous)",
        ]
        if self.unreadable:
            lines.append(f"  unreadable          {self.unreadable:>10,}  (not spool entries)")
        for path in self.busy:
            lines.append(f"  in use, skipped     {path}  (a running process holds its lock)")
        if self.quarantined:
            lines.append(
                f"  quarantined         {self.quarantined:>10,}  segment(s), see quarantine/"
            )
        verdict = (
            "nothing left to deliver"
            if not self.undelivered and not self.busy
            else f"{self.undelivered:,} record(s) still undelivered, kept in the spool"
        )
        lines.append(f"  result: {verdict}")
        return "\n".join(lines)


class NotASpoolError(Exception):
    """The directory holds a durable log, not a dead-letter spool."""


async def replay_tree(
    directory: str,
    *,
    producer_args: Mapping[str, Any],
    include_ambiguous: bool = False,
) -> ReplayReport:
    """Replay every spool log in `directory` (itself and one per run id below it); a log a
    running process holds is skipped and listed in `busy`."""
    total = ReplayReport(directory)
    for path in find_logs(directory):
        try:
            report = await replay_spool(
                path, producer_args=producer_args, include_ambiguous=include_ambiguous
            )
        except SpoolLockedError:
            total.busy.append(path)
            continue
        total.add(report)
    return total


async def replay_spool(
    directory: str,
    *,
    producer_args: Mapping[str, Any],
    include_ambiguous: bool = False,
    window: int = 4,
) -> ReplayReport:
    """Resend the spool in `directory` through a `Producer(**producer_args)`; see the module
    doc. Raises `SpoolLockedError`, `NotASpoolError`, OSError, and the producer's fatal
    `FirehoseError` (the target is unusable: nothing more is sent)."""
    log = SegmentLog(directory, kind=KIND_DEAD_LETTER)
    recovery = await asyncio.to_thread(log.open)
    try:
        if KIND_DURABLE in recovery.kinds:
            raise NotASpoolError(
                f"{directory} is a --durable log, not a dead-letter spool: `ingest run "
                f"--durable --durable-dir {directory}` resends it"
            )
        journal = ReplayJournal(directory)
        delivered_before = await asyncio.to_thread(journal.load)
        try:
            report = ReplayReport(directory, quarantined=len(recovery.quarantined), logs=1)
            todo, present = _select(recovery.pending, delivered_before, include_ambiguous, report)
            if todo:
                await _send(todo, producer_args, journal, report, window)
            resolved = journal.delivered
            lwm = recovery.lwm
            while lwm < recovery.next_seq and (lwm in resolved or lwm not in present):
                lwm += 1
            report.segments_deleted = await asyncio.to_thread(log.resolve, lwm)
            await asyncio.to_thread(journal.compact, lwm)
        finally:
            journal.close()
    finally:
        log.close()
    return report


def _select(
    pending: Sequence[tuple[int, list[bytes]]],
    delivered: set[int],
    include_ambiguous: bool,
    report: ReplayReport,
) -> tuple[list[tuple[int, SpooledRecord]], set[int]]:
    todo: list[tuple[int, SpooledRecord]] = []
    present: set[int] = set()
    for first, records in pending:
        for offset, raw in enumerate(records):
            seq = first + offset
            present.add(seq)
            report.in_spool += 1
            if seq in delivered:
                report.already_delivered += 1
                continue
            try:
                entry = decode_entry(raw)
            except ValueError:
                report.unreadable += 1
                continue
            if entry.maybe_stored and not include_ambiguous:
                report.skipped_ambiguous += 1
                continue
            todo.append((seq, entry))
    return todo, present


async def _send(
    todo: list[tuple[int, SpooledRecord]],
    producer_args: Mapping[str, Any],
    journal: ReplayJournal,
    report: ReplayReport,
    window: int,
) -> None:
    failed_reasons: dict[str, int] = report.failed

    def count_failures(failed: Sequence[FailedRecord]) -> None:
        for record in failed:
            failed_reasons[record.reason] = failed_reasons.get(record.reason, 0) + 1

    slots = asyncio.Semaphore(window)
    tasks: set[asyncio.Task[None]] = set()
    async with Producer(**producer_args, on_failure=count_failures) as producer:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            await slots.acquire()
            receipts = await producer.put_many([entry.data for _, entry in chunk])
            report.sent += len(chunk)
            task = asyncio.create_task(_journal_when_settled(chunk, receipts, journal, report))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(lambda _: slots.release())
        if tasks:
            await asyncio.gather(*tasks)


async def _journal_when_settled(
    chunk: list[tuple[int, SpooledRecord]],
    receipts: Receipts,
    journal: ReplayJournal,
    report: ReplayReport,
) -> None:
    await receipts.wait()
    delivered = [
        seq for (seq, _), receipt in zip(chunk, receipts, strict=True) if receipt.failure is None
    ]
    await asyncio.to_thread(journal.append, delivered)
    report.delivered += len(delivered)
