"""Timestamps, formatted one way everywhere: UTC, RFC 3339, with a Z."""

from __future__ import annotations

import time

_cache: list[object] = [None, ""]  # (whole second, its formatted prefix): strftime once a second


def iso(moment: float | None = None, digits: int = 3) -> str:
    """`moment` (epoch seconds, default now) as 2026-01-02T03:04:05.678Z; `digits` of fraction (3 or 6).

    Hot: the Coder log sender formats one stamp per line it sends and build.log one per line it writes,
    so the whole-second prefix is cached and each precision has its own literal format."""
    if moment is None:
        moment = time.time()
    second = int(moment)
    if _cache[0] != second:
        _cache[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    if digits == 6:
        return f"{_cache[1]}.{int(moment * 1_000_000) % 1_000_000:06d}Z"
    return f"{_cache[1]}.{int(moment * 1000) % 1000:03d}Z"
