"""Where the documentation settles nothing, the stand-ins have a switch; the provider must pass in the worse setting.

Each switch below is described in docs/conformance.md. A whole lifecycle runs with each one on, and with all of
them on at once: a long copy created (its first continuation delivered twice), updated, and deleted.
"""

from __future__ import annotations

import json

import pytest
from conftest import DESTINATION, copies_in
from copyimage.properties import WAITER_TAG
from copyimage.waiting import ANSWERED

from emulator.cloud import LocalCloud

SWITCHES = {
    "ECS refuses to tag an image that is not Available yet": lambda c: setattr(c.ecs, "tag_in_progress_refused", True),
    "ECS lists a deleted image for ten minutes": lambda c: setattr(c.ecs, "deleted_listing_seconds", 600.0),
    "DeleteSnapshot says SnapshotCreatedImage for five minutes": lambda c: setattr(
        c.ecs, "snapshot_release_seconds", 300.0
    ),
    "DeleteImage of a missing image is ignored": lambda c: setattr(c.ecs, "missing_image_delete_ignored", True),
    "ROS invokes the function synchronously": lambda c: setattr(c.ros, "invocation_type", "Sync"),
    "ROS takes a late or second answer with 200": lambda c: setattr(c.ros, "accept_late_answers", True),
    "FC delivers every async event again two hours later": lambda c: setattr(c.fc, "redeliver_after", 7200.0),
}


def lifecycle(cloud: LocalCloud) -> None:
    source = cloud.seed_image("golden", snapshot_count=2)
    cloud.fc.duplicate_next_async(2)  # FC delivers the first continuations twice
    stack = cloud.ros.create_stack(
        cloud.template(), {"ImageId": source.image_id, "DestinationRegionId": DESTINATION}, timeout_minutes=1440
    )
    assert stack.status == "CREATE_COMPLETE", stack.reason
    image_id = stack.outputs["ImageId"]
    stack = cloud.ros.update_stack(stack, {"Tag": "team=web"})
    assert stack.status == "UPDATE_COMPLETE", stack.reason
    cloud.clock.sleep(3 * 3600)  # late redeliveries, if any, arrive while the copy is the stack's
    assert cloud.ecs.image(image_id).status == "Available"
    stack = cloud.ros.delete_stack(stack)
    assert stack.status == "DELETE_COMPLETE", stack.reason
    cloud.fc.wait_idle()
    cloud.clock.run_idle()
    assert copies_in(cloud) == []
    for request in cloud.ros.requests:
        answers = {
            json.dumps([a.json.get(k) for k in ("Status", "PhysicalResourceId", "Data")])
            for a in cloud.ros.answers
            if a.request_id == request["RequestId"] and a.json
        }
        assert len(answers) <= 1, (request["RequestType"], answers)
    assert cloud.ros.violations == []


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_a_lifecycle_with_one_pessimistic_switch(make_cloud, switch):
    cloud = make_cloud(copy_seconds=1800)
    SWITCHES[switch](cloud)
    lifecycle(cloud)


def test_a_lifecycle_with_every_pessimistic_switch_at_once(make_cloud):
    cloud = make_cloud(copy_seconds=1800)
    for apply in SWITCHES.values():
        apply(cloud)
    lifecycle(cloud)


def test_an_answer_ros_could_not_take_before_its_timeout_leaves_the_copy_to_the_rollback(make_cloud):
    cloud = make_cloud(copy_seconds=40, accept_late_answers=True)
    source = cloud.seed_image("golden")
    cloud.ros.fail_answers_until(cloud.clock.now() + 70.3)  # down until just after the Timeout (70 s)
    stack = cloud.ros.create_stack(
        cloud.template(), {"ImageId": source.image_id, "DestinationRegionId": DESTINATION, "Timeout": 70}
    )
    assert stack.status == "CREATE_ROLLBACK_COMPLETE", stack.reason
    cloud.fc.wait_idle()
    cloud.clock.run_idle()
    (create,) = [r for r in cloud.ros.requests if r["RequestType"] == "Create"]
    tried = [a for a in cloud.ros.answers if a.request_id == create["RequestId"]]
    assert tried and {a.json["Status"] for a in tried} == {"SUCCESS"} and not any(a.accepted for a in tried)
    # The answer's receipt tried again later, found the copy removed by the rollback, and said nothing.
    receipts = [run for run in cloud.fc.invocations if run.task_id and run.result == {"Status": "STOPPED"}]
    assert receipts
    assert copies_in(cloud) == []  # the rollback Delete removed it


def test_without_tagging_a_copy_in_progress_the_first_token_carries_the_wait(make_cloud):
    cloud = make_cloud(copy_seconds=3600)
    cloud.ecs.tag_in_progress_refused = True
    source = cloud.seed_image("golden")
    request = cloud.ros.new_request("Create", {"ImageId": source.image_id, "DestinationRegionId": DESTINATION})
    cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Async")
    answer = cloud.ros.wait_answer(request["RequestId"])
    assert answer["Status"] == "SUCCESS"
    refused = [c for c in cloud.ecs.calls_to("TagResources") if c.error_code == "InvalidStatus.ImageIsCreating"]
    assert len(refused) >= 3  # every mark during the copy failed; the chain went on under CopyImage's tag
    cloud.fc.wait_idle()
    assert cloud.ecs.image(answer["PhysicalResourceId"]).tags[WAITER_TAG].startswith(ANSWERED)
