"""Model-based test: the real handler and the stand-ins on the virtual clock, through random schedules of
at-least-once delivery and failures, with five invariants checked on every schedule.

A schedule is drawn from a seed. It creates a stack from template.yml and, most of the time, deletes it later. On
the way it perturbs things at random virtual times:
- FC delivers events twice (twins at the same instant, or a little later), replays continuations after the
  answer and after the stack's Delete, fails runs (before or after the handler did its work) and retries them,
  and, in the pessimistic setting, redelivers every event long after it first ran;
- ECS fails any action transiently or for a while (throttling, 5xx, conflicts), and is slow for a while: a slow
  request takes effect when it is answered, so a write may land after a later request's read (writes and reads
  reorder across invocations);
- the stack is updated in place (a new tag and name) some of the time, between its Create and its Delete;
- the response endpoint answers 503, 429 or 302 before it takes the answer;
- ECS refuses to tag a copy in progress, lists deleted images for a while, holds snapshots; ROS invokes
  synchronously, takes late or second answers with 200, or gives up before the copy ends.
Actors due at the same instant run in a seeded random order, and every stand-in request is a switch point.

The invariants:
1. every Create is answered before ROS's Timeout (when the copy fits in it);
2. never two different answers (status, physical id or data) for one request; identical duplicates are counted;
3. nothing is left in ECS after the stack's Delete or rollback;
4. a copy answered SUCCESS is removed only by the stack's Delete;
5. duplicates die out: an extra delivery (a twin, a replay, an FC retry) of a Create's, an Update's or a Delete's
   events costs at most EXTRA_PER_DELIVERY more invocations (its own run: FC refuses the twin's hand-over, a task
   id it has seen), plus UNSEEN_LOOKS for a replay of ROS's own Create event after its copy is gone;
6. answers are not multiplied by hand-overs: a request gets at most as many answers taken by ROS as ROS delivered
   the request itself (a twin or a retry of a continuation finds the answer claimed).
A request ROS sent synchronously whose run crashed before the handler ran was lost on the way: FC does not retry
synchronous runs, and the provider never saw it; such requests are counted, not held to invariants 1 and 3.

Run one schedule again with MODEL_SEED=<seed>; change the number with MODEL_SCHEDULES.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from copyimage.properties import COPIED_FROM_TAG, SOURCE_IMAGE_TAG, STACK_TAG, WAITER_TAG
from copyimage.waiting import UNSEEN_LOOK_DELAYS

from emulator.cloud import LocalCloud
from emulator.ecs import EcsError

SCHEDULES = int(os.environ.get("MODEL_SCHEDULES", "200"))
ONLY_SEED = os.environ.get("MODEL_SEED")
CHUNKS = 16  # the schedules run in parts, so that pytest-xdist spreads them over the cores
EXTRA_PER_DELIVERY = 1  # a twin's own run: its hand-over or answer claim is refused, as FC has seen the task id
# A replay of ROS's own event after the copy is gone (the stack deleted it) cannot tell the copy was ever made:
# it looks as for a copy not yet listed, once per UNSEEN_LOOK_DELAYS, each look its own invocation, then stops.
UNSEEN_LOOKS = len(UNSEEN_LOOK_DELAYS)
DESTINATIONS = ("cn-shanghai", "cn-beijing")
ECS_ACTIONS = (
    "DescribeRegions",
    "DescribeImages",
    "CopyImage",
    "TagResources",
    "CancelCopyImage",
    "DeleteImage",
    "ModifyImageAttribute",
    "UntagResources",
)
WRITES = ("CopyImage", "TagResources", "UntagResources", "ModifyImageAttribute", "CancelCopyImage", "DeleteImage")
TRANSIENT = ("throttle", "server_error", "unavailable")
STATS_PROPERTY = "model_stats"  # each part reports its counts; conftest.py adds them up and prints them


@dataclass
class Schedule:
    seed: int
    copy_seconds: float
    timeout: int  # the custom resource's Timeout, seconds
    invocation_type: str
    accept_late_answers: bool
    pessimistic_ecs: bool
    redeliver_after: float | None
    duplicates: list[tuple[float, float]]  # (when, gap): the next async event after `when` is delivered twice
    fc_failures: list[tuple[float, str]]  # (when, before|after): the next run after `when` dies
    ecs_faults: list[tuple[float, str, str, int | None, float]]  # (when, action, kind, count, lasting)
    answer_faults: list[tuple[float, tuple[int, ...]]]
    fail_copy: bool
    delete_after: float | None
    replays: list[tuple[str, float]]  # (after "answer" | "delete", offset)
    update_after: float | None = None  # after the Create: update the stack in place this much later
    latencies: list[tuple[float, str, float, float]] = field(default_factory=list)  # (when, action, seconds, lasting)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        """The copy, and whatever failures slow it, fit in ROS's Timeout: an answer is due before it."""
        slowest = max((lasting for *_, lasting in self.ecs_faults), default=0.0)
        return self.timeout >= 3 * self.copy_seconds + 2 * slowest + 7200


def draw(seed: int) -> Schedule:
    rng = random.Random(seed)
    copy_seconds = rng.choice([40.0, 40.0, 300.0, 300.0, 900.0, 2400.0])
    horizon = copy_seconds * 1.2
    timeout = rng.choice([43200] * 6 + [int(copy_seconds / 2) + 60])
    ecs_faults = []
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        kind = rng.choice((*TRANSIENT, "conflict"))
        persistent = rng.random() < 0.3
        ecs_faults.append(
            (
                rng.uniform(0, horizon),
                rng.choice(ECS_ACTIONS),
                kind,
                None if persistent else rng.randint(1, 5),
                rng.uniform(60, 900) if persistent else 0.0,
            )
        )
    return Schedule(
        seed=seed,
        copy_seconds=copy_seconds,
        timeout=timeout,
        invocation_type=rng.choice(["Async", "Async", "Sync"]),
        accept_late_answers=rng.random() < 0.3,
        pessimistic_ecs=rng.random() < 0.3,
        redeliver_after=rng.choice([None] * 5 + [rng.uniform(1000, 7200)]),
        duplicates=[
            (rng.uniform(0, horizon), rng.choice([0.0, 0.0, rng.uniform(1, 30)])) for _ in range(rng.randint(0, 3))
        ],
        fc_failures=[(rng.uniform(0, horizon), rng.choice(["before", "after"])) for _ in range(rng.randint(0, 2))],
        ecs_faults=ecs_faults,
        answer_faults=[
            (rng.uniform(0, horizon), tuple(rng.choice([503, 429, 302, 500]) for _ in range(rng.randint(1, 4))))
            for _ in range(rng.randint(0, 1))
        ],
        fail_copy=rng.random() < 0.1,
        delete_after=rng.choice([None, rng.uniform(0, 600), rng.uniform(0, 7200)]),
        replays=[(rng.choice(["answer", "delete"]), rng.uniform(0, 4000)) for _ in range(rng.randint(0, 3))],
        update_after=rng.choice([None, None, rng.uniform(0, 300)]),
        latencies=[
            (
                rng.uniform(0, horizon),
                rng.choice((*WRITES, "DescribeImages")),
                rng.uniform(0.5, 5.0),
                rng.uniform(60, 1800),
            )
            for _ in range(rng.choice([0, 0, 1, 2]))
        ],
    )


@pytest.fixture(scope="module")
def model_cloud():
    from copyimage.logs import logger

    level = logger.log_level
    logger.setLevel("WARNING")  # thousands of invocations: their INFO lines would cost more than their work
    with LocalCloud(copy_seconds=60) as cloud:
        cloud.model_template = cloud.template()  # parsed once: each schedule gets a copy
        yield cloud
    logger.setLevel(level)


def seeds(chunk: int) -> list[int]:
    if ONLY_SEED is not None:
        return [int(ONLY_SEED)] if chunk == 0 else []
    return list(range(chunk, SCHEDULES, CHUNKS))


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_invariants_hold_on_every_schedule(model_cloud, chunk, record_property):
    stats: Counter[str] = Counter()
    failures = []
    for seed in seeds(chunk):
        problems = run_and_check(model_cloud, draw(seed), stats)
        stats["schedules"] += 1
        if problems:
            failures.append(f"MODEL_SEED={seed}: " + "; ".join(problems))
    record_property(STATS_PROPERTY, json.dumps(stats))
    assert not failures, "\n".join(failures[:20])


def run_and_check(cloud: LocalCloud, schedule: Schedule, stats: Counter[str]) -> list[str]:
    """Run one schedule; what broke an invariant, in words."""
    rng = random.Random(schedule.seed * 7919 + 1)
    cloud.reset(schedule.seed)
    clock, ecs, fc, ros = cloud.clock, cloud.ecs, cloud.fc, cloud.ros
    ros.invocation_type = schedule.invocation_type
    ros.accept_late_answers = schedule.accept_late_answers
    fc.redeliver_after = schedule.redeliver_after
    if schedule.pessimistic_ecs:
        ecs.tag_in_progress_refused = True
        ecs.deleted_listing_seconds = 150.0
        ecs.snapshot_release_seconds = 60.0
    ecs.copy_seconds = schedule.copy_seconds
    if schedule.fail_copy:
        ecs.fail_copies(1, at_fraction=rng.uniform(0.1, 0.9))
    source = ecs.seed_image("cn-hangzhou", name=f"source-{schedule.seed}", snapshot_count=2)
    _arm(cloud, schedule)

    destination = rng.choice(DESTINATIONS)
    parameters = {"ImageId": source.image_id, "DestinationRegionId": destination, "Timeout": schedule.timeout}
    template = copy.deepcopy(getattr(cloud, "model_template", None) or cloud.template())
    stack = ros.begin_create(template, parameters, name=f"model-{schedule.seed}", timeout_minutes=1440)
    clock.run_task(stack.operation)
    create = next(r for r in ros.requests if r["StackId"] == stack.id and r["RequestType"] == "Create")
    answered = ros.pending(create["RequestId"]).answer
    answer_at = next((a.at for a in ros.answers if a.accepted and a.request_id == create["RequestId"]), None)
    if stack.status == "CREATE_COMPLETE":
        _replay(cloud, schedule, create["RequestId"], "answer", rng)
        # A replay of an Update's own event after the stack's Delete removed the copy answers FAILED ("the copy no
        # longer exists"), which ROS refuses: nothing in ECS tells it the request is stale. Until requests are
        # verified with ROS (issue 17), Updates run only in schedules without the late redelivery switch.
        if schedule.update_after is not None and schedule.redeliver_after is None:
            clock.sleep(schedule.update_after)
            ros.begin_update(stack, {"Tag": f"team=model,seed={schedule.seed}", "DestinationImageName": "model-copy"})
            clock.run_task(stack.operation)
        if schedule.delete_after is not None and not stack.status.endswith("IN_PROGRESS"):
            clock.sleep(schedule.delete_after)
            ros.begin_delete(stack)
            clock.run_task(stack.operation)
            _replay(cloud, schedule, create["RequestId"], "delete", rng)
    clock.run_until(lambda: fc.pending_async() == 0 and clock.pending() == 0, timeout=30 * 86400)
    if clock.pending():
        return [f"the schedule did not come to rest ({clock.pending()} events still scheduled)"]
    return _check(cloud, schedule, stack, create, answered, answer_at, stats)


def _arm(cloud: LocalCloud, schedule: Schedule) -> None:
    """Put the schedule's perturbations on the clock, each at its virtual time."""
    clock, ecs, fc, ros = cloud.clock, cloud.ecs, cloud.fc, cloud.ros
    for when, gap in schedule.duplicates:
        clock.spawn(lambda gap=gap: fc.duplicate_next_async(1, gap), "model-duplicate", when)
    for when, moment in schedule.fc_failures:
        clock.spawn(lambda moment=moment: fc.fail_next(1, moment), "model-fc-failure", when)
    for when, statuses in schedule.answer_faults:
        clock.spawn(lambda statuses=statuses: ros.fail_next_answers(*statuses), "model-answer-faults", when)
    for when, action, kind, count, lasting in schedule.ecs_faults:

        def arm(action: str = action, kind: str = kind, count: int | None = count, lasting: float = lasting) -> None:
            fault = ecs.faults.add(action, kind, count=count)
            if count is None:
                clock.spawn(lambda: ecs.faults.remove(fault), "model-fault-ends", lasting)

        clock.spawn(arm, "model-ecs-fault", when)
    for when, action, seconds, lasting in schedule.latencies:

        def slow(action: str = action, seconds: float = seconds, lasting: float = lasting) -> None:
            fault = ecs.faults.add(action, "latency", count=None, seconds=seconds)
            clock.spawn(lambda: ecs.faults.remove(fault), "model-latency-ends", lasting)

        clock.spawn(slow, "model-ecs-latency", when)


def _replay(cloud: LocalCloud, schedule: Schedule, request_id: str, anchor: str, rng: random.Random) -> None:
    """Deliver earlier events of the Create again (the first one, or continuations), some time after ``anchor``."""
    events = [i.payload for i in cloud.fc.invocations if _request_id(i.payload) == request_id]
    for when, offset in schedule.replays:
        if when != anchor or not events:
            continue
        payload = rng.choice(events)
        cloud.clock.spawn(
            lambda payload=payload: cloud.fc.invoke(payload, "Async", api="direct", delivery="replay"),
            "model-replay",
            offset,
        )


def _request_id(payload: bytes) -> str | None:
    event = json.loads(payload)
    request = event.get("Continuation", {}).get("Request", event)
    return request.get("RequestId")


def _wait(payload: bytes) -> dict:
    return json.loads(payload).get("Continuation", {}).get("Wait", {})


def _hop(payload: bytes) -> int:
    return int(_wait(payload).get("hop", 0))


@dataclass
class Outcome:
    """What one schedule did, for the invariant checks."""

    cloud: LocalCloud
    schedule: Schedule
    stack: object
    create: dict
    answered: dict | None
    answer_at: float | None
    stats: Counter[str]
    requests: list[dict] = field(default_factory=list)  # ROS's requests for the stack
    lost: set[str | None] = field(default_factory=set)  # requests a synchronous run lost before the handler ran

    @property
    def deletes(self) -> list[dict]:
        return [r for r in self.requests if r["RequestType"] == "Delete"]


def _check(cloud, schedule: Schedule, stack, create: dict, answered, answer_at, stats: Counter[str]) -> list[str]:
    outcome = Outcome(cloud, schedule, stack, create, answered, answer_at, stats)
    outcome.requests = [r for r in cloud.ros.requests if r["StackId"] == stack.id]
    outcome.lost = {
        _request_id(i.payload)
        for i in cloud.fc.invocations
        if i.invocation_type == "Sync"
        and i.error
        and "before the handler ran" in i.error
        and _hop(i.payload) == 0
        and b'"Continuation"' not in i.payload
    }
    stats["requests lost by a synchronous run that crashed before the handler"] += len(
        outcome.lost & {r["RequestId"] for r in outcome.requests}
    )
    return [problem for check in INVARIANTS for problem in check(outcome)]


def every_create_is_answered_before_ros_timeout(run: Outcome) -> list[str]:
    """1. Every Create is answered before ROS's Timeout, when the copy fits in it."""
    if run.create["RequestId"] in run.lost:
        return []
    if not run.schedule.fits:
        run.stats["invariant 1: Creates that outlast ROS's Timeout (no answer due)"] += 1
        return []
    run.stats["invariant 1: Creates due an answer"] += 1
    if run.answered is None:
        stack = run.stack
        return [f"1: the Create was not answered within its Timeout ({stack.status}: {stack.reason})"]
    return []


def no_request_gets_two_different_answers(run: Outcome) -> list[str]:
    """2. Never two different answers for one request."""
    problems = []
    for request in run.requests:
        posted = [a for a in run.cloud.ros.answers if a.request_id == request["RequestId"] and a.json]
        distinct = {json.dumps([a.json.get(k) for k in ("Status", "PhysicalResourceId", "Data")]) for a in posted}
        run.stats["invariant 2: requests answered"] += 1 if posted else 0
        if len(distinct) > 1:
            problems.append(f"2: {request['RequestType']} got different answers: {sorted(distinct)}")
        final = [a for a in posted if a.http_status in (200, 403)]  # delivered (or refused as closed)
        run.stats["invariant 2: identical duplicate answers"] += max(0, len(final) - 1)
    return problems


def nothing_is_left_after_the_stacks_delete_or_rollback(run: Outcome) -> list[str]:
    """3. Nothing left after the stack's Delete or rollback (the provider finishes a delete even after ROS gave up)."""
    problems = []
    ecs, stack = run.cloud.ecs, run.stack
    left = [image for region in ecs.regions for image in ecs.images(region) if image.tags.get(STACK_TAG) == stack.id]
    if run.deletes and not {r["RequestId"] for r in run.deletes} <= run.lost:
        run.stats["invariant 3: stacks deleted or rolled back"] += 1
        if left:
            problems.append(f"3: {stack.status} left {[(i.image_id, i.status, i.tags.get(WAITER_TAG)) for i in left]}")
    if stack.status.endswith("FAILED") and run.schedule.fits and not run.lost:
        problems.append(f"3: the stack ended {stack.status}: {stack.reason}")
    return problems


def a_successful_copy_is_removed_only_by_the_stacks_delete(run: Outcome) -> list[str]:
    """4. A copy answered SUCCESS is removed only by the stack's Delete."""
    if run.answered is None or run.answered.get("Status") != "SUCCESS":
        return []
    problems = []
    ecs, ros = run.cloud.ecs, run.cloud.ros
    image_id = run.answered["PhysicalResourceId"]
    first_delete = min((ros.pending(r["RequestId"]).sent_at for r in run.deletes), default=None)
    removals = [
        call
        for call in ecs.calls
        if call.action in ("DeleteImage", "CancelCopyImage")
        and call.status == 200
        and call.params.get("ImageId") == image_id
    ]
    run.stats["invariant 4: copies answered SUCCESS"] += 1
    early = [call.at for call in removals if first_delete is None or call.at < first_delete]
    if early:
        problems.append(f"4: {image_id} answered at {run.answer_at} was removed at {early} before any Delete")
    if first_delete is None and ecs.image(image_id) is None:
        problems.append(f"4: {image_id} answered SUCCESS is gone, yet the stack was never deleted")
    return problems


def extra_deliveries_die_out(run: Outcome) -> list[str]:
    """5. Duplicates die out, in every chain (Create, Update, Delete): an extra delivery costs a bounded number of
    extra invocations."""
    problems = []
    for request in run.requests:
        kind = request["RequestType"]
        runs = _runs_of(run, request)
        extras = [i for i in runs if i.delivery != "first"]
        extra_runs = len(runs) - len({_hop(i.payload) for i in runs})
        run.stats[f"invariant 5: extra deliveries of a {kind}'s events"] += len(extras)
        run.stats[f"invariant 5: extra invocations they caused ({kind})"] += extra_runs
        allowed = sum(EXTRA_PER_DELIVERY + (0 if _hop(i.payload) else UNSEEN_LOOKS) for i in extras)
        if extra_runs > allowed:
            problems.append(
                f"5: {kind}: {len(extras)} extra deliveries cost {extra_runs} extra invocations (bound {allowed})"
            )
        if extras:
            worst = "invariant 5: most extra invocations per extra delivery, x100 (max)"
            run.stats[worst] = max(run.stats[worst], 100 * extra_runs // len(extras))
    return problems


def answers_are_not_multiplied_by_hand_overs(run: Outcome) -> list[str]:
    """6. A request gets at most as many answers taken by ROS as ROS delivered the request itself."""
    problems = []
    for request in run.requests:
        own = sum(1 for i in _runs_of(run, request) if b'"Continuation"' not in i.payload)  # ROS's own event
        taken = [
            a for a in run.cloud.ros.answers if a.request_id == request["RequestId"] and a.json and a.http_status == 200
        ]
        run.stats["invariant 6: answers taken beyond the first"] += max(0, len(taken) - 1)
        if len(taken) > max(1, own):
            problems.append(
                f"6: {request['RequestType']} was answered {len(taken)} times, delivered {own} times by ROS"
            )
    return problems


def _runs_of(run: Outcome, request: dict) -> list:
    return [i for i in run.cloud.fc.invocations if _request_id(i.payload) == request["RequestId"]]


def every_answer_keeps_ros_protocol(run: Outcome) -> list[str]:
    """Every answer is one ROS takes (the stand-in's documented checks)."""
    return [f"protocol: {run.cloud.ros.violations}"] if run.cloud.ros.violations else []


INVARIANTS = (
    every_create_is_answered_before_ros_timeout,
    no_request_gets_two_different_answers,
    nothing_is_left_after_the_stacks_delete_or_rollback,
    a_successful_copy_is_removed_only_by_the_stacks_delete,
    extra_deliveries_die_out,
    answers_are_not_multiplied_by_hand_overs,
    every_answer_keeps_ros_protocol,
)


# -- relay schedules: several resources of one source in one stack, copies made from copies -------------------------

RELAY_SCHEDULES = int(os.environ.get("MODEL_RELAY_SCHEDULES", "12"))
RELAY_CHUNKS = 4
RELAY_DESTINATIONS = ("cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1")


@dataclass
class RelaySchedule:
    """A stack of ``size`` resources of one source: copies conflict, later ones relay from earlier ones."""

    seed: int
    copy_seconds: float
    size: int
    fails_copies: bool  # the stand-in's switch: deleting a relay fails the copies reading from it
    relay_event: str | None  # "delete": a user deletes a relay mid-copy; "fail": a copy (often a relay) fails
    event_at: float
    delete_after: float | None
    duplicates: list[tuple[float, float]]
    ecs_faults: list[tuple[float, str, str, int]]


def draw_relay(seed: int) -> RelaySchedule:
    rng = random.Random(seed)
    copy_seconds = rng.choice([40.0, 300.0, 900.0])
    horizon = copy_seconds * 3
    return RelaySchedule(
        seed=seed,
        copy_seconds=copy_seconds,
        size=rng.randint(2, len(RELAY_DESTINATIONS)),
        fails_copies=rng.random() < 0.5,
        relay_event=rng.choice([None, "delete", "delete", "fail"]),
        event_at=rng.uniform(copy_seconds, horizon),
        delete_after=rng.choice([None, rng.uniform(0, 600), rng.uniform(0, 3600)]),
        duplicates=[(rng.uniform(0, horizon), rng.choice([0.0, rng.uniform(1, 30)])) for _ in range(rng.randint(0, 2))],
        ecs_faults=[
            (
                rng.uniform(0, horizon),
                rng.choice(("CopyImage", "DescribeImages", "DeleteImage")),
                kind,
                rng.randint(1, 3),
            )
            for kind in rng.sample(TRANSIENT, rng.randint(0, 2))
        ],
    )


@pytest.mark.parametrize("chunk", range(RELAY_CHUNKS))
def test_relay_invariants_hold_on_every_schedule(model_cloud, chunk, record_property):
    stats: Counter[str] = Counter()
    failures = []
    for seed in range(chunk, RELAY_SCHEDULES, RELAY_CHUNKS):
        problems = run_relay(model_cloud, draw_relay(seed), stats)
        stats["relay schedules"] += 1
        if problems:
            failures.append(f"relay seed {seed}: " + "; ".join(problems))
    record_property(STATS_PROPERTY, json.dumps(stats))
    assert not failures, "\n".join(failures[:20])


def relay_template(cloud: LocalCloud, destinations: tuple[str, ...]) -> dict:
    template = copy.deepcopy(getattr(cloud, "model_template", None) or cloud.template())
    resource = template["Resources"].pop("CopyImage")
    del template["Outputs"]["ImageId"]
    for index, region in enumerate(destinations):
        twin = copy.deepcopy(resource)
        twin["Properties"]["Parameters"]["DestinationRegionId"] = region
        template["Resources"][f"Copy{index}"] = twin
    return template


def run_relay(cloud: LocalCloud, schedule: RelaySchedule, stats: Counter[str]) -> list[str]:
    """Run one relay schedule; what broke an invariant, in words."""
    cloud.reset(schedule.seed)
    clock, ecs, fc, ros = cloud.clock, cloud.ecs, cloud.fc, cloud.ros
    ecs.copy_seconds = schedule.copy_seconds
    ecs.source_delete_fails_copies = schedule.fails_copies
    source = ecs.seed_image("cn-hangzhou", name=f"relay-source-{schedule.seed}")
    removed_by_user = _arm_relay(cloud, schedule)
    destinations = RELAY_DESTINATIONS[: schedule.size]
    parameters = {"ImageId": source.image_id, "DestinationRegionId": destinations[0], "Timeout": 43200}
    stack = ros.begin_create(relay_template(cloud, destinations), parameters, name=f"relay-{schedule.seed}")
    clock.run_task(stack.operation)
    lineage = _lineage_problems(cloud, stack.id, source.image_id)
    if stack.status == "CREATE_COMPLETE" and schedule.delete_after is not None:
        clock.sleep(schedule.delete_after)
        ros.begin_delete(stack)
        clock.run_task(stack.operation)
    clock.run_until(lambda: fc.pending_async() == 0 and clock.pending() == 0, timeout=30 * 86400)
    stats[f"relay: stacks ending {stack.status}"] += 1
    stats["relay: relays a user deleted while copies read from them"] += sum(1 for i in removed_by_user if i)
    stats["relay: deletes of a relay ECS refused while copies read from it"] += removed_by_user.count("")
    stats["relay: copies made from a relay"] += sum(
        1 for c in ecs.calls_to("CopyImage") if c.status == 200 and c.params.get("ImageId") != source.image_id
    )
    return lineage + _relay_checks(cloud, stack, removed_by_user, stats)


def _arm_relay(cloud: LocalCloud, schedule: RelaySchedule) -> list[str]:
    """Put the schedule's perturbations on the clock; returns the ids of relays a user deleted (filled in later)."""
    clock, ecs, fc = cloud.clock, cloud.ecs, cloud.fc
    removed: list[str] = []
    for when, gap in schedule.duplicates:
        clock.spawn(lambda gap=gap: fc.duplicate_next_async(1, gap), "relay-duplicate", when)
    for when, action, kind, count in schedule.ecs_faults:
        clock.spawn(lambda a=action, k=kind, n=count: ecs.faults.add(a, k, count=n), "relay-fault", when)
    if schedule.relay_event == "fail":
        clock.spawn(lambda: ecs.fail_copies(1, at_fraction=0.5), "relay-failing-copy", schedule.event_at)
    if schedule.relay_event == "delete":

        def delete_a_relay() -> None:
            """Watch for a relay being read from, then delete it as a user would (once)."""
            for _ in range(200):
                with ecs.lock:
                    read = {
                        i.source
                        for r in ecs.regions
                        for i in ecs.images(r)
                        if i.is_copy and i.status in ("Creating", "Waiting")
                    }
                    relays = [i for r in ecs.regions for i in ecs.images(r) if i.is_copy and (r, i.image_id) in read]
                    if relays:
                        try:
                            ecs.delete_image(relays[0].region, relays[0].image_id, force=True)
                            removed.append(relays[0].image_id)
                        except EcsError:  # refused while copies read from it (the documented setting)
                            removed.append("")
                        return
                clock.sleep(schedule.copy_seconds / 20)

        clock.spawn(delete_a_relay, "relay-user-deletes", schedule.event_at)
    return removed


def _lineage_problems(cloud: LocalCloud, stack_id: str, source_id: str) -> list[str]:
    """Every copy of the stack names the original source, and its copied-from tag is what ECS copied it from."""
    problems = []
    for region in cloud.ecs.regions:
        for image in cloud.ecs.images(region):
            if image.tags.get(STACK_TAG) != stack_id:
                continue
            image_id, _, image_region = image.tags.get(COPIED_FROM_TAG, "").partition("@")
            if image.tags.get(SOURCE_IMAGE_TAG) != source_id or image.source != (image_region, image_id):
                problems.append(f"lineage: {image.image_id} tagged {image.tags}, copied from {image.source}")
    return problems


def _relay_checks(cloud: LocalCloud, stack, removed_by_user: list[str], stats: Counter[str]) -> list[str]:
    ecs, ros = cloud.ecs, cloud.ros
    requests = [r for r in ros.requests if r["StackId"] == stack.id]
    problems = [f"protocol: {ros.violations}"] if ros.violations else []
    first_delete = min(
        (ros.pending(r["RequestId"]).sent_at for r in requests if r["RequestType"] == "Delete"), default=None
    )
    for request in requests:
        posted = [a for a in ros.answers if a.request_id == request["RequestId"] and a.json]
        distinct = {json.dumps([a.json.get(k) for k in ("Status", "PhysicalResourceId", "Data")]) for a in posted}
        if len(distinct) > 1:
            problems.append(f"2: {request['RequestType']} got different answers: {sorted(distinct)}")
        if request["RequestType"] == "Create" and ros.pending(request["RequestId"]).answer is None:
            problems.append(f"1: the Create of {request['LogicalResourceId']} was not answered")
        answer = ros.pending(request["RequestId"]).answer or {}
        image_id = answer.get("PhysicalResourceId")
        if request["RequestType"] != "Create" or answer.get("Status") != "SUCCESS" or image_id in removed_by_user:
            continue
        stats["relay: copies answered SUCCESS"] += 1
        removals = [
            c.at
            for c in ecs.calls
            if c.action in ("DeleteImage", "CancelCopyImage")
            and c.status == 200
            and c.params.get("ImageId") == image_id
        ]
        if any(first_delete is None or at < first_delete for at in removals) or (
            first_delete is None and ecs.image(image_id) is None
        ):
            problems.append(f"4: {image_id} answered SUCCESS was removed before any Delete")
    left = [i.image_id for r in ecs.regions for i in ecs.images(r) if i.tags.get(STACK_TAG) == stack.id]
    if first_delete is not None and left:
        problems.append(f"3: {stack.status} left {left}")
    return problems
