"""Timestamps, formatted one way everywhere: UTC, RFC 3339, with a Z."""

from __future__ import annotations

import time

_second_cache: list[object] = [None, ""]  # (whole second, its formatted prefix): strftime once a second


def _prefix(second: int) -> str:
    if _second_cache[0] != second:
        _second_cache[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return str(_second_cache[1])


def iso(moment: float | None = None, digits: int = 3) -> str:
    """`moment` (epoch seconds, default now) as 2026-01-02T03:04:05.678Z; `digits` of fraction (3 or 6).

    The whole-second prefix is cached: the Coder log sender formats one stamp per line it sends."""
    if moment is None:
        moment = time.time()
    scale = 10**digits
    fraction = int(moment * scale) % scale
    return f"{_prefix(int(moment))}.{fraction:0{digits}d}Z"
