"""One chain per request, for Create, Update and Delete: slow writes never strand it, and twins die at once.

Two mechanisms, both in function/copyimage/waiting.py: a copy's mark names the chain and the hop that wrote it (a
mark that lands late is still the chain's), and every hand-over is an FC task named by chain and hop (FC refuses
a task id twice, so of two twins one schedules and the other stops).
"""

from __future__ import annotations

import json

import pytest
from conftest import DESTINATION, copies_in, properties, request_and_answer

# Every ECS action that changes something.
WRITES = (
    "CopyImage",
    "TagResources",
    "UntagResources",
    "ModifyImageAttribute",
    "JoinResourceGroup",
    "CancelCopyImage",
    "DeleteImage",
    "DeleteSnapshot",
)
SLOW_SECONDS = 3.0


def tags(**pairs: str) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in pairs.items()]


def request_id_of(payload: bytes) -> str | None:
    event = json.loads(payload)
    return event.get("Continuation", {}).get("Request", event).get("RequestId")


def runs_of(cloud, request_id: str) -> list:
    return [run for run in cloud.fc.invocations if request_id_of(run.payload) == request_id]


def answers_to(cloud, request_id: str) -> list[dict]:
    return [answer.json for answer in cloud.ros.answers if answer.request_id == request_id and answer.json]


def hand_overs(cloud, request_id: str) -> int:
    return max(
        (
            int(json.loads(r.payload).get("Continuation", {}).get("Wait", {}).get("hop", 0))
            for r in runs_of(cloud, request_id)
        ),
        default=0,
    )


def create(cloud, source, **extra) -> tuple[dict, dict | None]:
    return request_and_answer(cloud, "Create", properties(source, Tag=tags(team="web"), **extra))


def update(cloud, source, image_id: str, stack_id: str) -> tuple[dict, dict | None]:
    old = properties(source, Tag=tags(team="web"))
    new = properties(source, Tag=tags(team="ops", env="dev"), DestinationImageName="renamed-copy")
    return request_and_answer(cloud, "Update", new, physical_id=image_id, old_properties=old, stack_id=stack_id)


def delete(cloud, source, image_id: str, stack_id: str) -> tuple[dict, dict | None]:
    props = properties(source, Tag=tags(team="ops", env="dev"), DeleteSnapshots=True)
    return request_and_answer(cloud, "Delete", props, physical_id=image_id, stack_id=stack_id)


# --- slow writes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", WRITES)
def test_a_slow_write_never_strands_a_create_update_or_delete(make_cloud, action):
    cloud = make_cloud(copy_seconds=120.0)
    source = cloud.seed_image("golden-source", snapshot_count=2)
    cloud.ecs.faults.add(action, "latency", count=None, seconds=SLOW_SECONDS)  # the effect lands 3 s late

    created, answer = create(cloud, source)
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    assert len(answers_to(cloud, created["RequestId"])) == 1
    assert hand_overs(cloud, created["RequestId"]) >= 3  # the copy was waited for across invocations
    image_id = answer["PhysicalResourceId"]
    assert cloud.ecs.image(image_id).status == "Available"

    updated, answer = update(cloud, source, image_id, created["StackId"])
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    assert len(answers_to(cloud, updated["RequestId"])) == 1
    image = cloud.ecs.image(image_id)
    assert image.name == "renamed-copy" and image.tags["team"] == "ops" and image.tags["env"] == "dev"

    deleted, answer = delete(cloud, source, image_id, created["StackId"])
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    assert len(answers_to(cloud, deleted["RequestId"])) == 1
    assert copies_in(cloud, DESTINATION) == []


# --- every event twice ------------------------------------------------------------------------------------------


def lifecycle_with_hand_overs(make_cloud, duplicate_gap: float | None) -> dict[str, tuple[int, int, int]]:
    """Create, Update and Delete, each handing over at least five times; per request type (invocations, answers,
    hand-overs). ``duplicate_gap``: FC delivers every async event twice, the copy that much later."""
    cloud = make_cloud(copy_seconds=300.0)
    cloud.ecs.deleted_listing_seconds = 400.0  # a deleted copy stays listed: the Delete looks again and again
    source = cloud.seed_image("golden-source", snapshot_count=2)
    if duplicate_gap is not None:
        cloud.fc.duplicate_every_async(duplicate_gap)
    created, answer = create(cloud, source)
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    image_id = answer["PhysicalResourceId"]
    # ModifyImageAttribute throttled for 15 minutes: the Update tries again later, five times.
    throttled = cloud.ecs.faults.add("ModifyImageAttribute", "throttle", count=None)
    cloud.clock.spawn(lambda: cloud.ecs.faults.remove(throttled), "throttle-ends", 900.0)
    updated, answer = update(cloud, source, image_id, created["StackId"])
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    cloud.clock.run_until(lambda: cloud.clock.pending() == 0, timeout=7200)
    deleted, answer = delete(cloud, source, image_id, created["StackId"])
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    cloud.clock.run_until(lambda: cloud.clock.pending() == 0 and cloud.fc.pending_async() == 0, timeout=7200)
    assert copies_in(cloud, DESTINATION) == []
    return {
        name: (
            len(runs_of(cloud, r["RequestId"])),
            len(answers_to(cloud, r["RequestId"])),
            hand_overs(cloud, r["RequestId"]),
        )
        for name, r in (("Create", created), ("Update", updated), ("Delete", deleted))
    }


@pytest.mark.parametrize("gap", [0.0, 0.3], ids=["twins at the same instant", "twins 0.3 s apart"])
def test_with_every_event_delivered_twice_each_request_costs_at_most_twice_and_is_answered_at_most_twice(
    make_cloud, gap
):
    calm = lifecycle_with_hand_overs(make_cloud, None)
    doubled = lifecycle_with_hand_overs(make_cloud, gap)
    for name in ("Create", "Update", "Delete"):
        runs, answers, hops = calm[name]
        assert hops >= 5, f"the undisturbed {name} handed over only {hops} times"
        assert answers == 1
        twice_runs, twice_answers, _ = doubled[name]
        assert twice_answers <= 2, f"{name} was answered {twice_answers} times"
        assert twice_runs <= 2 * runs, f"{name}: {twice_runs} invocations, undisturbed {runs}"
