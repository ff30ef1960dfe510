"""Delete: exact, patient semantics. Not found is success; slow is waited for; nothing that is not ours is touched."""

from __future__ import annotations

import json

import pytest
from conftest import DESTINATION, actions, copies_in, properties, request_and_answer, send
from copyimage.properties import LOGICAL_ID_TAG, STACK_TAG, WAITER_TAG
from copyimage.protocol import FAILED_CREATE_PREFIX
from copyimage.resource import RETAINED

from emulator.cloud import LocalCloud


def create(cloud, source, **extra) -> str:
    _, answer = request_and_answer(cloud, "Create", properties(source, **extra))
    assert answer["Status"] == "SUCCESS", answer
    cloud.ecs.reset_calls()
    return answer["PhysicalResourceId"]


def delete(cloud, source, image_id, **extra) -> dict:
    stack_id = cloud.ecs.image(image_id).tags[STACK_TAG] if cloud.ecs.image(image_id) else None
    _, answer = request_and_answer(
        cloud, "Delete", properties(source, **extra), physical_id=image_id, stack_id=stack_id
    )
    return answer


def start_long_create(cloud, source) -> dict:
    """A Create whose copy outlasts the first invocation: it returns with the copy still in progress."""
    request = cloud.ros.new_request("Create", properties(source))
    _, result = cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert result == {"Status": "WAITING"}
    cloud.ros.expire(request["RequestId"])  # as ROS does when its Timeout passes
    return request


def test_retain_on_delete_keeps_the_copy_and_hands_it_over_to_you(cloud, source):
    image_id = create(cloud, source)
    answer = delete(cloud, source, image_id, RetainOnDelete="True")
    assert answer["Status"] == "SUCCESS" and answer["PhysicalResourceId"] == image_id
    assert not cloud.ecs.calls_to("DeleteImage") and not cloud.ecs.calls_to("CancelCopyImage")
    image = cloud.ecs.image(image_id)
    assert image.status == "Available"
    assert image.tags[WAITER_TAG].startswith(RETAINED)  # never again taken for a leftover


def test_delete_removes_the_image_once_settled_and_keeps_snapshots_by_default(cloud, source):
    image_id = create(cloud, source)
    snapshots = cloud.ecs.image(image_id).snapshot_ids
    answer = delete(cloud, source, image_id)
    assert answer["Status"] == "SUCCESS"
    assert actions(cloud).count("DeleteImage") == 1
    assert actions(cloud)[-1] == "DescribeImages"  # looked again: gone
    assert cloud.ecs.image(image_id) is None
    assert set(snapshots) <= set(cloud.ecs.snapshots(DESTINATION))
    assert cloud.ros.violations == []


def test_delete_snapshots_removes_them_after_the_image(cloud, source):
    image_id = create(cloud, source)
    snapshots = list(cloud.ecs.image(image_id).snapshot_ids)
    assert len(snapshots) == 2
    answer = delete(cloud, source, image_id, DeleteSnapshots=True)
    assert answer["Status"] == "SUCCESS", answer
    assert [c.params["SnapshotId"] for c in cloud.ecs.calls_to("DeleteSnapshot")] == snapshots
    assert actions(cloud).index("DeleteImage") < actions(cloud).index("DeleteSnapshot")
    assert not set(snapshots) & set(cloud.ecs.snapshots(DESTINATION))


def test_image_in_use_needs_force_delete(cloud, source):
    image_id = create(cloud, source)
    cloud.ecs.image(image_id).in_use = True
    refused = delete(cloud, source, image_id)
    assert refused["Status"] == "FAILED"
    assert "ECS DeleteImage failed: ImageUsingByInstance" in refused["Reason"]
    assert refused["PhysicalResourceId"] == image_id
    cloud.ecs.reset_calls()
    forced = delete(cloud, source, image_id, ForceDelete="true")
    assert forced["Status"] == "SUCCESS", forced
    (call,) = cloud.ecs.calls_to("DeleteImage")
    assert call.params["Force"].lower() == "true"
    assert cloud.ecs.image(image_id) is None


def test_missing_image_is_success(cloud, source):
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id="m-alreadygone01")
    assert answer["Status"] == "SUCCESS"
    assert set(actions(cloud)) == {"DescribeImages"}
    assert all("Deprecated" in call.params["Status"] for call in cloud.ecs.calls)


def test_copy_in_progress_is_cancelled(make_cloud):
    cloud = make_cloud(copy_seconds=3600)
    source = cloud.seed_image("big-source")
    start_long_create(cloud, source)
    (copy,) = copies_in(cloud)
    assert copy.status == "Creating"
    cloud.ecs.reset_calls()
    _, answer = request_and_answer(
        cloud, "Delete", properties(source), physical_id=copy.image_id, stack_id=copy.tags[STACK_TAG]
    )
    assert answer["Status"] == "SUCCESS"
    (cancel,) = cloud.ecs.calls_to("CancelCopyImage")
    assert (cancel.params["ImageId"], cancel.params["RegionId"]) == (copy.image_id, DESTINATION)
    assert "DeleteImage" not in actions(cloud)
    assert copies_in(cloud) == []


def test_no_image_id_finds_the_leftover_by_its_tags_only(make_cloud):
    cloud = make_cloud(copy_seconds=3600)
    source, other_source = cloud.seed_image("big-source"), cloud.seed_image("other-source")
    create_request = start_long_create(cloud, source)
    other_stack = cloud.ros.new_request("Create", properties(other_source))  # another stack's copy must survive
    cloud.fc.invoke(json.dumps(other_stack).encode(), invocation_type="Sync")
    assert len(copies_in(cloud)) == 2
    cloud.ecs.reset_calls()
    _, answer = request_and_answer(
        cloud, "Delete", properties(source), settle=False, stack_id=create_request["StackId"], physical_id=None
    )
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"].startswith(FAILED_CREATE_PREFIX)  # ROS gave none; one is still needed
    lookups = [call for call in cloud.ecs.calls_to("DescribeImages") if "Tag.1.Key" in call.params]
    assert lookups and {lookups[0].params["Tag.1.Key"], lookups[0].params["Tag.2.Key"]} == {
        STACK_TAG,
        LOGICAL_ID_TAG,
    }
    remaining = copies_in(cloud)
    assert [image.tags[STACK_TAG] for image in remaining] == [other_stack["StackId"]]


def test_failed_create_marker_with_nothing_left_deletes_nothing(cloud, source):
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id="copyimage-failed-abc")
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == "copyimage-failed-abc"
    assert actions(cloud) == ["DescribeImages"]
    assert not cloud.ecs.calls_to("DeleteImage") and not cloud.ecs.calls_to("CancelCopyImage")


def test_failed_create_marker_delete_lets_go_when_ecs_refuses_to_remove_a_leftover(cloud, source):
    # A leftover of this resource that ECS will not delete (used by an instance, no ForceDelete): the marker says
    # nothing was created, so the Delete still lets ROS go; the leftover keeps its tags.
    leftover = create(cloud, source)
    cloud.ecs.image(leftover).in_use = True
    stack_id = cloud.ecs.image(leftover).tags[STACK_TAG]
    _, answer = request_and_answer(
        cloud, "Delete", properties(source), physical_id=FAILED_CREATE_PREFIX + "abc", stack_id=stack_id
    )
    assert answer["Status"] == "SUCCESS", answer
    assert [c.error_code for c in cloud.ecs.calls_to("DeleteImage")] == ["ImageUsingByInstance"]
    assert cloud.ecs.image(leftover).status == "Available"


@pytest.mark.parametrize(
    "shape", [None, "ImageId=m-1", ["m-1"], 42, {}, {"ImageId": 42}, {"DestinationRegionId": "cn-shanghai"}]
)
def test_failed_create_marker_delete_lets_go_whatever_shape_its_properties_have(cloud, shape):
    # Properties no Create could have used: nothing was made, so ROS must be able to delete the resource at once,
    # with no ECS call and nothing to ask ROS (whoever sent it, nothing is done).
    request = cloud.ros.new_request("Delete", {}, physical_id=FAILED_CREATE_PREFIX + "abc")
    request["ResourceProperties"] = shape
    answer = send(cloud, request)
    assert answer is not None and answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == FAILED_CREATE_PREFIX + "abc"
    assert cloud.ecs.calls == []
    assert cloud.ros.api.calls == []


def test_an_image_without_this_resources_tags_is_never_deleted(cloud, source):
    stranger = cloud.seed_image("someone-elses", region=DESTINATION)
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id=stranger.image_id)
    assert answer["Status"] == "SUCCESS"
    assert cloud.ecs.image(stranger.image_id).status == "Available"
    assert not cloud.ecs.calls_to("DeleteImage")


def test_a_kept_copy_survives_a_later_failed_create_of_the_same_logical_id(cloud, source):
    kept = create(cloud, source)
    stack_id = cloud.ecs.image(kept).tags[STACK_TAG]
    _, retained = request_and_answer(
        cloud, "Delete", properties(source, RetainOnDelete=True), stack_id=stack_id, physical_id=kept
    )
    assert retained["Status"] == "SUCCESS"
    # The logical id comes back to the stack, and its Create fails; ROS then rolls back with the marker.
    bad = properties(source, ImageId="m-doesnotexist")
    _, failed = request_and_answer(cloud, "Create", bad, stack_id=stack_id)
    assert failed["Status"] == "FAILED"
    _, rolled_back = request_and_answer(
        cloud, "Delete", bad, stack_id=stack_id, physical_id=failed["PhysicalResourceId"]
    )
    assert rolled_back["Status"] == "SUCCESS"
    assert cloud.ecs.image(kept).status == "Available"
    assert not cloud.ecs.calls_to("DeleteImage")


def test_delete_is_not_blocked_by_a_property_an_update_broke(cloud, source):
    image_id = create(cloud, source)
    answer = delete(cloud, source, image_id, DestinationImageNmae="typo", DestinationDescription="x")
    assert answer["Status"] == "SUCCESS"
    assert cloud.ecs.image(image_id) is None


# --- patience: ECS slow or busy is not a failure -------------------------------------------------------------


def test_a_deleted_image_still_listed_is_waited_for(cloud, source):
    image_id = create(cloud, source)
    cloud.ecs.deleted_listing_seconds = 400  # not documented: how long ECS lists a deleted image
    answer = delete(cloud, source, image_id)
    assert answer["Status"] == "SUCCESS"
    (call,) = cloud.ecs.calls_to("DeleteImage")  # deleted once, then watched until it is gone
    last_look = cloud.ecs.calls_to("DescribeImages")[-1]
    assert last_look.at >= call.at + 400
    assert len(cloud.fc.invocations) > 2  # the watching was handed over instead of failing after ten looks


def test_snapshots_still_linked_to_the_deleted_image_are_retried(cloud, source):
    image_id = create(cloud, source)
    cloud.ecs.snapshot_release_seconds = 300  # SnapshotCreatedImage for a while after DeleteImage
    snapshots = cloud.ecs.image(image_id).snapshot_ids
    answer = delete(cloud, source, image_id, DeleteSnapshots=True)
    assert answer["Status"] == "SUCCESS", answer
    codes = [call.error_code for call in cloud.ecs.calls_to("DeleteSnapshot")]
    assert "SnapshotCreatedImage" in codes and codes[-2:] == [None, None]
    assert not set(snapshots) & set(cloud.ecs.snapshots(DESTINATION))


@pytest.mark.parametrize("ignored", [False, True])
def test_deleteimage_not_found_is_success_whichever_way_ecs_says_it(cloud, source, ignored):
    image_id = create(cloud, source)
    cloud.ecs.missing_image_delete_ignored = ignored  # the table says 404, the parameter text "ignored"
    cloud.ecs.deleted_listing_seconds = 1000  # it is still listed, so the provider calls DeleteImage again
    stack_id = cloud.ecs.image(image_id).tags[STACK_TAG]
    _, first = request_and_answer(cloud, "Delete", properties(source), physical_id=image_id, stack_id=stack_id)
    assert first["Status"] == "SUCCESS"


def test_throttling_that_outlasts_the_retries_is_handed_over(cloud, source):
    image_id = create(cloud, source)
    cloud.ecs.faults.add("DeleteImage", "throttle", count=9)  # two invocations' worth of retries and more
    answer = delete(cloud, source, image_id)
    assert answer["Status"] == "SUCCESS"
    assert cloud.ecs.image(image_id) is None
    assert [c.error_code for c in cloud.ecs.calls_to("DeleteImage")][-1] is None


def test_snapshots_that_can_never_be_deleted_are_named_when_the_wait_runs_out(cloud, source):
    image_id = create(cloud, source)
    snapshots = cloud.ecs.image(image_id).snapshot_ids
    cloud.ecs.faults.add("DeleteSnapshot", "server_error", count=None)
    answer = delete(cloud, source, image_id, DeleteSnapshots=True, ForceDelete=True)
    assert answer["Status"] == "FAILED"
    assert "gave up after waiting 36" in answer["Reason"] and "the limit is 3600 s" in answer["Reason"]
    assert all(snapshot in answer["Reason"] for snapshot in snapshots)
    assert cloud.ecs.image(image_id) is None
    assert all(call.params["Force"].lower() == "true" for call in cloud.ecs.calls_to("DeleteSnapshot"))


def test_a_deprecated_copy_is_found_and_deleted(cloud, source):
    image_id = create(cloud, source)
    cloud.ecs.image(image_id).status = "Deprecated"  # as ModifyImageAttribute Status=Deprecated does
    answer = delete(cloud, source, image_id)
    assert answer["Status"] == "SUCCESS"
    assert cloud.ecs.image(image_id) is None


def test_rollback_of_a_region_ecs_does_not_serve_succeeds_at_once(cloud, source):
    props = properties(source, DestinationRegionId="xx-nowhere-1")
    _, failed = request_and_answer(cloud, "Create", props)
    assert failed["Status"] == "FAILED"
    assert "Property DestinationRegionId: 'xx-nowhere-1' is not a region ECS serves" in failed["Reason"]
    assert not cloud.ecs.calls_to("CopyImage")  # refused before any copy
    started = cloud.clock.now()
    _, deleted = request_and_answer(cloud, "Delete", props, physical_id=failed["PhysicalResourceId"])
    assert deleted["Status"] == "SUCCESS"  # no image can exist in a region ECS does not serve
    assert cloud.clock.now() - started < 30
    assert len(cloud.fc.invocations) == 2  # one for each request: nothing handed over


def test_delete_and_update_are_patient_on_a_pessimistic_ecs():
    with LocalCloud(copy_seconds=30) as cloud:
        cloud.ecs.deleted_listing_seconds = 90
        cloud.ecs.snapshot_release_seconds = 200
        cloud.ecs.tag_in_progress_refused = True
        source = cloud.seed_image("src")
        image_id = create(cloud, source)
        answer = delete(cloud, source, image_id, DeleteSnapshots=True)
        assert answer["Status"] == "SUCCESS", answer
        assert cloud.ecs.image(image_id) is None
        assert cloud.ros.violations == []
