"""The paced generator: events in chunks, as many as the profile says are due by now.

At every wake-up (at most every 10 ms) it computes the events due since the start from the
profile (never by adding up rates, so no rounding drifts), makes the missing ones in chunks of
at most `MAX_CHUNK` with one `EventGenerator.batch` call each, and hands each chunk to the
producer with one `put_many`. When the producer pushes back (its queue is full because the
target is slower than the profile), `put_many` waits and the generator falls behind; at most
`CATCH_UP_S` seconds of target are made up afterwards, the rest is a shortfall that the report
shows per second. Nothing here is per event except the bytes themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from typing import Protocol

from ingest.errors import IngestError, PutTimeoutError
from ingest.events import EventGenerator
from ingest.loadtest.profile import Profile
from ingest.loadtest.recorder import Recorder
from ingest.producer import Receipts

MAX_CHUNK = 1000  # events per put_many: big enough to amortise, small enough to yield often
MIN_SLEEP_S = 0.005
MAX_SLEEP_S = 0.05  # a stop request or the end of a step is noticed within this
CATCH_UP_S = 1.0  # the most target (in seconds of the current rate) made up after a stall
PUT_SLICE_S = 0.25  # longest wait for queue room before looking at the stop flag again


class Sink(Protocol):
    async def put_many(self, records: list[bytes], timeout: float | None = None) -> Receipts: ...


class PacedGenerator:
    """Feeds `sink` from `events` following a `Profile`; counts into `recorder`."""

    def __init__(
        self,
        sink: Sink,
        events: EventGenerator,
        recorder: Recorder,
        stop: asyncio.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._events = events
        self._recorder = recorder
        self._stop = stop
        self._clock = clock
        self.refused: IngestError | None = None  # set when the producer stopped taking records

    async def run(
        self, profile: Profile, *, count: int | None = None, duration_s: float | None = None
    ) -> str:
        """Generate until `count` events, `duration_s` seconds, a stop request or a refusal;
        returns why it ended: "count", "duration", "signal" or "producer_refused"."""
        rec = self._recorder
        start = self._clock()
        base_due = rec.target_due
        made = 0
        skipped = 0.0
        try:
            while True:
                t = self._clock() - start
                if self._stop.is_set():
                    return "signal"
                if duration_s is not None and t >= duration_s:
                    if profile.unpaced:
                        return "duration"
                    # The events due by the end that are not made yet (the last wake-up came
                    # a little late): make them, so the test's total is exactly its target.
                    due = profile.due(duration_s)
                    rec.target_due = base_due + due
                    # Only one chunk: more owed than that is a shortfall, not a reason to
                    # run past the end.
                    last = min(int(due - skipped - made), MAX_CHUNK)
                    if count is not None:
                        last = min(last, count - made)
                    if last > 0:
                        accepted = await self._put(self._events.batch(last))
                        made += accepted
                        rec.generated += accepted
                    return "duration"
                left = None if count is None else count - made
                if left == 0:
                    return "count"
                rate = profile.rate_at(t)
                rec.target_rate = rate
                if profile.unpaced:
                    n = MAX_CHUNK
                else:
                    due = profile.due(t)
                    rec.target_due = base_due + due
                    owed = due - skipped - made
                    cap = max(rate * CATCH_UP_S, MAX_CHUNK)
                    if owed > cap:  # too far behind: the excess is a shortfall, not a burst
                        skipped += owed - cap
                        owed = cap
                    n = int(owed)
                    if n <= 0:
                        wait = (1.0 - owed) / rate if rate > 0 else MAX_SLEEP_S
                        if duration_s is not None:
                            wait = min(wait, duration_s - t)
                        await self._sleep(min(MAX_SLEEP_S, max(MIN_SLEEP_S, wait)))
                        continue
                n = min(n, MAX_CHUNK) if left is None else min(n, MAX_CHUNK, left)
                accepted = await self._put(self._events.batch(n))
                made += accepted
                rec.generated += accepted
                if profile.unpaced:
                    rec.target_due = rec.generated
                if self.refused is not None:
                    return "producer_refused"
                await asyncio.sleep(0)  # let the sender run between chunks
        finally:
            rec.target_rate = 0.0

    async def pause(self, seconds: float) -> None:
        """Generate nothing for `seconds` (or until a stop request)."""
        self._recorder.target_rate = 0.0
        await self._sleep(seconds)

    async def _put(self, records: list[bytes]) -> int:
        """Hand a chunk over; returns how many were accepted. Waits for room in slices so a
        stop request is noticed; on stop the rest of the chunk is dropped (never accepted)."""
        offset = 0
        while offset < len(records):
            try:
                receipts = await self._sink.put_many(
                    records[offset:] if offset else records, timeout=PUT_SLICE_S
                )
            except PutTimeoutError as exc:
                offset += exc.accepted  # those have no receipts: not in the ack latency
                if self._stop.is_set():
                    return offset
                continue
            except IngestError as exc:
                self.refused = exc
                return offset
            self._recorder.track(self._clock(), receipts, len(records) - offset)
            return len(records)
        return offset

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0 or math.isnan(seconds):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
