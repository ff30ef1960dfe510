"""Bounded retries with full-jitter exponential backoff: the one retry loop every outbound call uses."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from copyimage import clock

T = TypeVar("T")

BASE_SECONDS = 0.5
CAP_SECONDS = 8.0


def worst_case_seconds(attempts: int, per_try_seconds: float) -> float:
    """The longest ``with_retries`` can take when every try runs into its timeout."""
    pauses = sum(min(CAP_SECONDS, BASE_SECONDS * 2.0**attempt) for attempt in range(attempts - 1))
    return attempts * per_try_seconds + pauses


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int,
    is_transient: Callable[[Exception], bool],
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> T:
    """Run ``call``; retry it after a transient error, at most ``attempts`` tries in all."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if attempt >= attempts or not is_transient(error):
                raise
            pause = random.uniform(0, min(CAP_SECONDS, BASE_SECONDS * 2 ** (attempt - 1)))
            if on_retry is not None:
                on_retry(attempt, error, pause)
            clock.current().sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
