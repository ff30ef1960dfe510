"""The function's clock: the wall clock in production.

Waiting is the provider's main job, so every wait goes through here and nowhere else. The local cloud runs
the function in its own process and installs its virtual clock with :func:`install`; nothing in the
function reads a setting that changes how time passes.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


_installed: Clock = SystemClock()


def current() -> Clock:
    return _installed


def install(clock: Clock) -> Clock:
    """Use ``clock`` from now on (the local cloud's virtual clock); returns the one it replaces."""
    global _installed
    previous, _installed = _installed, clock
    return previous
