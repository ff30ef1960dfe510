"""Create, Update and Delete of a stack built from template.yml, end to end on the local cloud."""

from __future__ import annotations

import json

from conftest import DESTINATION, actions, copies_in, properties, request_and_answer, send
from copyimage.framework import first_token
from copyimage.properties import (
    COPIED_FROM_TAG,
    LOGICAL_ID_TAG,
    RESERVED_TAG_PREFIX,
    SOURCE_IMAGE_TAG,
    SOURCE_REGION_TAG,
    STACK_TAG,
    WAITER_TAG,
)
from copyimage.protocol import FAILED_CREATE_PREFIX
from copyimage.waiting import ANSWERED

from emulator.ecs import IMAGE_STATUSES


def sent_tags(params: dict, prefix: str = "Tag") -> dict:
    keys = {k: v for k, v in params.items() if k.startswith(prefix) and k.endswith(".Key")}
    return {v: params.get(k[: -len(".Key")] + ".Value", "") for k, v in keys.items()}


def create_from_the_template(cloud, source):
    """The stack of template.yml with a name, a description and two tags, created and settled."""
    stack = cloud.ros.create_stack(
        cloud.template(),
        {
            "ImageId": source.image_id,
            "DestinationRegionId": DESTINATION,
            "DestinationImageName": "golden-copy",
            "DestinationDescription": "First copy",
            "Tag": "team=web,env=dev",
        },
    )
    assert stack.status == "CREATE_COMPLETE", stack.reason
    cloud.fc.wait_idle()
    return stack


def test_create_through_the_template_makes_one_tagged_copy_and_marks_it_answered(cloud, source):
    stack = create_from_the_template(cloud, source)
    image_id = stack.outputs["ImageId"]
    resource = stack.resources["CopyImage"]
    assert resource.physical_id == image_id
    assert resource.data == {"ImageId": image_id, "DestinationRegionId": DESTINATION, "SourceRegionId": "cn-hangzhou"}

    (copy,) = cloud.ecs.calls_to("CopyImage")
    assert copy.params["RegionId"] == "cn-hangzhou"  # the stack's region is the default source
    assert copy.params["ImageId"] == source.image_id
    assert copy.params["DestinationRegionId"] == DESTINATION
    assert copy.params["DestinationImageName"] == "golden-copy"
    assert copy.params["DestinationDescription"] == "First copy"
    assert 0 < len(copy.params["ClientToken"]) <= 64
    assert copy.params["Encrypted"].lower() == "false"  # always sent: absent, ECS leaves it to its backend
    assert sent_tags(copy.params) == {
        "team": "web",
        "env": "dev",
        STACK_TAG: stack.id,
        LOGICAL_ID_TAG: "CopyImage",
        WAITER_TAG: first_token(cloud.ros.requests[0]["RequestId"]),  # the chain that waits for it
        SOURCE_IMAGE_TAG: source.image_id,  # its lineage: the original source, and what it was read from
        SOURCE_REGION_TAG: "cn-hangzhou",
        COPIED_FROM_TAG: f"{source.image_id}@cn-hangzhou",
    }
    describes = cloud.ecs.calls_to("DescribeImages")
    assert describes
    every_status = set(IMAGE_STATUSES)  # the platform's list, as the ECS stand-in documents it
    assert all(set(c.params["Status"].split(",")) == every_status for c in describes)
    image = cloud.ecs.image(image_id)
    assert (image.status, image.name, image.region) == ("Available", "golden-copy", DESTINATION)
    assert image.tags[WAITER_TAG].startswith(ANSWERED)  # marked once ROS took the answer
    assert cloud.ros.violations == []


def test_update_through_the_template_changes_description_and_tags_in_place(cloud, source):
    stack = create_from_the_template(cloud, source)
    image_id = stack.outputs["ImageId"]
    cloud.ecs.reset_calls()
    stack = cloud.ros.update_stack(stack, {"Tag": "team=web,owner=ops", "DestinationDescription": "Second copy"})
    assert stack.status == "UPDATE_COMPLETE", stack.reason
    assert stack.resources["CopyImage"].physical_id == image_id
    assert stack.outputs["ImageId"] == image_id
    assert "CopyImage" not in actions(cloud)
    (modify,) = cloud.ecs.calls_to("ModifyImageAttribute")
    assert modify.params["Description"] == "Second copy"
    assert "ImageName" not in modify.params  # unchanged, so not sent
    (untag,) = cloud.ecs.calls_to("UntagResources")
    assert untag.params["TagKey.1"] == "env" and "TagKey.2" not in untag.params
    (tag,) = cloud.ecs.calls_to("TagResources")
    assert sent_tags(tag.params) == {"owner": "ops"}
    image = cloud.ecs.image(image_id)
    assert image.description == "Second copy"
    assert {k: v for k, v in image.tags.items() if not k.startswith(RESERVED_TAG_PREFIX)} == {
        "team": "web",
        "owner": "ops",
    }
    assert image.tags[STACK_TAG] == stack.id  # the provider's own tags survive updates
    assert cloud.ros.violations == []


def test_delete_through_the_template_waits_out_the_answer_and_keeps_the_snapshots(cloud, source):
    stack = create_from_the_template(cloud, source)
    image_id = stack.outputs["ImageId"]
    image = cloud.ecs.image(image_id)
    snapshots = list(image.snapshot_ids)
    assert snapshots
    cloud.ecs.reset_calls()
    deleting_at = cloud.clock.now()
    stack = cloud.ros.delete_stack(stack)
    assert stack.status == "DELETE_COMPLETE", stack.reason
    (delete,) = cloud.ecs.calls_to("DeleteImage")
    answered_at = float(image.tags[WAITER_TAG].removeprefix(ANSWERED))
    assert delete.at >= answered_at + 30 > deleting_at  # deleted only once no late replay can mistake it
    assert delete.params["ImageId"] == image_id and delete.params.get("Force", "False") == "False"
    assert cloud.ecs.image(image_id) is None
    assert set(snapshots) <= set(cloud.ecs.snapshots(DESTINATION))  # DeleteSnapshots defaults to false
    assert not cloud.ecs.calls_to("DeleteSnapshot")
    assert cloud.ros.violations == []


def test_update_changes_name_resource_group_and_nothing_else(cloud, source):
    _, created = request_and_answer(cloud, "Create", properties(source, DestinationImageName="first-name"))
    image_id = created["PhysicalResourceId"]
    cloud.ecs.reset_calls()
    old = properties(source, DestinationImageName="first-name")
    new = properties(source, DestinationImageName="second-name", ResourceGroupId="rg-acfm2", RetainOnDelete="true")
    _, answer = request_and_answer(cloud, "Update", new, physical_id=image_id, old_properties=old)
    assert answer["Status"] == "SUCCESS", answer
    assert answer["PhysicalResourceId"] == image_id
    assert answer["Data"]["ImageId"] == image_id
    assert actions(cloud) == ["DescribeImages", "ModifyImageAttribute", "JoinResourceGroup"]
    image = cloud.ecs.image(image_id)
    assert (image.name, image.resource_group_id) == ("second-name", "rg-acfm2")


def test_update_of_replacement_properties_fails_and_names_them(cloud, source):
    _, created = request_and_answer(cloud, "Create", properties(source))
    image_id = created["PhysicalResourceId"]
    cloud.ecs.reset_calls()
    new = properties(source, DestinationRegionId="cn-beijing", Encrypted="true")
    _, answer = request_and_answer(cloud, "Update", new, physical_id=image_id, old_properties=properties(source))
    assert answer["Status"] == "FAILED"
    assert answer["PhysicalResourceId"] == image_id  # never changes on Update
    assert "DestinationRegionId, Encrypted cannot be changed in place" in answer["Reason"]
    assert "new logical id" in answer["Reason"]
    assert cloud.ecs.calls == []


def test_update_of_a_failed_create_fails_clearly(cloud, source):
    _, answer = request_and_answer(
        cloud, "Update", properties(source), physical_id="copyimage-failed-x", old_properties=properties(source)
    )
    assert answer["Status"] == "FAILED"
    assert "no image to update" in answer["Reason"]


def test_redelivered_create_starts_no_second_copy_and_answers_the_same(cloud, source):
    request = cloud.ros.new_request("Create", properties(source))
    answer = send(cloud, request)
    assert answer["Status"] == "SUCCESS"
    _, again = cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")  # ROS or FC delivers it twice
    cloud.fc.wait_idle()
    assert again["Status"] == "SUCCESS" and again["PhysicalResourceId"] == answer["PhysicalResourceId"]
    assert len(cloud.ecs.calls_to("CopyImage")) == 2
    assert [image.image_id for image in copies_in(cloud)] == [answer["PhysicalResourceId"]]  # the ClientToken
    assert [a.json["Status"] for a in cloud.ros.answers] == ["SUCCESS", "SUCCESS"]  # the same answer twice
    assert cloud.ros.violations == []
    assert not cloud.ecs.calls_to("DeleteImage")  # ROS refused the repeat, yet the copy ROS owns stays


def test_source_region_and_encryption_reach_copyimage(cloud):
    source = cloud.seed_image("beijing-source", region="cn-beijing")
    key = next(iter(cloud.ecs.kms_keys))
    props = properties(source, SourceRegionId="cn-beijing", Encrypted=True, KMSKeyId=key, ResourceGroupId="rg-abc")
    _, answer = request_and_answer(cloud, "Create", props)
    assert answer["Status"] == "SUCCESS", answer
    (copy,) = cloud.ecs.calls_to("CopyImage")
    assert copy.params["RegionId"] == "cn-beijing"
    assert copy.params["Encrypted"].lower() == "true"
    assert copy.params["KMSKeyId"] == key
    assert copy.params["ResourceGroupId"] == "rg-abc"


def test_a_failing_copy_fails_the_stack_and_leaves_nothing(cloud, source):
    cloud.ecs.fail_copies(1, at_fraction=0.5)
    stack = cloud.ros.create_stack(cloud.template(), {"ImageId": source.image_id, "DestinationRegionId": DESTINATION})
    assert stack.status == "CREATE_ROLLBACK_COMPLETE", stack.reason
    assert "ended CreateFailed" in stack.reason and "then retry" in stack.reason
    assert stack.resources["CopyImage"].physical_id.startswith(FAILED_CREATE_PREFIX)
    cloud.fc.wait_idle()
    assert copies_in(cloud) == []  # the failed copy was deleted by the Create itself
    assert cloud.ecs.calls_to("DeleteImage")
    assert cloud.ros.violations == []


def test_a_copy_cancelled_by_someone_else_fails_the_create(make_cloud):
    from alibabacloud_ecs20140526 import models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    request = cloud.ros.new_request("Create", properties(source))
    _, result = cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert result == {"Status": "WAITING"}
    (copy,) = copies_in(cloud)
    operator = cloud.credentials.add_access_key()  # someone in the console, with their own key
    console = Client(
        Config(
            access_key_id=operator.id,
            access_key_secret=operator.secret,
            endpoint=cloud.ecs.endpoint,
            protocol="http",
            region_id=DESTINATION,
        )
    )
    console.cancel_copy_image(models.CancelCopyImageRequest(region_id=DESTINATION, image_id=copy.image_id))
    answer = cloud.ros.wait_answer(request["RequestId"], timeout=3600)
    assert answer["Status"] == "FAILED"
    assert f"the copy {copy.image_id} disappeared from {DESTINATION}" in answer["Reason"]
    assert cloud.fc.wait_idle() and cloud.fc.pending_async() == 0
