"""Waiting for a copy: when to look again, how long one invocation may wait, and what a later
invocation needs to pick the wait up (the continuation payload).

A copy can take hours. Rather than sleep through it, the function looks again after a delay that
follows the copy's progress, and between looks it is not running at all: it schedules an
asynchronous, delayed invocation of itself carrying the original request and this state.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace

from copyimage.errors import CopyFailed, EcsError, InvalidRequest
from copyimage.images import ImageView
from copyimage.properties import WAITER_TAG

CONTINUATION_KEY = "CopyImageContinuation"
CONTINUATION_VERSION = 1
MIN_CHECK_DELAY = 2.0  # the first looks come within seconds, so a quick copy answers quickly
MAX_CHECK_DELAY = 3600.0  # x-fc-async-delay's upper bound
DETECTION_FRACTION = 0.01  # near the end, look every 1% of the time the copy has taken so far
ESTIMATE_SHARE = 0.8  # look again after 80% of the estimated time left, then refine
RETRY_DELAY = 30.0  # after ECS throttled us or a copy slot was not free
MAX_RETRY_DELAY = 600.0


@dataclass(frozen=True)
class WaitState:
    """What survives between invocations of one Create."""

    began_at: float  # when the Create request was first handled
    image_id: str | None = None  # the copy, once ECS accepted it
    copy_started_at: float | None = None
    continuations: int = 0  # invocations scheduled so far
    waiter: str | None = None  # token the copy's waiter tag must hold for this invocation to be current

    def next(self, waiter: str | None) -> WaitState:
        return replace(self, continuations=self.continuations + 1, waiter=waiter)


def first_waiter(request_id: str) -> str:
    """The waiter token of a Create's first invocation: the same for a re-delivered request."""
    return hashlib.sha256(f"waiter\n{request_id}".encode()).hexdigest()[:16]


def continuation_payload(request_event: Mapping, state: WaitState) -> dict:
    return {CONTINUATION_KEY: {"Version": CONTINUATION_VERSION, "Request": dict(request_event), "State": asdict(state)}}


def split_continuation(event: Mapping) -> tuple[Mapping, WaitState | None]:
    """(the ROS request, the wait state) of an event; the state is None for a request straight from ROS."""
    wrapper = event.get(CONTINUATION_KEY)
    if wrapper is None:
        return event, None
    try:
        if wrapper["Version"] != CONTINUATION_VERSION:
            raise InvalidRequest(f"continuation version {wrapper['Version']!r} is not supported")
        raw_state = wrapper["State"]
        state = WaitState(
            began_at=float(raw_state["began_at"]),
            image_id=raw_state.get("image_id"),
            copy_started_at=_optional_float(raw_state.get("copy_started_at")),
            continuations=int(raw_state.get("continuations", 0)),
            waiter=raw_state.get("waiter"),
        )
        request = wrapper["Request"]
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRequest(f"malformed continuation: {error!r}") from None
    if not isinstance(request, Mapping):
        raise InvalidRequest("malformed continuation: Request is not an object")
    return request, state


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def next_check_delay(copy_elapsed: float, progress: int | None) -> float:
    """Seconds until the next look at a copy that has run ``copy_elapsed`` seconds and reports ``progress``%.

    ECS reports whole percents, so the rate is estimated from the middle of the reported percent; at 0%
    nothing can be estimated and the wait doubles instead. The
    next look comes at 80% of the estimated time left, never later than the copy's age again (a
    hedge against a rate that changes), and never sooner than 1% of its age, which bounds how late
    the end is noticed.
    """
    elapsed = max(0.0, copy_elapsed)
    floor = max(MIN_CHECK_DELAY, DETECTION_FRACTION * elapsed)
    cap = min(MAX_CHECK_DELAY, max(60.0, elapsed))
    if progress is not None and 0 < progress < 100:
        done = progress + 0.5
        delay = ESTIMATE_SHARE * elapsed * (100 - done) / done
    else:
        delay = elapsed  # no progress to go by yet: double the wait
    return min(max(delay, floor), cap)


def retry_delay(continuations: int) -> float:
    """Delay before trying again after throttling or a full copy quota: 30 s, doubling, at most 10 min."""
    return min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** min(continuations, 10))


@dataclass(frozen=True)
class Budget:
    """How long this invocation may keep waiting before it must defer (or give up)."""

    started_at: float
    inline_until: float  # stop waiting inside the invocation after this
    deadline: float  # the function's own timeout; answers must be out well before it

    @classmethod
    def for_invocation(
        cls, started_at: float, function_timeout: float, margin: float, inline_wait: float, can_defer: bool
    ) -> Budget:
        latest = started_at + max(0.0, function_timeout - margin)
        inline_until = min(latest, started_at + inline_wait) if can_defer else latest
        return cls(started_at, inline_until, started_at + function_timeout)

    def left(self, now: float) -> float:
        return self.inline_until - now


class Deferred(Exception):
    """Not an error: the wait goes on in a later invocation, and this one must not answer."""


class Stale(Exception):
    """Not an error: another invocation now owns this wait (a duplicate or superseded continuation)."""


class CopyWait:
    """Waits for one copy inside an invocation while that is cheap, then hands over to a later one.

    ``look`` returns the copy's view (raising when it failed or vanished), ``mark_waiter`` records the
    token of the invocation chain that owns the wait, and ``schedule`` asks FC for the next invocation.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float],
        sleep: Callable[[float], None],
        look: Callable[[str], ImageView],
        mark_waiter: Callable[[str, str], bool],
        schedule: Callable[[WaitState, float], None],
        budget: Budget,
        max_wait: float,
        can_defer: bool,
    ) -> None:
        self._now = now
        self._sleep = sleep
        self._look = look
        self._mark_waiter = mark_waiter
        self._schedule = schedule
        self._budget = budget
        self._max_wait = max_wait
        self._can_defer = can_defer

    def until_available(self, state: WaitState) -> ImageView:
        """Return the Available view, or raise Deferred, Stale, or a ProviderError to fail the Create."""
        assert state.image_id is not None and state.copy_started_at is not None
        view = self._look_or_defer(state)
        if state.waiter is not None and view.tags.get(WAITER_TAG) != state.waiter:
            raise Stale(f"the copy's waiter tag is {view.tags.get(WAITER_TAG)!r}, not this chain's")
        while True:
            if view.status == "Available":
                return view
            now = self._now()
            waited = now - state.began_at
            if waited >= self._max_wait:
                raise CopyFailed(
                    f"gave up after waiting {waited:.0f} s (the limit is {self._max_wait:.0f} s): the copy "
                    f"{state.image_id} was still {view.status} at {_percent(view.progress)}; it has been cancelled"
                )
            delay = min(
                next_check_delay(now - state.copy_started_at, view.progress), state.began_at + self._max_wait - now
            )
            left = self._budget.left(now)
            if not self._can_defer and delay > left:
                delay = left  # cannot hand over: use what is left for one last look
            if delay <= 0 or delay > left:
                if not self._can_defer:
                    raise CopyFailed(
                        f"the copy {state.image_id} was still {view.status} at {_percent(view.progress)} when this "
                        f"function had to stop ({waited:.0f} s after the Create began). Copies that outlast one "
                        "invocation need the function to invoke itself later: run it on Function Compute with "
                        "FC_FUNCTION_NAME, FC_REGION and FC_ACCOUNT_ID set, and allow fc:InvokeFunction on itself"
                    )
                self.defer(state, delay, progress=view.progress)
            self._sleep(delay)
            view = self._look_or_defer(state)

    def _look_or_defer(self, state: WaitState) -> ImageView:
        """Look at the copy; when ECS keeps throttling or failing, try again in a later invocation."""
        try:
            return self._look(state.image_id)
        except EcsError as error:
            if not (error.transient and self._can_defer):
                raise
            self.defer(state, retry_delay(state.continuations))
            raise  # unreachable: defer always raises

    def defer(self, state: WaitState, delay: float, progress: int | None = None) -> None:
        """Hand the wait to a new invocation after ``delay`` seconds; always raises Deferred."""
        token = secrets.token_hex(8)
        if state.image_id is not None and not self._mark_waiter(state.image_id, token):
            token = None  # ECS would not take the tag: duplicates cannot be told apart, but the wait goes on
        self._schedule(state.next(token), delay)
        raise Deferred(f"next look in {delay:.0f} s" + (f" at {progress}%" if progress is not None else ""))


def _percent(progress: int | None) -> str:
    return "an unknown progress" if progress is None else f"{progress}%"
