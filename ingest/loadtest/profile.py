"""Rate profiles: the target rate at each instant and the events due since the start.

The generator asks `due(t)` (events that should exist t seconds after the start) rather than
integrating rates itself, so rounding never accumulates: after 10 minutes at 1,000 events/s
exactly 600,000 events are due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """`kind` constant: `rate`; ramp: `rate` to `ramp_to` over `ramp_s` seconds, then
    `ramp_to`; steps: `rate` plus `step` every `step_every_s` seconds, capped at `ramp_to`.
    Rates are events/s; a constant rate of 0 means unpaced (as fast as possible)."""

    kind: str
    rate: float
    ramp_to: float | None = None
    ramp_s: float | None = None
    step: float | None = None
    step_every_s: float = 10.0

    @property
    def unpaced(self) -> bool:
        return self.kind == "constant" and self.rate == 0

    def rate_at(self, t: float) -> float:
        """Target rate (events/s) t seconds after the start."""
        t = max(0.0, t)
        if self.kind == "ramp":
            assert self.ramp_to is not None
            assert self.ramp_s
            return self.rate + (self.ramp_to - self.rate) * min(1.0, t / self.ramp_s)
        if self.kind == "steps":
            assert self.step is not None
            rate = self.rate + self.step * math.floor(t / self.step_every_s)
            return rate if self.ramp_to is None else min(rate, self.ramp_to)
        return self.rate

    def due(self, t: float) -> float:
        """Events due from the start to t seconds after it (the integral of `rate_at`)."""
        t = max(0.0, t)
        if self.kind == "ramp":
            assert self.ramp_to is not None
            assert self.ramp_s
            slope = (self.ramp_to - self.rate) / self.ramp_s
            ramp = min(t, self.ramp_s)
            return self.rate * ramp + slope * ramp * ramp / 2 + self.ramp_to * max(0.0, t - ramp)
        if self.kind == "steps":
            return self._steps_due(t)
        return self.rate * t

    def _steps_due(self, t: float) -> float:
        assert self.step is not None
        every = self.step_every_s
        whole = math.floor(t / every)  # completed steps
        cap = math.inf if self.ramp_to is None else self.ramp_to
        # Steps before the cap is reached climb by `step`; later ones stay at the cap.
        climbing = whole if cap == math.inf else min(whole, _steps_below(self.rate, self.step, cap))
        done = climbing * self.rate + self.step * climbing * (climbing - 1) / 2
        done += (whole - climbing) * cap
        return done * every + self.rate_at(t) * (t - whole * every)

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "rate": self.rate}
        if self.kind == "ramp":
            out.update(ramp_to=self.ramp_to, ramp_s=self.ramp_s)
        if self.kind == "steps":
            out.update(step=self.step, step_every_s=self.step_every_s, ramp_to=self.ramp_to)
        return out


def _steps_below(start: float, step: float, cap: float) -> int:
    """How many steps have a rate below `cap` (those still climbing)."""
    if start >= cap:
        return 0
    return math.ceil((cap - start) / step)
