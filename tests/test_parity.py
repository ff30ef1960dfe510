"""Drop-in parity with ALIYUN::ECS::CopyImage, and what templates do with it that the native resource allows."""

from __future__ import annotations

import copy

from conftest import DESTINATION, copies_in, properties, request_and_answer

REGIONS = ("cn-shanghai", "cn-beijing", "cn-shenzhen")


def three_regions(cloud) -> dict:
    """template.yml's resource, three times: one golden image into three regions, created in parallel by ROS."""
    template = cloud.template()
    resource = template["Resources"].pop("CopyImage")
    for region in REGIONS:
        name = "CopyTo" + region.split("-")[1].capitalize()
        twin = copy.deepcopy(resource)
        twin["Properties"]["Parameters"]["DestinationRegionId"] = region
        template["Resources"][name] = twin
        template["Outputs"][name] = {"Value": {"Fn::GetAtt": [name, "ImageId"]}}
    del template["Outputs"]["ImageId"]
    return template


def test_one_image_into_three_regions_at_once_makes_three_copies_and_deletes_them_all(make_cloud):
    cloud = make_cloud(copy_seconds=900)
    source = cloud.seed_image("golden")
    stack = cloud.ros.create_stack(
        three_regions(cloud), {"ImageId": source.image_id, "DestinationRegionId": "unused-1"}
    )
    assert stack.status == "CREATE_COMPLETE", stack.reason
    conflicts = [c for c in cloud.ecs.calls_to("CopyImage") if c.error_code == "OperationDenied.ImageCopyConflict"]
    assert conflicts  # ECS refused the concurrent copies of one source; each waited its turn instead of failing
    made = {region: [image.image_id for image in copies_in(cloud, region)] for region in REGIONS}
    assert all(len(ids) == 1 for ids in made.values()), made
    assert sorted(stack.outputs.values()) == sorted(ids[0] for ids in made.values())
    assert cloud.ros.violations == []

    stack = cloud.ros.delete_stack(stack)
    assert stack.status == "DELETE_COMPLETE", stack.reason
    cloud.fc.wait_idle()
    assert all(copies_in(cloud, region) == [] for region in REGIONS)


def test_allow_copy_in_same_region_makes_no_copy_and_never_deletes_the_source(cloud, source):
    props = properties(source, DestinationRegionId="cn-hangzhou", AllowCopyInSameRegion="true")
    request, answer = request_and_answer(cloud, "Create", props)
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == source.image_id
    assert answer["Data"] == {
        "ImageId": source.image_id,
        "DestinationRegionId": "cn-hangzhou",
        "SourceRegionId": "cn-hangzhou",
    }
    assert not cloud.ecs.calls_to("CopyImage")
    _, updated = request_and_answer(
        cloud,
        "Update",
        {**props, "RetainOnDelete": "false"},
        physical_id=source.image_id,
        old_properties=props,
        stack_id=request["StackId"],
    )
    assert updated["Status"] == "SUCCESS"  # nothing to change in ECS
    _, refused = request_and_answer(
        cloud,
        "Update",
        {**props, "DestinationDescription": "mine now?"},
        physical_id=source.image_id,
        old_properties=props,
        stack_id=request["StackId"],
    )
    assert refused["Status"] == "FAILED" and "belongs to you, not to this stack" in refused["Reason"]
    _, deleted = request_and_answer(cloud, "Delete", props, physical_id=source.image_id, stack_id=request["StackId"])
    assert deleted["Status"] == "SUCCESS"
    assert cloud.ecs.image(source.image_id).status == "Available"
    assert not cloud.ecs.calls_to("DeleteImage") and not cloud.ecs.calls_to("ModifyImageAttribute")


def test_allow_copy_in_same_region_copies_as_usual_across_regions(cloud, source):
    _, answer = request_and_answer(cloud, "Create", properties(source, AllowCopyInSameRegion=True))
    assert answer["Status"] == "SUCCESS" and answer["PhysicalResourceId"] != source.image_id
    assert len(copies_in(cloud)) == 1


def test_a_copy_within_one_region_is_made_when_not_told_to_skip_it(cloud, source):
    _, answer = request_and_answer(cloud, "Create", properties(source, DestinationRegionId="cn-hangzhou"))
    assert answer["Status"] == "SUCCESS" and answer["PhysicalResourceId"] != source.image_id
    assert len(copies_in(cloud, "cn-hangzhou")) == 1


def test_get_att_offers_the_native_resources_attributes(cloud, source):
    _, answer = request_and_answer(cloud, "Create", properties(source, SourceRegionId="cn-hangzhou"))
    assert answer["Data"] == {
        "ImageId": answer["PhysicalResourceId"],
        "DestinationRegionId": DESTINATION,
        "SourceRegionId": "cn-hangzhou",
    }


def test_update_finds_a_deprecated_copy(cloud, source):
    request, created = request_and_answer(cloud, "Create", properties(source))
    image_id = created["PhysicalResourceId"]
    cloud.ecs.image(image_id).status = "Deprecated"  # the user deprecated it (ModifyImageAttribute Status)
    old = properties(source)
    _, updated = request_and_answer(
        cloud,
        "Update",
        properties(source, Tag=["team=web"]),
        physical_id=image_id,
        old_properties=old,
        stack_id=request["StackId"],
    )
    assert updated["Status"] == "SUCCESS", updated
    assert cloud.ecs.image(image_id).tags["team"] == "web"
    assert cloud.ecs.image(image_id).status == "Deprecated"  # left as the user set it
