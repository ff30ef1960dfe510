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

from copyimage.errors import CopyFailed, Deferred, EcsError, InvalidRequest, Stale
from copyimage.images import ImageView
from copyimage.properties import WAITER_TAG

CONTINUATION_KEY = "CopyImageContinuation"
CONTINUATION_VERSION = 1
MIN_CHECK_DELAY = 2.0  # the first looks come within seconds, so a quick copy answers quickly
MAX_CHECK_DELAY = 3600.0  # x-fc-async-delay's upper bound
DETECTION_FRACTION = 0.01  # near the end, look every 1% of the time the copy has taken so far
ESTIMATE_SHARE = 0.8  # look again after 80% of the estimated time left, then refine
RETRY_DELAY = 30.0  # after ECS kept throttling or failing through one invocation's retries
MAX_RETRY_DELAY = 600.0


@dataclass(frozen=True)
class WaitState:
    """What survives between invocations of one Create."""

    began_at: float  # when the Create request was first handled
    image_id: str | None = None  # the copy, once ECS accepted it
    copy_started_at: float | None = None
    continuations: int = 0  # invocations scheduled so far
    waiter: str | None = None  # this invocation chain's token, as the copy's waiter tag should hold it
    previous_waiter: str | None = None  # the token of the invocation that scheduled this one
    retries: int = 0  # hand-overs in a row after throttling or transient errors

    def handed_over(self, waiter: str) -> WaitState:
        """The state the next invocation starts from, once this one looked and owns the wait."""
        return replace(
            self, continuations=self.continuations + 1, waiter=waiter, previous_waiter=self.waiter, retries=0
        )

    def owns(self, tag: str | None) -> bool:
        """Whether the copy's waiter tag says this invocation chain still owns the wait.

        The invocation that scheduled this one marks the copy just after scheduling, so its own token
        counts too. A first invocation (straight from ROS) also accepts a tag not yet visible: CopyImage
        set it, and a re-delivered request whose copy was answered may answer again, identically.
        """
        if self.waiter is None:
            return True
        if tag is None:
            return self.continuations == 0
        return tag in (self.waiter, self.previous_waiter)

    @property
    def tokens(self) -> tuple[str, ...]:
        return tuple(token for token in (self.waiter, self.previous_waiter) if token)


def first_waiter(request_id: str) -> str:
    """The waiter token of a Create's first invocation: the same for a re-delivered request."""
    return hashlib.sha256(f"waiter\n{request_id}".encode()).hexdigest()[:16]


def continuation_payload(request_event: Mapping, state: WaitState) -> dict:
    return {CONTINUATION_KEY: {"Version": CONTINUATION_VERSION, "Request": dict(request_event), "State": asdict(state)}}


def wrapped_request(event: Mapping) -> Mapping:
    """The ROS request an event carries: itself, or the one inside a continuation."""
    wrapper = event.get(CONTINUATION_KEY)
    if wrapper is None:
        return event
    request = wrapper.get("Request") if isinstance(wrapper, Mapping) else None
    if not isinstance(request, Mapping):
        raise InvalidRequest("malformed continuation: it carries no ROS request")
    return request


def continuation_state(event: Mapping) -> WaitState | None:
    """The wait state a continuation carries; None for a request straight from ROS."""
    wrapper = event.get(CONTINUATION_KEY)
    if wrapper is None:
        return None
    try:
        if wrapper["Version"] != CONTINUATION_VERSION:
            raise InvalidRequest(f"continuation version {wrapper['Version']!r} is not supported")
        raw_state = wrapper["State"]
        return WaitState(
            began_at=float(raw_state["began_at"]),
            image_id=raw_state.get("image_id"),
            copy_started_at=_optional_float(raw_state.get("copy_started_at")),
            continuations=int(raw_state.get("continuations", 0)),
            waiter=raw_state.get("waiter"),
            previous_waiter=raw_state.get("previous_waiter"),
            retries=int(raw_state.get("retries", 0)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRequest(f"malformed continuation: {error!r}") from None


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def next_check_delay(copy_elapsed: float, progress: int | None) -> float:
    """Seconds until the next look at a copy that has run ``copy_elapsed`` seconds and reports ``progress``%.

    ECS reports whole percents, so the rate is estimated from the middle of the reported percent; at 0%
    nothing can be estimated and the wait doubles instead. The next look comes at 80% of the estimated
    time left, never later than the copy's age again (a hedge against a rate that changes), and never
    sooner than 1% of its age, which bounds how late the end is noticed.
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


def retry_delay(retries: int) -> float:
    """Delay before trying again after throttling or a transient error: 30 s, doubling, at most 10 min."""
    return min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** min(retries, 10))


@dataclass(frozen=True)
class Budget:
    """Until when this invocation may keep waiting before it must hand over (or give up)."""

    inline_until: float

    @classmethod
    def for_invocation(
        cls, started_at: float, function_timeout: float, reserve: float, inline_wait: float, can_defer: bool
    ) -> Budget:
        """``reserve``: what must stay free before the timeout for one more look and the answer."""
        latest = started_at + max(0.0, function_timeout - reserve)
        return cls(min(latest, started_at + inline_wait) if can_defer else latest)

    def left(self, now: float) -> float:
        return self.inline_until - now


class CopyWait:
    """Waits for one copy inside an invocation while that is cheap, then hands over to a later one.

    ``look`` returns the copy's view or None, ``check`` raises CopyFailed for a copy that failed or
    vanished, ``mark_waiter`` writes the copy's waiter tag, and ``schedule`` asks FC for the next invocation.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float],
        sleep: Callable[[float], None],
        look: Callable[[str], ImageView | None],
        check: Callable[[str, ImageView | None], ImageView],
        mark_waiter: Callable[[str, str], None],
        schedule: Callable[[WaitState, float], None],
        budget: Budget,
        max_wait: float,
        can_defer: bool,
    ) -> None:
        self._now = now
        self._sleep = sleep
        self._look = look
        self._check = check
        self._mark_waiter = mark_waiter
        self._schedule = schedule
        self._budget = budget
        self._max_wait = max_wait
        self._can_defer = can_defer

    def until_available(self, state: WaitState) -> ImageView:
        """Return the Available view, or raise Deferred, Stale, or a ProviderError to fail the Create."""
        assert state.image_id is not None and state.copy_started_at is not None
        view = self._look_or_defer(state)
        if view is not None and not state.owns(view.tags.get(WAITER_TAG)):
            # Judged before the copy's status: a superseded invocation must neither answer nor clean up.
            raise Stale(f"the copy's waiter tag is {view.tags.get(WAITER_TAG)!r}, not this chain's")
        while True:
            view = self._check(state.image_id, view)
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

    def _look_or_defer(self, state: WaitState) -> ImageView | None:
        """Look at the copy; when ECS keeps throttling or failing, try again in a later invocation.

        That later invocation inherits this one's tokens rather than a new one: without a look, this
        invocation cannot know whether it still owns the wait, so it must not claim it.
        """
        try:
            view = self._look(state.image_id)
            if view is None:  # a copy ECS has just accepted may take a moment to be listed
                self._sleep(MIN_CHECK_DELAY)
                view = self._look(state.image_id)
            return view
        except EcsError as error:
            if not (error.transient and self._can_defer):
                raise
            self.retry_later(state, error)
            raise  # unreachable: retry_later always raises

    def retry_later(self, state: WaitState, error: EcsError) -> None:
        """Hand over after throttling or a transient error, claiming nothing; always raises Deferred."""
        waited = self._now() - state.began_at
        if waited >= self._max_wait:
            raise CopyFailed(
                f"gave up after waiting {waited:.0f} s (the limit is {self._max_wait:.0f} s) while ECS kept "
                f"answering {error.code}; the copy {state.image_id or '(not started)'} has been cancelled"
            )
        delay = min(retry_delay(state.retries), state.began_at + self._max_wait - self._now())
        self._schedule(replace(state, continuations=state.continuations + 1, retries=state.retries + 1), delay)
        raise Deferred(f"next try in {delay:.0f} s after {error.code}")

    def defer(self, state: WaitState, delay: float, progress: int | None = None) -> None:
        """Hand the wait to a new invocation after ``delay`` seconds; always raises Deferred.

        The next invocation is scheduled first and the copy marked after: if this run dies in between,
        FC's retry of it still finds its own token on the copy and hands over again; the orphan then
        finds a token that is neither its own nor its scheduler's, and stops.
        """
        token = secrets.token_hex(8)
        self._schedule(state.handed_over(token), delay)
        if state.image_id is not None:
            self._mark_waiter(state.image_id, token)
        raise Deferred(f"next look in {delay:.0f} s" + (f" at {progress}%" if progress is not None else ""))


def _percent(progress: int | None) -> str:
    return "an unknown progress" if progress is None else f"{progress}%"
