"""Delete: exact, boring semantics. Not found is success; nothing is removed that is not provably ours."""

from __future__ import annotations

import json

from conftest import DESTINATION, actions, copies_in, properties, request_and_answer


def create(cloud, source, **extra) -> str:
    _, answer = request_and_answer(cloud, "Create", properties(source, **extra))
    assert answer["Status"] == "SUCCESS", answer
    cloud.ecs.reset_calls()
    return answer["PhysicalResourceId"]


def start_long_create(cloud, source) -> dict:
    """A Create whose copy outlasts the first invocation: it returns with the copy still in progress."""
    request = cloud.ros.new_request("Create", properties(source))
    _, result = cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert result == {"Status": "WAITING"}
    cloud.ros.expire(request["RequestId"])  # as ROS does when its Timeout passes
    return request


def test_retain_on_delete_touches_nothing(cloud, source):
    image_id = create(cloud, source)
    _, answer = request_and_answer(cloud, "Delete", properties(source, RetainOnDelete="True"), physical_id=image_id)
    assert answer == {
        "Status": "SUCCESS",
        "PhysicalResourceId": image_id,
        "StackId": answer["StackId"],
        "RequestId": answer["RequestId"],
        "LogicalResourceId": "CopyImage",
        "Data": {"ImageId": image_id},
    }
    assert cloud.ecs.calls == []
    assert cloud.ecs.image(image_id).status == "Available"


def test_delete_removes_the_image_and_keeps_snapshots_by_default(cloud, source):
    image_id = create(cloud, source)
    snapshots = cloud.ecs.image(image_id).snapshot_ids
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id=image_id)
    assert answer["Status"] == "SUCCESS"
    assert actions(cloud) == ["DescribeImages", "DeleteImage", "DescribeImages"]  # look, delete, gone
    assert cloud.ecs.image(image_id) is None
    assert set(snapshots) <= set(cloud.ecs.snapshots(DESTINATION))


def test_delete_snapshots_removes_them_after_the_image(cloud, source):
    image_id = create(cloud, source)
    snapshots = list(cloud.ecs.image(image_id).snapshot_ids)
    assert len(snapshots) == 2
    _, answer = request_and_answer(cloud, "Delete", properties(source, DeleteSnapshots=True), physical_id=image_id)
    assert answer["Status"] == "SUCCESS", answer
    assert [c.params["SnapshotId"] for c in cloud.ecs.calls_to("DeleteSnapshot")] == snapshots
    assert actions(cloud).index("DeleteImage") < actions(cloud).index("DeleteSnapshot")
    assert not set(snapshots) & set(cloud.ecs.snapshots(DESTINATION))


def test_image_in_use_needs_force_delete(cloud, source):
    image_id = create(cloud, source)
    cloud.ecs.image(image_id).in_use = True
    _, refused = request_and_answer(cloud, "Delete", properties(source), physical_id=image_id)
    assert refused["Status"] == "FAILED"
    assert "ECS DeleteImage failed: ImageUsingByInstance" in refused["Reason"]
    assert refused["PhysicalResourceId"] == image_id
    cloud.ecs.reset_calls()
    _, forced = request_and_answer(cloud, "Delete", properties(source, ForceDelete="true"), physical_id=image_id)
    assert forced["Status"] == "SUCCESS", forced
    (delete,) = cloud.ecs.calls_to("DeleteImage")
    assert delete.params["Force"].lower() == "true"
    assert cloud.ecs.image(image_id) is None


def test_missing_image_is_success(cloud, source):
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id="m-alreadygone01")
    assert answer["Status"] == "SUCCESS"
    assert actions(cloud) == ["DescribeImages"]
    assert "Available" in cloud.ecs.calls[0].params["Status"] and "Creating" in cloud.ecs.calls[0].params["Status"]


def test_copy_in_progress_is_cancelled(make_cloud):
    cloud = make_cloud(copy_seconds=3600)
    source = cloud.seed_image("big-source")
    start_long_create(cloud, source)
    (copy,) = copies_in(cloud)
    assert copy.status == "Creating"
    cloud.ecs.reset_calls()
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id=copy.image_id)
    assert answer["Status"] == "SUCCESS"
    (cancel,) = cloud.ecs.calls_to("CancelCopyImage")
    assert (cancel.params["ImageId"], cancel.params["RegionId"]) == (copy.image_id, DESTINATION)
    assert "DeleteImage" not in actions(cloud)
    assert copies_in(cloud) == []


def test_no_image_id_finds_the_leftover_by_its_tags_only(make_cloud):
    cloud = make_cloud(copy_seconds=3600)
    source = cloud.seed_image("big-source")
    create_request = start_long_create(cloud, source)
    other_stack = cloud.ros.new_request("Create", properties(source))  # another stack's copy must survive
    cloud.fc.invoke(json.dumps(other_stack).encode(), invocation_type="Sync")
    assert len(copies_in(cloud)) == 2
    cloud.ecs.reset_calls()
    _, answer = request_and_answer(
        cloud, "Delete", properties(source), settle=False, stack_id=create_request["StackId"], physical_id=None
    )
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"].startswith("copyimage-failed-")  # ROS gave none; one is still needed
    (lookup,) = [call for call in cloud.ecs.calls_to("DescribeImages") if "Tag.1.Key" in call.params]
    assert {lookup.params["Tag.1.Key"], lookup.params["Tag.2.Key"]} == {"copyimage:stack-id", "copyimage:logical-id"}
    remaining = copies_in(cloud)
    assert [image.tags["copyimage:stack-id"] for image in remaining] == [other_stack["StackId"]]


def test_failed_create_marker_with_nothing_left_deletes_nothing(cloud, source):
    _, answer = request_and_answer(cloud, "Delete", properties(source), physical_id="copyimage-failed-abc")
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == "copyimage-failed-abc"
    assert actions(cloud) == ["DescribeImages"]
    assert not cloud.ecs.calls_to("DeleteImage") and not cloud.ecs.calls_to("CancelCopyImage")


def test_rollback_after_an_unknown_destination_region_succeeds(cloud, source):
    props = properties(source, DestinationRegionId="xx-nowhere-1")
    _, failed = request_and_answer(cloud, "Create", props)
    assert failed["Status"] == "FAILED" and "IncorrectDestinationRegion" in failed["Reason"]
    _, deleted = request_and_answer(cloud, "Delete", props, physical_id=failed["PhysicalResourceId"])
    assert deleted["Status"] == "SUCCESS"  # no image can exist in a region ECS does not know


def test_a_kept_copy_survives_a_later_failed_create_of_the_same_logical_id(cloud, source):
    kept = create(cloud, source)
    stack_id = cloud.ros.requests[-1]["StackId"]
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
    assert cloud.ecs.image(kept).status == "Available"  # handed over to ROS once, so never taken for a leftover
    assert not cloud.ecs.calls_to("DeleteImage")


def test_snapshots_that_cannot_be_deleted_are_named(cloud, source):
    image_id = create(cloud, source)
    snapshots = cloud.ecs.image(image_id).snapshot_ids
    cloud.ecs.faults.add("DeleteSnapshot", "server_error", count=None)
    props = properties(source, DeleteSnapshots=True, ForceDelete=True)
    _, answer = request_and_answer(cloud, "Delete", props, physical_id=image_id)
    assert answer["Status"] == "FAILED"
    assert f"the image {image_id} was deleted, but not its snapshots {', '.join(snapshots)}" in answer["Reason"]
    assert cloud.ecs.image(image_id) is None
    assert all(call.params["Force"].lower() == "true" for call in cloud.ecs.calls_to("DeleteSnapshot"))


def test_delete_is_not_blocked_by_a_property_an_update_broke(cloud, source):
    image_id = create(cloud, source)
    broken = properties(source, DestinationImageNmae="typo", DestinationDescription="x")
    _, answer = request_and_answer(cloud, "Delete", broken, physical_id=image_id)
    assert answer["Status"] == "SUCCESS"
    assert cloud.ecs.image(image_id) is None
