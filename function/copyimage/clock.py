"""Time as the handler sees it.

In production this is the wall clock. The local cloud can run time faster (COPYIMAGE_TIME_SCALE) so
that an hour-long copy plays out in seconds; every stand-in follows the same formula:
virtual time = epoch + (wall time - epoch) * scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Clock:
    scale: float = 1.0
    epoch: float = field(default=0.0)

    def now(self) -> float:
        wall = time.time()
        return self.epoch + (wall - self.epoch) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)
