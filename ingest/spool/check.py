"""`ingest spool check DIR`: what a spool or durable log holds, and whether it is intact.

Read-only: nothing is cut, moved or locked (it can look at the log of a running process; what
that process is writing may then show as a torn tail). Damaged means any of: a torn tail (cut
at the next open), a corrupt segment (quarantined at the next open), segments already in
quarantine/, a checkpoint file with no valid slot, spool records that are not spool entries.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ingest.spool.deadletter import decode_entry
from ingest.spool.journal import JOURNAL, read_journal
from ingest.spool.log import (
    CHECKPOINT,
    HEADER_BYTES,
    KIND_NAMES,
    QUARANTINE,
    decode_frames,
    decode_header,
    parse_segment_name,
    read_checkpoint,
)

__all__ = ["CheckReport", "check_log"]


@dataclass
class SegmentReport:
    name: str
    kind: str
    bytes: int
    records: int
    first_seq: int | None
    last_seq: int | None
    problem: str | None = None
    torn: bool = False


@dataclass
class CheckReport:
    directory: str
    kind: str = "empty"
    lwm: int = 0
    checkpoint: str = "none"  # "none", "valid (gen N)", "damaged"
    segments: list[SegmentReport] = field(default_factory=list)
    pending: int = 0  # records at or above the checkpoint
    by_reason: Counter[str] = field(default_factory=Counter)
    maybe_stored: int = 0
    unreadable: int = 0
    journaled: int = 0  # pending records an interrupted replay already delivered
    quarantined: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "kind": self.kind,
            "intact": self.intact,
            "checkpoint": self.checkpoint,
            "lwm": self.lwm,
            "pending": self.pending,
            "by_reason": dict(self.by_reason),
            "maybe_stored": self.maybe_stored,
            "journaled": self.journaled,
            "segments": [vars(segment) for segment in self.segments],
            "quarantined": self.quarantined,
            "problems": self.problems,
        }

    def render(self) -> str:
        lines = [
            f"{self.directory}: {self.kind}, checkpoint {self.checkpoint}, mark {self.lwm}",
            f"  segments   {len(self.segments):>10,}  "
            f"({sum(s.bytes for s in self.segments):,} bytes)",
            f"  pending    {self.pending:>10,}  records at or above the mark",
        ]
        if self.by_reason:
            reasons = ", ".join(f"{r}: {n:,}" for r, n in sorted(self.by_reason.items()))
            lines.append(f"  reasons    {reasons}")
            lines.append(f"  ambiguous  {self.maybe_stored:>10,}  (may already be stored)")
        if self.journaled:
            lines.append(f"  journaled  {self.journaled:>10,}  (delivered by an unfinished replay)")
        for segment in self.segments:
            seqs = (
                f"seq {segment.first_seq}..{segment.last_seq}"
                if segment.first_seq is not None
                else "no records"
            )
            state = f"  {segment.problem}" if segment.problem else ""
            lines.append(f"    {segment.name}  {segment.records:,} records, {seqs}{state}")
        if self.quarantined:
            lines.append(f"  quarantine {len(self.quarantined):>10,}  segment(s) in {QUARANTINE}/")
        for problem in self.problems:
            lines.append(f"  DAMAGED: {problem}")
        lines.append(f"  result: {'intact' if self.intact else 'damaged'}")
        return "\n".join(lines)


def check_log(directory: str) -> CheckReport:
    """Inspect `directory` (must exist). Raises OSError when it cannot be read."""
    report = CheckReport(directory)
    names = os.listdir(directory)
    if CHECKPOINT in names:
        with open(os.path.join(directory, CHECKPOINT), "rb") as file:
            found = read_checkpoint(file.read())
        if found is None:
            report.checkpoint = "damaged"
            report.problems.append("no valid checkpoint slot")
        else:
            report.checkpoint = f"valid (gen {found[0]})"
            report.lwm = found[1]
    kinds: set[str] = set()
    pending: list[bytes] = []
    pending_seqs: list[int] = []
    for (base, _), name in sorted(
        (parsed, name) for name in names if (parsed := parse_segment_name(name)) is not None
    ):
        with open(os.path.join(directory, name), "rb") as file:
            data = file.read()
        header = decode_header(data)
        if header is None or header[1] != base:
            torn = len(data) < HEADER_BYTES
            segment = SegmentReport(name, "?", len(data), 0, None, None, "bad header", torn)
            report.segments.append(segment)
            report.problems.append(f"{name}: {'torn' if torn else 'damaged'} segment header")
            continue
        kind = KIND_NAMES.get(header[0], f"unknown kind {header[0]}")
        kinds.add(kind)
        scan = decode_frames(data, HEADER_BYTES, base)
        records = sum(len(group) for _, group in scan.groups)
        first = scan.groups[0][0] if scan.groups else None
        last = scan.groups[-1][0] + len(scan.groups[-1][1]) - 1 if scan.groups else None
        segment = SegmentReport(name, kind, len(data), records, first, last)
        if scan.problem is not None:
            what = "torn tail" if scan.torn else "corrupt"
            segment.problem = f"{what} at byte {scan.good_end}: {scan.problem}"
            segment.torn = scan.torn
            report.problems.append(f"{name}: {segment.problem}")
        report.segments.append(segment)
        for group_first, group in scan.groups:
            for offset, record in enumerate(group):
                seq = group_first + offset
                if seq >= report.lwm:
                    pending.append(record)
                    pending_seqs.append(seq)
    report.kind = " + ".join(sorted(kinds)) if kinds else "empty"
    # A rewrite after a failed fsync holds some seqs twice: count each once.
    unique = dict(zip(pending_seqs, pending, strict=True))
    report.pending = len(unique)
    if "dead-letter spool" in kinds:
        for record in unique.values():
            try:
                entry = decode_entry(record)
            except ValueError:
                report.unreadable += 1
                continue
            report.by_reason[entry.reason] += 1
            report.maybe_stored += entry.maybe_stored
        if report.unreadable:
            report.problems.append(f"{report.unreadable} record(s) are not spool entries")
    if JOURNAL in names:
        with open(os.path.join(directory, JOURNAL), "rb") as file:
            delivered, _ = read_journal(file.read())
        report.journaled = len(delivered & unique.keys())
    quarantine = os.path.join(directory, QUARANTINE)
    if os.path.isdir(quarantine):
        report.quarantined = sorted(os.listdir(quarantine))
        if report.quarantined:
            report.problems.append(
                f"{len(report.quarantined)} corrupt segment(s) kept in {QUARANTINE}/"
            )
    return report
