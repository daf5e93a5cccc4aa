"""The quotas and faults in effect, in words, for the emulator's start-up lines.

Someone reading a load test's numbers must see at once whether the emulator was throttling or
failing on purpose: `ingest emulator` prints these two lines (on stderr, with its other notes)
right after it starts listening.
"""

from __future__ import annotations

from ingest.bounded_http import ServerLimits, fd_soft_limit
from ingest.emulator.options import FaultOptions, QuotaOptions


def describe_quotas(quotas: QuotaOptions) -> str:
    """``emulator quotas per stream: 500,000 records/s, 2,000 requests/s, 5 MiB/s``."""
    if not quotas.enabled:
        return "emulator quotas per stream: none (unlimited)"
    parts = []
    if quotas.records_per_s is not None:
        parts.append(f"{quotas.records_per_s:,} records/s")
    if quotas.requests_per_s is not None:
        parts.append(f"{quotas.requests_per_s:,} requests/s")
    if quotas.bytes_per_s is not None:
        parts.append(f"{_size(quotas.bytes_per_s)}/s")
    return "emulator quotas per stream: " + ", ".join(parts)


def describe_faults(faults: FaultOptions) -> str:
    """``emulator faults: record failures 10%, latency 0.2 s, seed 7`` or ``... none``."""
    if not faults.enabled:
        return "emulator faults: none"
    parts = [
        f"{what} {rate * 100:.3g}%"
        for what, rate in (
            ("record failures", faults.record_failure_rate),
            ("call errors", faults.call_error_rate),
            ("connection resets", faults.reset_rate),
            ("accepted-then-500 calls", faults.accepted_error_rate),
        )
        if rate
    ]
    if faults.latency_s or faults.latency_jitter_s:
        jitter = f" + up to {faults.latency_jitter_s:g} s" if faults.latency_jitter_s else ""
        parts.append(f"latency {faults.latency_s:g} s{jitter} per call")
    seed = "none (not reproducible)" if faults.seed is None else str(faults.seed)
    return "emulator faults: " + ", ".join(parts) + f"; seed {seed}"


def describe_bounds(limits: ServerLimits) -> str:
    """``emulator server bounds: 512 connections (open-file limit 1,024), ...``."""
    return (
        f"emulator server bounds: {limits.connection_cap():,} connections (open-file limit "
        f"{fd_soft_limit():,}), request head within {limits.header_timeout_s:g} s, body within "
        f"{limits.body_timeout_s:g} s, {_size(limits.max_buffered_bytes)} of bodies read at once"
    )


def _size(nbytes: int) -> str:
    mib = nbytes / (1024 * 1024)
    return f"{mib:g} MiB" if nbytes % 1024 == 0 and mib >= 1 else f"{nbytes:,} bytes"
