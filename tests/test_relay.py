"""Relay copies: one image into many regions, each resource that finds the source busy copying a finished copy.

Through the ROS API (a template.yml-style stack of seven resources), through direct requests (a Delete while a
relay copy reads from its copy, in both settings of the ECS stand-in's switch), and the relay choice on its own.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from alibabacloud_ros20190910 import models as ros_models
from conftest import properties, request_and_answer, send, settle_stack
from copyimage.images import ImageView
from copyimage.properties import COPIED_FROM_TAG, SOURCE_IMAGE_TAG, SOURCE_REGION_TAG, STACK_TAG, WAITER_TAG
from copyimage.relays import RETAINED, candidates, continent, inherits_alike

from bench import fan_out
from emulator.cloud import LocalCloud
from emulator.ecs import WORLD_REGIONS
from emulator.ecs.errors import ImageCopying
from emulator.ecs.models import CopyRequest

HZ = "cn-hangzhou"
SZ = "cn-shenzhen"
SEVEN = ("cn-shanghai", "cn-beijing", SZ, "cn-hongkong", "ap-southeast-1", "us-west-1", "eu-central-1")
Parameter = ros_models.CreateStackRequestParameters


# One stack for several resources (ROS stack ids are UUIDs: ROS confirms requests only for a stack it knows).
RELAY_STACK = "5a1e7d3c-2b4f-4e0a-9c17-000000000017"


def fan_out_body(cloud: LocalCloud, destinations: tuple[str, ...]) -> str:
    """template.yml's resource once per destination, each with an ImageId output, as a JSON template body."""
    template = cloud.template()
    resource = template["Resources"].pop("CopyImage")
    del template["Outputs"]["ImageId"]
    for region in destinations:
        name = "To" + "".join(part.capitalize() for part in region.split("-"))
        twin = json.loads(json.dumps(resource))
        twin["Properties"]["Parameters"]["DestinationRegionId"] = region
        template["Resources"][name] = twin
        template["Outputs"][name] = {"Value": {"Fn::GetAtt": [name, "ImageId"]}}
    return json.dumps(template)


def test_seven_destinations_through_the_ros_api_relay_and_leave_nothing(make_cloud):
    copy_seconds = 600.0
    cloud = make_cloud(copy_seconds=copy_seconds)
    source = cloud.seed_image("golden")
    client = cloud.ros_client()
    started = cloud.clock.now()
    given = {"ImageId": source.image_id, "DestinationRegionId": SEVEN[0]}
    request = ros_models.CreateStackRequest(
        region_id=HZ,
        stack_name="seven",
        template_body=fan_out_body(cloud, SEVEN),
        parameters=[Parameter(parameter_key=k, parameter_value=v) for k, v in given.items()],
        timeout_in_minutes=600,
    )
    stack_id = client.create_stack(request).body.stack_id
    body = settle_stack(cloud, client, stack_id, step=60.0)
    assert body.status == "CREATE_COMPLETE", body.status_reason
    elapsed = cloud.clock.now() - started
    assert elapsed < (math.ceil(math.log2(len(SEVEN) + 1)) + 1) * copy_seconds  # strictly: about seven copy times

    outputs = {output["OutputKey"]: output["OutputValue"] for output in body.outputs}
    assert len(set(outputs.values())) == len(SEVEN)
    relayed = 0
    for name, image_id in outputs.items():
        image = cloud.ecs.image(image_id)
        region = next(r for r in SEVEN if name == "To" + "".join(p.capitalize() for p in r.split("-")))
        assert (image.region, image.status) == (region, "Available")
        assert image.tags[SOURCE_IMAGE_TAG] == source.image_id and image.tags[SOURCE_REGION_TAG] == HZ
        assert image.tags[STACK_TAG] == stack_id
        copied_from, _, from_region = image.tags[COPIED_FROM_TAG].partition("@")
        assert image.source == (from_region, copied_from)  # the tag says what ECS copied it from
        relayed += copied_from != source.image_id
    assert relayed >= 3  # once the first copy was done, copies doubled from copies

    client.delete_stack(ros_models.DeleteStackRequest(region_id=HZ, stack_id=stack_id))
    assert settle_stack(cloud, client, stack_id) is None
    cloud.fc.wait_idle()
    left = [i.image_id for r in cloud.ecs.regions for i in cloud.ecs.images(r) if i.tags.get(STACK_TAG) == stack_id]
    assert left == []
    assert cloud.ecs.image(source.image_id).status == "Available"
    assert cloud.ros.violations == []


def busy_source(cloud: LocalCloud, source: Any) -> None:
    """A copy of the source outside the stack (a user's), so that the stack's next copy meets the conflict."""
    cloud.ecs.copy_image(CopyRequest(source_region=HZ, image_id=source.image_id, destination="cn-qingdao"))


def reading_from_a_relay(cloud: LocalCloud, source: Any) -> tuple[str, dict[str, Any]]:
    """A finished copy of the stack (resource First, the relay), then resource Second's Create, which meets the
    source busy and, a minute later, is copying from the relay: the relay's image id and Second's request."""
    _, first = request_and_answer(cloud, "Create", properties(source), logical_id="First", stack_id=RELAY_STACK)
    assert first["Status"] == "SUCCESS"
    busy_source(cloud, source)
    second = cloud.ros.new_request(
        "Create", properties(source, DestinationRegionId=SZ), logical_id="Second", stack_id=RELAY_STACK
    )
    cloud.fc.invoke(json.dumps(second).encode(), invocation_type="Async")
    cloud.clock.sleep(60)
    return first["PhysicalResourceId"], second


@pytest.mark.parametrize("fails_copies", [False, True], ids=["delete-refused", "delete-fails-readers"])
def test_a_copy_a_relay_copy_reads_from_is_deleted_only_after_it(make_cloud, fails_copies):
    cloud = make_cloud(copy_seconds=600.0, regions=WORLD_REGIONS)
    cloud.ecs.source_delete_fails_copies = fails_copies
    source = cloud.seed_image("golden")
    stack_id = RELAY_STACK
    relay_id, second = reading_from_a_relay(cloud, source)
    (reader,) = [image for image in cloud.ecs.images(SZ) if image.is_copy]
    assert reader.source == ("cn-shanghai", relay_id) and reader.status == "Creating"
    assert reader.tags[COPIED_FROM_TAG] == f"{relay_id}@cn-shanghai"

    delete = cloud.ros.new_request(
        "Delete", properties(source), logical_id="First", physical_id=relay_id, stack_id=stack_id
    )
    answer = send(cloud, delete, invocation_type="Async")
    assert answer["Status"] == "SUCCESS"
    assert cloud.ecs.image(relay_id) is None
    reader = cloud.ecs.image(reader.image_id)
    assert reader.status == "Available"  # never failed, in either setting: the relay went only after it
    removed_at = [c.at for c in cloud.ecs.calls_to("DeleteImage") if c.params.get("ImageId") == relay_id]
    assert removed_at and min(removed_at) >= reader.available_at
    assert cloud.ros.pending(second["RequestId"]).answer["Status"] == "SUCCESS"


def test_a_reader_that_outlasts_the_patience_is_cancelled_so_the_delete_ends(make_cloud):
    cloud = make_cloud(copy_seconds=7200.0, regions=WORLD_REGIONS)
    cloud.ecs.source_delete_fails_copies = True
    source = cloud.seed_image("golden")
    relay_id, second = reading_from_a_relay(cloud, source)
    delete = cloud.ros.new_request(
        "Delete", properties(source), logical_id="First", physical_id=relay_id, stack_id=RELAY_STACK
    )
    answer = send(cloud, delete, invocation_type="Async", timeout=3600.0)
    assert answer["Status"] == "SUCCESS" and cloud.ecs.image(relay_id) is None
    assert [i for i in cloud.ecs.images(SZ) if i.is_copy] == []  # cancelled, not failed
    # Its Create finds its copy gone and its relay marked by the Delete: it would copy again, but ROS no longer
    # creates the resource (the stack's Delete), so it answers FAILED saying why, and copies nothing more.
    late = cloud.ros.wait_answer(second["RequestId"], timeout=3600.0)
    assert late is not None and late["Status"] == "FAILED"
    assert "not started again" in late["Reason"] and "DELETE_IN_PROGRESS" in late["Reason"]
    cloud.fc.wait_idle()
    assert [i for i in cloud.ecs.images(SZ) if i.is_copy] == []


@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_a_reader_whose_relay_is_taken_away_copies_again_and_is_answered(make_cloud, how):
    """The relay's Delete (in an update that replaces it) cancels its reader after 15 minutes, or a user deletes the
    relay and ECS fails the reader: the reader's Create copies again and answers SUCCESS."""
    cloud = make_cloud(copy_seconds=1800.0, regions=WORLD_REGIONS)
    cloud.ecs.source_delete_fails_copies = how == "failed"
    source = cloud.seed_image("golden")
    relay_id, second = reading_from_a_relay(cloud, source)
    (taken,) = [image for image in cloud.ecs.images(SZ) if image.is_copy]
    assert taken.source == ("cn-shanghai", relay_id)
    if how == "cancelled":  # the relay's Delete waits 15 minutes for its reader, then cancels it
        cloud.ros.stacks[RELAY_STACK].status = "UPDATE_IN_PROGRESS"  # ROS sends Create and Delete then
        delete = cloud.ros.new_request(
            "Delete", properties(source), logical_id="First", physical_id=relay_id, stack_id=RELAY_STACK, play=False
        )
        assert send(cloud, delete, invocation_type="Async", timeout=3600.0, settle=False)["Status"] == "SUCCESS"
        assert [c for c in cloud.ecs.calls_to("CancelCopyImage") if c.params.get("ImageId") == taken.image_id]
    else:  # a user deletes the relay; ECS fails the copy reading from it
        cloud.ecs.delete_image("cn-shanghai", relay_id, force=True)
        assert cloud.ecs.image(taken.image_id).status == "CreateFailed"
    answer = cloud.ros.wait_answer(second["RequestId"], timeout=7200.0)
    assert answer is not None and answer["Status"] == "SUCCESS", answer
    copy = cloud.ecs.image(answer["PhysicalResourceId"])
    assert copy.image_id != taken.image_id and (copy.region, copy.status) == (SZ, "Available")
    copied_from, _, from_region = copy.tags[COPIED_FROM_TAG].partition("@")
    assert copy.source == (from_region, copied_from) and copied_from != relay_id  # the lineage says where from
    assert copy.tags[SOURCE_IMAGE_TAG] == source.image_id and copy.tags[STACK_TAG] == RELAY_STACK
    made = [c for c in cloud.ecs.calls_to("CopyImage") if c.status == 200 and c.params["DestinationRegionId"] == SZ]
    assert len({c.params["ClientToken"] for c in made}) == len(made) == 2  # the new copy has a token of its own
    assert cloud.ros.violations == []


def test_without_verification_a_reader_whose_relay_is_taken_away_fails_rather_than_copy_blind(make_cloud):
    """With COPYIMAGE_VERIFY_WITH_ROS off nobody can say ROS still creates the resource (it may be rolling back):
    the reader answers FAILED, saying why, instead of starting a copy that nothing might ever remove."""
    cloud = make_cloud(copy_seconds=1800.0, regions=WORLD_REGIONS, environment={"COPYIMAGE_VERIFY_WITH_ROS": "false"})
    cloud.ecs.source_delete_fails_copies = True
    source = cloud.seed_image("golden")
    relay_id, second = reading_from_a_relay(cloud, source)
    cloud.ecs.delete_image("cn-shanghai", relay_id, force=True)
    answer = cloud.ros.wait_answer(second["RequestId"], timeout=7200.0)
    assert answer is not None and answer["Status"] == "FAILED", answer
    assert "not started again: COPYIMAGE_VERIFY_WITH_ROS is off" in answer["Reason"]
    made = [c for c in cloud.ecs.calls_to("CopyImage") if c.status == 200 and c.params["DestinationRegionId"] == SZ]
    assert len(made) == 1


def test_allow_relay_false_waits_for_the_source_and_kms_key_copies_never_relay(make_cloud):
    cloud = make_cloud(copy_seconds=300.0, regions=WORLD_REGIONS)
    source = cloud.seed_image("golden")
    _, first = request_and_answer(cloud, "Create", properties(source), logical_id="First", stack_id=RELAY_STACK)
    for extra in ({"AllowRelay": "false"}, {"Encrypted": "true", "KMSKeyId": "key-hzz00000000000000001"}):
        busy_source(cloud, source)
        props = properties(source, DestinationRegionId="cn-beijing", **extra)
        logical = "Strict" if "AllowRelay" in extra else "Keyed"
        _, answer = request_and_answer(cloud, "Create", props, logical_id=logical, stack_id=RELAY_STACK)
        image = cloud.ecs.image(answer["PhysicalResourceId"])
        assert image.source == (HZ, source.image_id)  # from the source, after the user's copy ended
        assert image.tags[COPIED_FROM_TAG] == f"{source.image_id}@{HZ}"
    assert first["Status"] == "SUCCESS"


def test_bad_allow_relay_fails_naming_the_property(cloud, source):
    _, answer = request_and_answer(cloud, "Create", properties(source, AllowRelay="sometimes"))
    assert answer["Status"] == "FAILED"
    assert "AllowRelay" in answer["Reason"] and "true or false" in answer["Reason"]
    assert not cloud.ecs.calls_to("CopyImage")


def test_the_stand_in_refuses_or_fails_readers_when_a_copy_source_is_deleted(make_cloud):
    cloud = make_cloud(copy_seconds=600.0)
    ecs = cloud.ecs
    source = cloud.seed_image("golden")
    reader_id = ecs.copy_image(CopyRequest(source_region=HZ, image_id=source.image_id, destination="cn-beijing"))
    with pytest.raises(ImageCopying):
        ecs.delete_image(HZ, source.image_id, force=False)
    assert ecs.image(reader_id).status == "Creating"
    ecs.source_delete_fails_copies = True
    ecs.delete_image(HZ, source.image_id, force=False)
    assert ecs.image(source.image_id) is None and ecs.image(reader_id).status == "CreateFailed"


def test_copying_a_copy_works_and_the_conflict_is_per_image(make_cloud):
    cloud = make_cloud(copy_seconds=100.0)
    ecs = cloud.ecs
    source = cloud.seed_image("golden")
    first = ecs.copy_image(CopyRequest(source_region=HZ, image_id=source.image_id, destination="cn-beijing"))
    cloud.clock.sleep(100)
    assert ecs.image(first).status == "Available"
    ecs.copy_image(CopyRequest(source_region=HZ, image_id=source.image_id, destination=SZ))
    relayed = ecs.copy_image(CopyRequest(source_region="cn-beijing", image_id=first, destination="us-west-1"))
    assert ecs.image(relayed).source == ("cn-beijing", first) and ecs.image(relayed).status == "Creating"


def view(image_id: str, region: str, status: str = "Available", **tags: str) -> ImageView:
    return ImageView(image_id, region, status, None, dict(tags), (), None, None, None)


def test_relays_are_ranked_destination_region_then_continent_then_region_and_busy_ones_are_skipped():
    views = [
        view("m-us", "us-west-1"),
        view("m-ap", "ap-southeast-1"),
        view("m-sz", SZ),
        view("m-bj", "cn-beijing"),
        view("m-reading", "cn-qingdao", status="Creating", **{COPIED_FROM_TAG: "m-sz@cn-shenzhen"}),
        view("m-kept", "cn-chengdu", **{WAITER_TAG: RETAINED + "1"}),
        view("m-new", "cn-wulanchabu", status="Creating"),
    ]
    ranked = [v.image_id for v in candidates(views, "cn-hongkong")]
    assert ranked == ["m-bj", "m-ap", "m-us"]  # m-sz is being read from; retained and unfinished copies never relay
    assert [v.image_id for v in candidates(views, "ap-southeast-1")][:2] == ["m-ap", "m-bj"]
    encrypted = [ImageView("m-enc", "cn-beijing", "Available", None, {}, (), None, None, None, encrypted=True)]
    assert candidates(encrypted, "cn-shanghai") == []
    assert continent("eu-central-1") == "eu" and continent("cn-hongkong") == "cn"


def test_the_fan_out_benchmark_finishes_in_fewer_copy_times_with_relays_and_leaves_nothing():
    relay, strict = fan_out.run(3, True, 600.0), fan_out.run(3, False, 600.0)
    assert relay.status == strict.status == "CREATE_COMPLETE"
    assert relay.copy_times <= fan_out.relay_bound(3) < strict.copy_times
    assert relay.left == strict.left == 0 and 1 <= relay.max_running_per_region <= 5


def test_a_relay_qualifies_only_if_its_copy_would_get_the_name_and_description_a_copy_of_the_source_would():
    original = ImageView("m-src", HZ, "Available", None, {}, (), "golden", "the golden image", None)
    renamed = ImageView("m-a", "cn-beijing", "Available", None, {}, (), "a-copy", "the golden image", None)
    alike = ImageView("m-b", "cn-beijing", "Available", None, {}, (), "golden", "the golden image", None)
    assert inherits_alike(alike, original, None, None)
    assert not inherits_alike(renamed, original, None, None)  # its copy would be named a-copy, not golden
    assert inherits_alike(renamed, original, "my-name", None)  # this resource names its copy itself
    assert not inherits_alike(renamed, original, None, "mine")
