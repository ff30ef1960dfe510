"""Waiting, as one pure decision: what to do after a look, given the wait so far, the time and the budget.

    decide(wait, seen, now, budget) -> Finish | LookAgain | HandOver | Stop

No I/O, no clock, no exceptions: the framework looks, asks, and carries out the answer. The rules, said out loud:

- **Ownership.** Each request's wait is owned by one chain of invocations; ``hop`` counts its hand-overs. Two
  things keep a chain single and alive, whatever FC delivers twice and however late a write lands:
  - *FC's task deduplication* tells twins apart: each hand-over is scheduled under the task id of the next hop
    (:func:`task_id`), and FC refuses a second task with the same id (409). A run that cannot schedule its
    successor, or claim its answer, stops: another run of the same hop (a twin, an FC retry, a replay) already
    did, and that run is live. This holds for Create, Update and Delete alike.
  - *Marks that survive reordering* say which chain owns a Create's copy (its ``copyimage:waiter`` tag): a mark
    names the chain and the hop that wrote it (:func:`chain_mark`). An invocation accepts any mark of its own chain
    from its hop or earlier (a write that landed late, or not at all, never strands it), and stops at a mark of a
    later hop of its chain (a successor was scheduled, so it lives) or of another chain (a later Create of the
    same resource adopted the copy). A look that could not see the work claims nothing. Once answered, the mark
    reads ``answered:<time>``: a later replay stops; a re-delivered request that never saw its work answers the
    same again.
- **Progress.** The next look comes when the copy's progress says the end is near: see :func:`next_look`.
- **Budget.** Short waits happen inside the invocation (billed); longer ones are handed to an asynchronous
  invocation delayed by a whole number of seconds in [1, 3599], FC's documented range (0, 3600).
- **Deadline.** Past it, the wait gives up: a Create cancels what it started and answers FAILED.
- **Trouble.** When the service keeps refusing (throttling, a conflict, a hiccup), the next try is handed over
  with a doubling delay, claiming nothing.
- **Gone.** Work that vanishes fails the request only if this chain saw it as its own within SETTLE_SECONDS:
  a copy that was answered is deleted no sooner than SETTLE_SECONDS after its answer (the resource's Delete sees
  to it), so a chain that saw the copy still in progress that recently knows no answer can have preceded the
  removal. Otherwise (a late replay, a twin that could not look for a while) it stops without an answer.
- **Restart.** Work the resource says was taken from under it (``restart``: a relay copy whose relay was deleted)
  is started again, from scratch, by the chain's next hop: always handed over, never inline, so that FC's task
  deduplication lets one run of the chain restart and stops a twin or a late replay of an earlier hop (its next
  hop ran long ago). ``attempt`` counts the starts, so that the new work gets its own idempotency token and twins
  of one hop make the same call; after MAX_ATTEMPTS, or past the deadline, the request fails saying why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from copyimage.errors import InvalidRequest

MIN_DELAY = 1  # x-fc-async-delay: FC 3.0 documents (0, 3600) seconds, FC 2.0 [0, 3600]: stay within [1, 3599]
MAX_DELAY = 3599
LOOK_SOON = 2.0  # the first looks, and a second look at work not (yet) listed
# An answered copy stays at least this long; see "Gone" above. Short enough for a Delete right after the answer
# (a rollback because a sibling resource failed) to fit in ROS's default custom resource Timeout of 60 s.
SETTLE_SECONDS = 30.0
RETRY_SECONDS = 30.0  # after the service kept refusing through one invocation's retries: 30 s, doubling
MAX_RETRY_SECONDS = 600.0
# Looks at work this request started but never saw listed (ECS may list a new copy a moment late): three inline,
# one a minute after the start in a later invocation, then it is taken for an earlier delivery's, long gone.
UNSEEN_LOOK_DELAYS = (2.0, 4.0, 8.0, 46.0)
SAMPLES_KEPT = 8
ANSWERED = "answered:"  # prefix of the mark that ends a wait
MAX_ATTEMPTS = 3  # starts of the work per request: the first, and restarts after it was taken away

# The progress estimator (see next_look).
PRECISION_SECONDS = 8.0  # aim to notice the end within this (bench/compare.py --tradeoff shows why 8)
APPROACH_SHARE = 0.7  # far from the end, look after this share of the earliest possible time left
SURGE = 1.5  # ... at this many times the fastest recent rate (with the share: up to 2.1 times faster is not overshot)
RECENT_PERCENTS = 5  # the rate is estimated from the samples of the last few percents only
END_GAME_PERCENTS = 3.0  # within this many percent-durations of the end, pin down the percent boundaries
ZERO_GROWTH = 2.0  # at 0% (queued, or just started) look again after this many times the age so far


def answered_mark(at: float) -> str:
    return f"{ANSWERED}{math.ceil(at)}"


def chain_mark(chain: str, hop: int) -> str:
    """The mark an invocation of ``chain`` at ``hop`` writes on the work: ``<chain>.<hop>``."""
    return f"{chain}.{hop}"


def parse_mark(mark: str) -> tuple[str, int] | None:
    """``(chain, hop)`` of a chain mark; None for any other mark (answered, retained, a version-2 token)."""
    chain, dot, hop = mark.rpartition(".")
    if not dot or not chain or not hop.isdigit():
        return None
    return chain, int(hop)


def task_id(chain: str, hop: int) -> str:
    """FC's task id for the invocation of ``chain`` at ``hop`` (FC: a letter or ``_`` first, then letters, digits,
    ``_`` and ``-``, at most 128 characters): FC refuses a second task with one id, which kills twins."""
    return f"copyimage-{chain.replace('.', '-')}-{hop}"


@dataclass(frozen=True)
class Wait:
    """What one request's wait carries from invocation to invocation (JSON in the continuation)."""

    began_at: float  # when the request was first handled
    deadline: float  # give up after this
    hop: int = 0  # invocations handed over so far; 0 is the one ROS invoked
    due_at: float | None = None  # when this invocation was scheduled to run
    owner: str | None = None  # this chain's id; its marks are chain_mark(owner, hop)
    accepts: tuple[str, ...] = ()  # marks of other chains that still mean "ours" (an adopted copy's)
    found: bool = False  # the work was seen at least once
    confirmed_at: float | None = None  # the last look that saw the work in progress as this chain's
    misses: int = 0  # looks in a row that did not find the work
    retries: int = 0  # hand-overs in a row after the service refused
    started_at: float | None = None  # when the work began (the copy was accepted): the origin of its age
    samples: tuple[tuple[float, int], ...] = ()  # (time, percent) of recent looks
    state: Mapping[str, Any] = field(default_factory=dict)  # the resource's own (its image id, ...)
    verified: bool = True  # ROS confirmed the request (verify.py), or verification is off
    attempt: int = 0  # restarts so far: the work in ``state`` is the (attempt + 1)-th start

    @classmethod
    def begin(cls, now: float, limit: float, owner: str | None = None) -> Wait:
        return cls(began_at=now, deadline=now + limit, owner=owner)

    @property
    def mark(self) -> str | None:
        """What this invocation writes on the work it owns."""
        return None if self.owner is None else chain_mark(self.owner, self.hop)

    def owns(self, mark: str | None) -> bool:
        """Whether the work's mark leaves this invocation in charge: no mark, an adopted one, or one of this chain
        from this hop or earlier (a wait without an owner always is)."""
        if self.owner is None or mark is None or mark in self.accepts:
            return True
        parsed = parse_mark(mark)
        return parsed is not None and parsed[0] == self.owner and parsed[1] <= self.hop

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> Wait:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("malformed continuation: the wait is not an object")
        try:
            return cls(
                began_at=float(raw["began_at"]),
                deadline=float(raw["deadline"]),
                hop=int(raw.get("hop", 0)),
                due_at=_number_or_none(raw.get("due_at")),
                owner=_text_or_none(raw.get("owner")),
                accepts=tuple(str(mark) for mark in raw.get("accepts") or ()),
                found=bool(raw.get("found", False)),
                confirmed_at=_number_or_none(raw.get("confirmed_at")),
                misses=int(raw.get("misses", 0)),
                retries=int(raw.get("retries", 0)),
                started_at=_number_or_none(raw.get("started_at")),
                samples=tuple((float(t), int(p)) for t, p in raw.get("samples") or ()),
                state=dict(raw.get("state") or {}),
                verified=raw.get("verified") is True,
                attempt=int(raw.get("attempt", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRequest(f"malformed continuation: {error!r}") from None


@dataclass(frozen=True)
class Seen:
    """What one look found, in the resource's words but the framework's categories."""

    kind: Literal["ready", "pending", "failed", "missing", "unreachable", "restart"]
    mark: str | None = None  # the owner mark on the work, if it carries one
    percent: int | None = None  # pending: progress, when the service reports it
    after: float | None = None  # pending without progress: when to look again
    detail: str = ""  # failed: why; unreachable: the service's refusal; pending: what is going on
    physical_id: str | None = None  # ready: the id to answer with
    data: Mapping[str, str] | None = None  # ready: Fn::GetAtt values
    state: Mapping[str, Any] | None = None  # the resource's state after this look, when it changed
    accepts: tuple[str, ...] = ()  # marks this look took over (an adopted copy's)


@dataclass(frozen=True)
class Budget:
    """How long this invocation may wait inline, and whether it may hand over at all."""

    inline_until: float
    can_defer: bool = True
    precision_seconds: float = PRECISION_SECONDS  # how closely next_look pins the end (Settings)


@dataclass(frozen=True)
class Finish:
    """Answer now."""

    ok: bool
    wait: Wait
    detail: str = ""
    physical_id: str | None = None
    data: Mapping[str, str] | None = None
    discard: bool = False  # before a FAILED answer: remove what this chain made


@dataclass(frozen=True)
class LookAgain:
    """Wait inline, then look again."""

    delay: float
    wait: Wait


@dataclass(frozen=True)
class HandOver:
    """Schedule an invocation ``delay`` seconds from now to look again; then mark the work with ``claim``."""

    delay: int
    wait: Wait
    claim: str | None = None


@dataclass(frozen=True)
class Stop:
    """Neither answer nor go on: the request was answered, or another chain owns the wait."""

    reason: str


Decision = Finish | LookAgain | HandOver | Stop


def decide(wait: Wait, seen: Seen, now: float, budget: Budget) -> Decision:
    """The one place where a look turns into what happens next."""
    if seen.state is not None:
        wait = replace(wait, state=dict(seen.state))
    if seen.accepts:
        wait = replace(wait, accepts=tuple(dict.fromkeys((*wait.accepts, *seen.accepts))))
    if seen.kind == "unreachable":
        return _try_later(wait, seen, now, budget)
    if not wait.owns(seen.mark):
        assert seen.mark is not None
        if seen.mark.startswith(ANSWERED) and seen.kind == "ready" and not wait.found:
            # A request delivered again after its work was answered: the same answer again, nothing more.
            return Finish(True, wait, physical_id=seen.physical_id, data=seen.data)
        return Stop(f"another invocation owns this wait (the mark is {seen.mark!r})")
    if seen.kind == "ready":
        return Finish(True, replace(wait, found=True), physical_id=seen.physical_id, data=seen.data)
    if seen.kind == "failed":
        return Finish(False, wait, detail=seen.detail, discard=True)
    if seen.kind == "missing":
        return _missing(wait, seen, now, budget)
    if seen.kind == "restart":
        return _restart(wait, seen, now, budget)
    return _pending(wait, seen, now, budget)


def _missing(wait: Wait, seen: Seen, now: float, budget: Budget) -> Decision:
    if not wait.found:
        # Work this request started is not listed (yet): ECS may list a new copy a moment late; but work an
        # earlier delivery of the same request started and saw through may be gone long since.
        if wait.misses >= len(UNSEEN_LOOK_DELAYS):
            return Stop("the work this request started was never found: an earlier delivery of it dealt with it")
        delay = UNSEEN_LOOK_DELAYS[wait.misses]
        return _schedule(replace(wait, misses=wait.misses + 1), delay, now, budget, claim=False)
    if wait.confirmed_at is None or now > wait.confirmed_at + SETTLE_SECONDS:
        last = "never" if wait.confirmed_at is None else f"{now - wait.confirmed_at:.0f} s ago"
        return Stop(
            f"the work is gone, and this chain last saw it as its own {last}: it may have been answered and deleted "
            "since, so no answer is sent"
        )
    if wait.misses < 1:  # look twice before declaring it gone
        return _schedule(replace(wait, misses=1), LOOK_SOON, now, budget, claim=False)
    return Finish(False, wait, detail=seen.detail or "the work disappeared before it was done")


def _restart(wait: Wait, seen: Seen, now: float, budget: Budget) -> Decision:
    """The work was taken away: the next hop starts it again (an empty state), if time and attempts allow."""
    if wait.attempt + 1 >= MAX_ATTEMPTS or now >= wait.deadline or not budget.can_defer:
        why = "no time is left" if now >= wait.deadline else f"it was started {wait.attempt + 1} times"
        if not budget.can_defer:
            why = "this function cannot invoke itself to start it again"
        return Finish(False, wait, detail=f"{seen.detail}; not started again: {why}", discard=True)
    seconds = _fc_delay(LOOK_SOON)
    again = replace(
        wait,
        hop=wait.hop + 1,
        due_at=now + seconds,
        attempt=wait.attempt + 1,
        state={},
        found=False,
        confirmed_at=None,
        misses=0,
        retries=0,
        started_at=None,
        samples=(),
        verified=False,  # ROS must still be creating the resource (not rolling back, not deleting the stack)
    )
    return HandOver(seconds, again)


def _pending(wait: Wait, seen: Seen, now: float, budget: Budget) -> Decision:
    samples = wait.samples
    if seen.percent is not None:
        samples = (*samples, (now, seen.percent))[-SAMPLES_KEPT:]
    wait = replace(wait, found=True, confirmed_at=now, misses=0, retries=0, samples=samples)
    if now >= wait.deadline:
        where = f"{seen.detail or 'pending'}" + (f" at {seen.percent}%" if seen.percent is not None else "")
        return Finish(
            False,
            wait,
            detail=f"gave up after waiting {now - wait.began_at:.0f} s (the limit is "
            f"{wait.deadline - wait.began_at:.0f} s): it was still {where}",
            discard=True,
        )
    if seen.after is not None:
        delay = seen.after
    else:
        started = wait.started_at if wait.started_at is not None else wait.began_at
        delay = next_look(samples, started, now, budget.precision_seconds)
    delay = min(delay, wait.deadline - now)  # one last look at the deadline
    return _schedule(wait, delay, now, budget, claim=True)


def _try_later(wait: Wait, seen: Seen, now: float, budget: Budget) -> Decision:
    """The service refused (throttling, conflict, hiccup): try again later, claiming nothing."""
    if now >= wait.deadline or not budget.can_defer:
        waited = now - wait.began_at
        return Finish(
            False,
            wait,
            detail=f"gave up after {waited:.0f} s while the service kept refusing: {seen.detail}",
            discard=True,
        )
    delay = min(MAX_RETRY_SECONDS, RETRY_SECONDS * 2 ** min(wait.retries, 10), max(MIN_DELAY, wait.deadline - now))
    seconds = _fc_delay(delay)
    return HandOver(seconds, replace(wait, hop=wait.hop + 1, retries=wait.retries + 1, due_at=now + seconds))


def _schedule(wait: Wait, delay: float, now: float, budget: Budget, claim: bool) -> Decision:
    """Look again after ``delay``: inline while the budget allows, else in a later invocation."""
    delay = max(0.0, delay)
    left = budget.inline_until - now
    if delay <= left:
        return LookAgain(delay, wait)
    if not budget.can_defer:
        if left > 0:
            return LookAgain(left, wait)  # cannot hand over: one last look before the function must stop
        return Finish(
            False,
            wait,
            detail="it was not done when this function had to stop, and it cannot invoke itself to wait longer: "
            "run it on Function Compute with FC_FUNCTION_NAME, FC_REGION and FC_ACCOUNT_ID set, keep "
            "COPYIMAGE_DEFER on, and allow fc:InvokeFunction on itself",
            discard=True,
        )
    seconds = _fc_delay(delay)
    following = replace(wait, hop=wait.hop + 1, due_at=now + seconds)
    if not claim or following.mark is None:
        return HandOver(seconds, following)
    return HandOver(seconds, following, claim=following.mark)


def _fc_delay(seconds: float) -> int:
    return int(min(MAX_DELAY, max(MIN_DELAY, math.ceil(seconds))))


# --- when to look again --------------------------------------------------------------------------------------


def next_look(
    samples: tuple[tuple[float, int], ...], started_at: float, now: float, precision: float = PRECISION_SECONDS
) -> float:
    """Seconds until the next look at work whose recent looks found ``samples`` (time, whole percent).

    ECS reports whole percents, and a copy's rate is not steady (it queues at 0%, then speeds up and slows
    down). Each recent sample says the true progress was within [p, p + 1) then; assuming a steady rate over
    the samples of the last RECENT_PERCENTS, together they bound the rate and where the copy is now, hence
    the earliest and latest time it can end. Far from the end, the next look comes after a share of the
    earliest time left, at SURGE times the fastest rate the samples allow (a faster stretch must not be
    overshot). Near it, looks go to the middle of the window in which the next percent boundary must fall,
    until the end is pinned to within ``precision`` seconds; then one look just after the latest possible end.
    A rate change shows as samples no steady rate fits: the oldest are dropped.
    """
    progress = [(t, p) for t, p in samples if p > 0]
    if not progress:  # nothing moves yet (queued, or just started): wait longer each time
        return max(LOOK_SOON, ZERO_GROWTH * (now - started_at))
    zeros = [t for t, p in samples if p <= 0 and t < progress[0][0]]
    first = next(i for i, (_, p) in enumerate(progress) if p >= progress[-1][1] - RECENT_PERCENTS)
    first = max(0, first - 1)  # and the look before them, which gives the recent rate
    window = _fit_window(progress[first:], zeros[-1] if zeros and first == 0 else None)
    if window is None:  # one sample of progress: no rate yet; the next sample gives one
        since = zeros[-1] if zeros else started_at
        return max(LOOK_SOON, 0.5 * (now - since))
    region, t_n = window
    low, high = _time_to(region, t_n, 100.0)
    if low - now > END_GAME_PERCENTS * _percent_seconds(region):
        fastest = SURGE * max(r for _, r in region)
        surge_end = now + (100.0 - max(x for x, _ in region)) / fastest
        return max(LOOK_SOON, APPROACH_SHARE * (min(low, surge_end) - now))
    if high - low <= precision:
        return max(0.0, high - now) + 0.5
    # End game: pin down the boundary of the next percent that falls before the earliest end.
    level = progress[-1][1] + 1
    while level < 100:
        a, b = _time_to(region, t_n, float(level))
        if b - a > precision and a < low:
            return max(0.0, min((a + b) / 2, low) - now)
        level += 1
    return max(0.0, low + precision - now)  # in the last percent, uncertain: creep forward


_Polygon = list[tuple[float, float]]  # vertices (x: progress at t_n, r: percent per second)


def _fit_window(progress: list[tuple[float, int]], last_zero: float | None) -> tuple[_Polygon, float] | None:
    """The (progress now, rate) region consistent with the newest samples; drops old ones until one fits."""
    t_n, p_n = progress[-1]
    for start in range(len(progress) - 1):
        older = progress[start:-1]
        region: _Polygon = [(p_n, 0.0), (p_n + 1.0, 0.0), (p_n + 1.0, 100.0), (p_n, 100.0)]
        for t_i, p_i in older:
            d = t_n - t_i
            region = _clip(region, -1.0, d, -p_i)  # x - r d >= p_i
            region = _clip(region, 1.0, -d, p_i + 1.0)  # x - r d <= p_i + 1
        if start == 0 and last_zero is not None:
            region = _clip(region, 1.0, -(t_n - last_zero), 1.0)  # progress was below 1% then
        if region:
            return region, t_n
    return None


def _clip(polygon: _Polygon, a: float, b: float, c: float) -> _Polygon:
    """The part of a convex polygon where a*x + b*r <= c."""
    result: _Polygon = []
    for index, (x1, r1) in enumerate(polygon):
        x2, r2 = polygon[(index + 1) % len(polygon)]
        inside1, inside2 = a * x1 + b * r1 <= c + 1e-12, a * x2 + b * r2 <= c + 1e-12
        if inside1:
            result.append((x1, r1))
        if inside1 != inside2:
            share = (c - a * x1 - b * r1) / (a * (x2 - x1) + b * (r2 - r1))
            result.append((x1 + share * (x2 - x1), r1 + share * (r2 - r1)))
    return result


def _time_to(region: _Polygon, t_n: float, level: float) -> tuple[float, float]:
    """Earliest and latest time the progress reaches ``level``, over the region's vertices."""
    times = [t_n + max(0.0, level - x) / r if r > 1e-9 else math.inf for x, r in region]
    return min(times), max(times)


def _percent_seconds(region: _Polygon) -> float:
    """How long one percent takes at the region's middle rate."""
    rates = sorted(r for _, r in region)
    return 1.0 / max(rates[len(rates) // 2], 1e-9)


def _number_or_none(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
