"""A clock that can run faster than the wall clock, so a long copy plays out in seconds.

Every stand-in and the handler share one formula: virtual time = epoch + (wall time - epoch) * scale.
With scale 1 it is the wall clock. The handler reads the same two numbers from
COPYIMAGE_TIME_SCALE and COPYIMAGE_TIME_EPOCH, which the FC stand-in passes to the function.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self, scale: float = 1.0, epoch: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = float(scale)
        self.epoch = time.time() if epoch is None else float(epoch)

    def now(self) -> float:
        """Virtual seconds since the Unix epoch."""
        return self.epoch + (time.time() - self.epoch) * self.scale

    def real_seconds(self, virtual_seconds: float) -> float:
        """How long a virtual interval lasts on the wall clock."""
        return max(0.0, virtual_seconds) / self.scale

    def sleep(self, virtual_seconds: float) -> None:
        time.sleep(self.real_seconds(virtual_seconds))

    def function_environment(self) -> dict[str, str]:
        """What the function needs to follow this clock."""
        return {"COPYIMAGE_TIME_SCALE": repr(self.scale), "COPYIMAGE_TIME_EPOCH": repr(self.epoch)}
