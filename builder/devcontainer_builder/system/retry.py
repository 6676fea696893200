"""One back-off for everything that retries (git's network operations, the Coder log sender, waiting
for the engine): capped exponential delays with jitter, and a sleep that something can cut short."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator


def delays(start: float, cap: float, *, jitter: bool = True) -> Iterator[float]:
    """start, 2*start, 4*start ... capped at cap; each scaled by a random 0.5-1.5 when jitter is on
    (so a fleet of workspaces that failed together does not retry together)."""
    delay = start
    while True:
        yield delay * random.uniform(0.5, 1.5) if jitter else delay  # noqa: S311 - jitter, not crypto
        delay = min(delay * 2, cap)


def sleep(seconds: float, stop: threading.Event | None = None) -> bool:
    """Sleep, unless `stop` is set first; True when the sleep was cut short."""
    if stop is None:
        time.sleep(seconds)  # interruptible: SIGTERM's handler raises through it
        return False
    return stop.wait(seconds)
