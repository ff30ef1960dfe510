"""How a copy's progress moves over time: the progress models the ECS stand-in, the tests and the benchmarks share.

ECS documents ``Progress`` as a percent string and nothing about how it moves; copies are seen to sit at 0% in a
queue first, then move at uneven rates. A :class:`CopyPlan` is one such course; nothing here talks HTTP, so a
pure unit test or a benchmark can use it without the stand-ins.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class CopyPlan:
    """How one copy moves: ``queue_seconds`` at 0% first, then (seconds, percent) segments adding up to 100%."""

    queue_seconds: float = 0.0
    segments: tuple[tuple[float, float], ...] = ((60.0, 100.0),)

    @classmethod
    def steady(cls, seconds: float) -> CopyPlan:
        return cls(0.0, ((float(seconds), 100.0),))

    @classmethod
    def uneven(cls, seconds: float, seed: int, spread: float = 0.3) -> CopyPlan:
        """A copy of ``seconds`` as copies are seen to move: up to 15% of it queued at 0%, then 3 to 6
        stretches of random length, each at a steady rate of 1 +- ``spread`` times the average (seeded)."""
        rng = random.Random(seed)
        queue = seconds * rng.uniform(0.0, 0.15)
        count = rng.randint(3, 6)
        cuts = sorted(rng.uniform(0.0, 1.0) for _ in range(count - 1))
        lengths = [(b - a) * (seconds - queue) for a, b in zip([0.0, *cuts], [*cuts, 1.0], strict=True)]
        gains = [length * rng.uniform(1.0 - spread, 1.0 + spread) for length in lengths]
        total = sum(gains)
        return cls(queue, tuple((length, 100.0 * gain / total) for length, gain in zip(lengths, gains, strict=True)))

    @classmethod
    def about(cls, minutes: float, seed: int) -> CopyPlan:
        """An uneven copy of about ``minutes``: 94 to 99% of it (seeded), so that a strategy looking at round
        intervals gets no lucky hits, and a 720-minute copy stays within ROS's 12-hour Timeout."""
        return cls.uneven(minutes * 60.0 * random.Random(seed).uniform(0.94, 0.99), seed)

    @property
    def duration(self) -> float:
        return self.queue_seconds + sum(seconds for seconds, _ in self.segments)

    def percent(self, elapsed: float) -> float:
        """Progress after ``elapsed`` seconds, 0.0 to 100.0."""
        left = elapsed - self.queue_seconds
        done = 0.0
        for seconds, gain in self.segments:
            if left <= 0:
                break
            if left < seconds:
                return done + gain * left / seconds
            left -= seconds
            done += gain
        return min(100.0, done) if left > 0 or elapsed >= self.duration else done
