"""Real processes for the fault matrix and the soak: an `ingest emulator` with fault flags, an
`ingest run --endpoint-url ...` against it, and the reconciliation of what the generator produced
with what the emulator stored (by run id and seq) and what went to the dead-letter spool.

Used by tests/reliability/ and scripts/soak.py; nothing here patches the producer: everything
goes over loopback HTTP between separate processes, stopped with real signals.
"""

from __future__ import annotations

import gzip
import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
INGEST = [sys.executable, "-m", "ingest"]
SLOWLORIS = Path(__file__).with_name("slowloris.py")
#: Fast retries so the scenarios stay short; the deadline stays the product's default (120 s).
FAST_RETRIES = ["--backoff-base", "0.02", "--backoff-cap", "1.0"]


def _limit_fds(nofile: int | None) -> Any:
    if nofile is None:
        return None

    def preexec() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    return preexec


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        PYTHONUNBUFFERED="1",
    )
    for name in list(env):
        if name.startswith("INGEST_") or name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_FIREHOSE"):
            del env[name]
    return env


def _wait_for_line(path: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if needle in line:
                    return line
        if proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.returncode} before {needle!r}: {path}")
        time.sleep(0.05)
    raise RuntimeError(f"no {needle!r} in {path} within {timeout} s")


@dataclass
class EmulatorProcess:
    """`ingest emulator` in its own process, writing to `data_dir`; logs under `logs`."""

    data_dir: Path
    logs: Path
    flags: Sequence[str] = ()
    port: int = 0
    nofile: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    starts: int = 0

    def start(self) -> str:
        self.starts += 1
        self.logs.mkdir(parents=True, exist_ok=True)
        stdout = self.logs / f"emulator-{self.starts}.out"
        stderr = self.logs / f"emulator-{self.starts}.err"
        command = [*INGEST, "emulator", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        with stdout.open("wb") as out, stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                [*command, *self.flags],
                stdout=out,
                stderr=err,
                env=_env(),
                cwd=ROOT,
                preexec_fn=_limit_fds(self.nofile),
            )
        line = _wait_for_line(stdout, "emulator listening on", self.proc, 30)
        self.url = line.rsplit(" ", 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])  # a restart reuses it
        return self.url

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop (SIGTERM flushes every buffered record to disk); returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def stderr_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.logs.glob("emulator-*.err"))


@dataclass
class RunProcess:
    """`ingest run` against `endpoint_url` with JSON logs; stdout's last line is the summary."""

    endpoint_url: str
    logs: Path
    run_id: str
    spool_dir: Path
    flags: Sequence[str] = ()
    nofile: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    http_url: str = ""

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        command = [
            *INGEST, "run", "--endpoint-url", self.endpoint_url, "--run-id", self.run_id,
            "--log-format", "json", "--http-port", "0", *FAST_RETRIES,
            *spool_flags(self.spool_dir), *self.flags,
        ]  # fmt: skip
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=err,
                env=_env(),
                cwd=ROOT,
                preexec_fn=_limit_fds(self.nofile),
            )

    @property
    def stdout(self) -> Path:
        return self.logs / f"run-{self.run_id}.out"

    @property
    def stderr(self) -> Path:
        return self.logs / f"run-{self.run_id}.err"

    def wait_http(self, timeout: float = 30) -> str:
        assert self.proc is not None
        line = _wait_for_line(self.stderr, '"http_listening"', self.proc, timeout)
        self.http_url = str(orjson.loads(line)["url"])
        return self.http_url

    def wait(self, timeout: float = 120) -> dict[str, Any]:
        """Wait for the exit; the summary, with "exit_code" set to the real exit code."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        lines = [ln for ln in self.stdout.read_text().splitlines() if ln.startswith("{")]
        if not lines:
            tail = self.stderr.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ingest run exited {code} without a summary:\n{tail}")
        summary: dict[str, Any] = orjson.loads(lines[-1])
        summary["exit_code"] = code
        return summary


def spool_flags(spool_dir: Path) -> list[str]:
    """`--spool-dir DIR` once the dead-letter spool exists in this tree, else nothing."""
    return ["--spool-dir", str(spool_dir)] if _has_spool() else []


def _has_spool() -> bool:
    try:
        from ingest.service.keys import KEYS_BY_NAME
        from ingest.spool import deadletter  # noqa: F401
        from ingest.spool.log import SegmentLog  # noqa: F401
    except ImportError:
        return False
    return "spool_dir" in KEYS_BY_NAME


# -- reconciliation ------------------------------------------------------------------------


def _events(blob: bytes) -> list[dict[str, Any]]:
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    return [orjson.loads(line) for line in blob.splitlines() if line.strip()]


def stored_events(data_dir: Path) -> Counter[tuple[str, int]]:
    """(run id, seq) -> times stored, over every object the emulator wrote (temporary files
    of an unfinished write are skipped)."""
    counts: Counter[tuple[str, int]] = Counter()
    if not data_dir.exists():
        return counts
    for path in data_dir.rglob("*"):
        if not path.is_file() or path.name.startswith(".") or path.suffix in (".part", ".tmp"):
            continue
        for event in _events(path.read_bytes()):
            counts[(str(event["producer"]), int(event["seq"]))] += 1
    return counts


def spooled_events(spool_dir: Path) -> Counter[tuple[str, int]] | None:
    """(run id, seq) -> times dead-lettered, or None when this tree has no spool reader."""
    if not _has_spool() or not spool_dir.exists():
        return None if not _has_spool() else Counter()
    from ingest.spool.deadletter import read_spool  # read-only: one log per run id below

    counts: Counter[tuple[str, int]] = Counter()
    for entry in read_spool(spool_dir):
        for event in _events(entry.data):
            counts[(str(event["producer"]), int(event["seq"]))] += 1
    return counts


@dataclass
class Accounting:
    """One scenario's books: what was generated, where each event ended, what is missing."""

    events: int
    delivered: int  # distinct seqs found in the emulator's objects
    spooled: int  # distinct seqs in the spool (or the summary's failed count without a spool)
    duplicates: int  # extra stored copies
    duplicates_possible: int  # what the producer counted as possibly duplicated
    lost: int
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (
            f"{name}: events={self.events} delivered={self.delivered} spooled={self.spooled} "
            f"duplicates={self.duplicates} lost={self.lost}"
        )


def reconcile(run_id: str, summary: dict[str, Any], data_dir: Path, spool_dir: Path) -> Accounting:
    """Every generated seq must be stored by the emulator or spooled; the producer's counts must
    agree with what was found."""
    generated = int(summary["generated"])
    stored = {seq: n for (rid, seq), n in stored_events(data_dir).items() if rid == run_id}
    spool = spooled_events(spool_dir)
    notes: list[str] = []
    if spool is None:
        spooled_seqs: set[int] = set()
        spooled = int(summary.get("failed", 0))
        notes.append("no spool in this tree: spooled = the summary's failed count")
    else:
        spooled_seqs = {seq for (rid, seq) in spool if rid == run_id}
        spooled = len(spooled_seqs)
    strays = sorted(seq for seq in stored if not 0 <= seq < generated)
    if strays:
        notes.append(f"stored seqs never generated: {strays[:10]}")
    accounted = set(stored) | spooled_seqs
    if spool is None:
        lost = max(0, generated - len(set(stored)) - spooled)
    else:
        lost = sum(1 for seq in range(generated) if seq not in accounted)
    return Accounting(
        events=generated,
        delivered=len(stored),
        spooled=spooled,
        duplicates=sum(n - 1 for n in stored.values()),
        duplicates_possible=int(summary.get("duplicates_possible", 0)),
        lost=lost,
        summary=summary,
        notes=notes,
    )


def slowloris(host: str, port: int, clients: int, logs: Path, name: str) -> subprocess.Popen[bytes]:
    """Start `clients` slow clients (a byte a second, never finishing a request head) against
    host:port in their own process (its fd limit raised to fit them)."""
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"slowloris-{name}.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, str(SLOWLORIS), host, str(port), str(clients)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=_limit_fds(clients + 256),
        )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a helper process we started (by its own handle), waiting for it."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
