"""`ingest run --durable` survives kill -9: at least 50 kills at random moments, each restart
resuming, then every generated event is delivered (duplicates counted, lost = 0).

Design. Two lanes run side by side against one `ingest emulator` process (two cores: twice the
kills per second of wall time); each lane has its own run id, durable log and spool. A lane
starts `ingest run --durable --run-id R` and kills it with SIGKILL at a random moment: a
quarter of the kills at a uniform time from spawn (start-up, log recovery, resending), the rest
at a uniform time after generation began. Every restart keeps the run id; the service resumes
the seqs after the newest event in its log (the `durable_resumed` line says where), so one run
id carries one gapless seq range across all lives. The last life ends by itself (--count).

Oracle, per lane:
- no hole: every seq from 0 to the highest the last life generated is stored (lost = 0);
- no lost tail: just before each kill the test reads ``ingest_events_generated_total`` (events
  whose put() had returned, so accepted into the log); the next life must resume at least that
  far past where the killed one resumed, else accepted events were dropped and regenerated;
- no seq is stored with two different event ids (a regenerated seq would hide a loss);
- duplicates (the same event stored twice: resent from the log after a crash) are counted;
- nothing was spooled (the emulator has no faults here) and the last life exits 0.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from harness import INGEST, ROOT, EmulatorProcess, _env, _events

from ingest.spool.deadletter import read_spool

KILLS = 50
LANES = 2
RATE = "4000"  # events/s per lane: enough to be mid-write at most kills, small enough for 2 cores
_GENERATED = re.compile(rb"^ingest_events_generated_total (\d+)", re.MULTILINE)


@dataclass
class Lane:
    name: str
    tmp: Path
    endpoint_url: str
    rng: random.Random
    lives: int = 0
    resumes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return f"kill9-{self.name}"

    def command(self, *extra: str) -> list[str]:
        sync = "interval" if self.name.endswith("1") else "group"  # both modes are exercised
        return [
            *INGEST, "run", "--endpoint-url", self.endpoint_url, "--run-id", self.run_id,
            "--durable", "--durable-dir", str(self.tmp / "durable"), "--durable-sync", sync,
            "--spool-dir", str(self.tmp / "spool"), "--rate", RATE, "--http-port", "0",
            "--log-format", "json", "--backoff-base", "0.02", "--backoff-cap", "0.5", *extra,
        ]  # fmt: skip

    def life(self, *, kill: bool) -> None:
        """One process life; killed at a random moment, or (last) left to finish."""
        self.lives += 1
        err = self.tmp / f"life-{self.lives}.err"
        out = self.tmp / f"life-{self.lives}.out"
        extra = () if kill else ("--count", "3000")
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                self.command(*extra), stdout=stdout, stderr=stderr, env=_env(), cwd=ROOT
            )
        try:
            if kill:
                generated = self._kill_at_random(proc, err)
            else:
                proc.wait(timeout=90)
                generated = 0
                lines = [ln for ln in out.read_text().splitlines() if ln.startswith("{")]
                self.final = orjson.loads(lines[-1]) if lines else {}
                self.final["exit_code"] = proc.returncode
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        resumed = _resumed_at(err)
        if resumed is not None:
            if self.resumes and resumed < self.resumes[-1]:
                self.problems.append(f"life {self.lives} resumed at {resumed} < {self.resumes}")
            self.resumes.append(resumed + generated)  # accepted before the kill: a floor
        elif generated and self.resumes:  # earlier lives accepted events: it must resume
            self.problems.append(f"life {self.lives} generated without a durable_resumed line")
        elif generated:
            self.resumes.append(generated)

    def _kill_at_random(self, proc: subprocess.Popen[bytes], err: Path) -> int:
        """SIGKILL at a random moment; the events this life had accepted just before it."""
        if self.rng.random() < 0.25:
            time.sleep(self.rng.uniform(0.0, 2.5))  # anywhere: start-up, recovery, resending
        else:
            _wait_for(err, b'"http_listening"', proc, timeout=60)
            deadline = time.monotonic() + 30
            while _scrape_generated(err) == 0 and time.monotonic() < deadline:
                time.sleep(0.02)  # until generation has begun
            time.sleep(self.rng.uniform(0.0, 0.5))
        generated = _scrape_generated(err)
        proc.send_signal(signal.SIGKILL)
        return generated


def _wait_for(path: Path, needle: bytes, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in path.read_bytes():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ingest run exited {proc.returncode}: {path.read_text()[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"no {needle!r} in {path} within {timeout} s")


def _scrape_generated(err: Path) -> int:
    """ingest_events_generated_total of the live process, 0 if its server is not up yet."""
    for line in err.read_bytes().splitlines():
        if b'"http_listening"' in line:
            url = orjson.loads(line)["url"]
            try:
                with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:
                    found = _GENERATED.search(response.read())
            except OSError:
                return 0
            return int(found.group(1)) if found else 0
    return 0


def _resumed_at(err: Path) -> int | None:
    for line in err.read_bytes().splitlines():
        if b'"durable_resumed"' in line:
            return int(orjson.loads(line)["next_seq"])
    return None


def _stored(data_dir: Path) -> dict[str, dict[int, Counter[str]]]:
    """run id -> seq -> event id -> times stored."""
    found: dict[str, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.name.startswith(".") and path.suffix not in (".part",):
            for event in _events(path.read_bytes()):
                found[str(event["producer"])][int(event["seq"])][str(event["id"])] += 1
    return found


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    emulator = EmulatorProcess(data_dir=tmp_path / "emulator", logs=tmp_path / "logs")
    url = emulator.start()
    seed = random.randrange(1 << 30)
    lanes = [
        Lane(f"lane{i}", tmp_path / f"lane{i}", url, random.Random(seed + i)) for i in range(LANES)
    ]
    for lane in lanes:
        lane.tmp.mkdir()
    started = time.monotonic()

    def drive(lane: Lane) -> None:
        try:
            for _ in range(KILLS // LANES):
                lane.life(kill=True)
            lane.life(kill=False)
        except Exception as exc:  # reported by the assertions below, with the seed
            lane.problems.append(f"life {lane.lives}: {exc!r}")

    try:
        threads = [threading.Thread(target=drive, args=(lane,)) for lane in lanes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=1200)  # ~1 min on an idle 2-core machine; far more under load
        assert not any(thread.is_alive() for thread in threads), "lanes did not finish"
    finally:
        assert emulator.stop() == 0  # SIGTERM: the emulator flushes what it holds
    stored = _stored(tmp_path / "emulator")
    events = delivered = duplicates = lost = regenerated = spooled = 0
    for lane in lanes:
        assert lane.problems == [], f"seed {seed}: {lane.problems}"
        assert lane.final.get("exit_code") == 0, f"seed {seed}: last life {lane.final}"
        seqs = stored[lane.run_id]
        highest = max(seqs)
        assert lane.resumes
        assert highest + 1 >= lane.resumes[-1]
        missing = [seq for seq in range(highest + 1) if seq not in seqs]
        events += highest + 1
        delivered += len(seqs)
        lost += len(missing)
        regenerated += sum(len(ids) > 1 for ids in seqs.values())
        duplicates += sum(sum(ids.values()) - 1 for ids in seqs.values())
        spooled += len(read_spool(lane.tmp / "spool"))
        assert missing == [], f"seed {seed}: {lane.run_id} lost seqs {missing[:20]}"
    kills = sum(lane.lives - 1 for lane in lanes)
    print(
        f"durable kill -9 x{kills} (seed {seed}, {time.monotonic() - started:.0f} s): "
        f"events={events} delivered={delivered} spooled={spooled} duplicates={duplicates} "
        f"lost={lost}"
    )
    assert kills >= 50
    assert regenerated == 0
    assert spooled == 0
