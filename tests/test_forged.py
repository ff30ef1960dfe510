"""Forged events: anyone allowed to invoke the function may hand it one. Only ROS's own requests, and the function's
own sealed continuations, make it act; a forged event of any kind leaves ECS exactly as it was, and is logged."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import DESTINATION, properties, request_and_answer, seal
from copyimage.properties import WAITER_TAG

from emulator.cloud import KEY_PARAMETER
from emulator.fc import InvocationFailed


def ecs_state(cloud) -> list:
    """Everything a forged event could change in ECS: every image with its status, name, description and tags."""
    return sorted(
        (i.image_id, i.region, i.status, i.name, i.description, tuple(sorted(i.tags.items())))
        for region in cloud.ecs.regions
        for i in cloud.ecs.images(region)
    )


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def invoke(cloud, event: dict) -> dict:
    _, result = cloud.fc.invoke(json.dumps(event).encode(), invocation_type="Sync")
    return result


def assert_nothing_done(cloud, event: dict, capsys, expected_status: str, message: str) -> list[dict]:
    """Deliver ``event``; it changes nothing in ECS, calls ECS not once, gets no answer, and is logged."""
    capsys.readouterr()
    before, calls = ecs_state(cloud), len(cloud.ecs.calls)
    answers = len(cloud.ros.answers)
    assert invoke(cloud, event)["Status"] == expected_status
    assert cloud.ecs.calls[calls:] == []
    assert ecs_state(cloud) == before
    assert cloud.ros.answers[answers:] == []  # the forger gets no answer either
    logged = [line for line in log_lines(capsys) if line.get("message", "").startswith(message)]
    assert logged, f"nothing logged as {message!r}"
    return logged


@pytest.fixture
def stack(cloud, source):
    """A real stack of template.yml, created and settled: CREATE_COMPLETE, its copy Available."""
    made = cloud.ros.create_stack(cloud.template(), {"ImageId": source.image_id, "DestinationRegionId": DESTINATION})
    assert made.status == "CREATE_COMPLETE", made.reason
    cloud.fc.wait_idle()
    return made


def forged(cloud, request_type: str, props: dict, **fields) -> dict:
    """A well-formed request with a live response URL that ROS never sent: the stack it names is not registered
    (``play=False``), or is a real one in whatever state it is."""
    return cloud.ros.new_request(request_type, props, play=False, **fields)


def test_a_forged_create_naming_no_stack_copies_nothing(cloud, source, capsys):
    event = forged(cloud, "Create", properties(source))
    (line,) = assert_nothing_done(cloud, event, capsys, "NOT_CONFIRMED", "request not confirmed by ROS")
    assert "StackNotFound" in line["ros_says"]


def test_a_forged_create_naming_a_finished_stack_copies_nothing(cloud, source, stack, capsys):
    event = forged(cloud, "Create", properties(source), stack_id=stack.id, logical_id="CopyImage")
    (line,) = assert_nothing_done(cloud, event, capsys, "NOT_CONFIRMED", "request not confirmed by ROS")
    assert "CREATE_COMPLETE" in line["ros_says"]


def test_a_forged_update_of_a_real_copy_renames_and_retags_nothing(cloud, source, stack, capsys):
    image_id = stack.outputs["ImageId"]
    props = properties(source, DestinationImageName="stolen", Tag="owner=mallory")
    event = forged(
        cloud,
        "Update",
        props,
        stack_id=stack.id,
        logical_id="CopyImage",
        physical_id=image_id,
        old_properties=properties(source),
    )
    assert_nothing_done(cloud, event, capsys, "NOT_CONFIRMED", "request not confirmed by ROS")
    assert cloud.ecs.image(image_id).name != "stolen"


def test_a_forged_delete_of_a_real_copy_deletes_nothing(cloud, source, stack, capsys):
    image_id = stack.outputs["ImageId"]
    event = forged(cloud, "Delete", properties(source), stack_id=stack.id, logical_id="CopyImage", physical_id=image_id)
    assert_nothing_done(cloud, event, capsys, "NOT_CONFIRMED", "request not confirmed by ROS")
    assert cloud.ecs.image(image_id).status == "Available"


def test_a_forged_create_for_a_resource_the_stack_does_not_hold_copies_nothing(cloud, source, capsys):
    genuine = cloud.ros.new_request("Create", properties(source))  # a stack being created, as ROS would say
    event = forged(cloud, "Create", properties(source), stack_id=genuine["StackId"], logical_id="NotThere")
    (line,) = assert_nothing_done(cloud, event, capsys, "NOT_CONFIRMED", "request not confirmed by ROS")
    assert "ResourceNotFound" in line["ros_says"]


def test_a_forged_create_naming_a_resource_of_another_type_copies_nothing(cloud, source, capsys):
    # The stack is being created, and its logical id names an ECS instance: ROS sends no custom resource request.
    other = cloud.ros.new_request("Create", {}, logical_id="Server", resource_type="ALIYUN::ECS::Instance")
    event = forged(cloud, "Create", properties(source), stack_id=other["StackId"], logical_id="Server")
    (line,) = assert_nothing_done(cloud, event, capsys, "NOT_CONFIRMED", "request not confirmed by ROS")
    assert "ALIYUN::ECS::Instance" in line["ros_says"]


# --- continuations ------------------------------------------------------------------------------------------


def a_continuation(cloud, source) -> dict:
    """A genuine continuation of a Create whose copy is in progress, as FC delivered it."""
    request = cloud.ros.new_request("Create", properties(source))
    assert invoke(cloud, request) == {"Status": "WAITING"}
    runs = lambda: [i for i in cloud.fc.invocations if b'"Continuation"' in i.payload]  # noqa: E731
    cloud.clock.run_until(lambda: len(runs()) >= 1, timeout=3600)
    return json.loads(runs()[-1].payload)


def _past_deadline(event: dict) -> None:
    event["Continuation"]["Wait"]["deadline"] = 0


def _other_owner(event: dict) -> None:
    event["Continuation"]["Wait"]["owner"] = "w-0000000000000000"


def _other_image(event: dict) -> None:
    event["Continuation"]["Wait"]["state"]["image_id"] = "m-someoneelses"


def _other_request(event: dict) -> None:
    event["Continuation"]["Request"]["RequestType"] = "Delete"


def _no_seal(event: dict) -> None:
    del event["Mac"]


@pytest.mark.parametrize("tamper", [_past_deadline, _other_owner, _other_image, _other_request, _no_seal])
def test_a_tampered_continuation_is_refused_before_any_ecs_call(make_cloud, tamper, capsys):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    event = a_continuation(cloud, source)
    request_id = event["Continuation"]["Request"]["RequestId"]
    tampered = copy.deepcopy(event)
    tamper(tampered)
    assert tampered != event
    assert_nothing_done(cloud, tampered, capsys, "REFUSED", "continuation refused: not authentic")
    # The genuine wait goes on, unharmed: the copy is answered SUCCESS.
    answer = cloud.ros.wait_answer(request_id)
    assert answer is not None and answer["Status"] == "SUCCESS"


def test_a_continuation_sealed_with_another_key_is_refused(make_cloud, capsys):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    event = a_continuation(cloud, source)
    body = {k: v for k, v in event["Continuation"].items() if k != "KeyVersion"}
    body["Wait"]["deadline"] = 0
    wrong = seal(cloud, body)
    wrong["Mac"] = wrong["Mac"][::-1]
    assert_nothing_done(cloud, wrong, capsys, "REFUSED", "continuation refused: not authentic")


def test_a_rotated_key_strands_no_wait_in_flight(make_cloud):
    # The key is updated while a copy is in progress: the continuation sealed with the previous version is still
    # taken, and the next ones are sealed with the new version once the instance reads it again.
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    event = a_continuation(cloud, source)
    assert event["Continuation"]["KeyVersion"] == 1
    cloud.oos.put(cloud.region, KEY_PARAMETER)  # version 2
    answer = cloud.ros.wait_answer(event["Continuation"]["Request"]["RequestId"])
    assert answer is not None and answer["Status"] == "SUCCESS"
    versions = [
        json.loads(i.payload)["Continuation"]["KeyVersion"] for i in cloud.fc.invocations if b'"Mac"' in i.payload
    ]
    assert versions[0] == 1 and versions[-1] == 2


def test_a_continuation_sealed_with_a_key_retired_long_ago_is_refused(make_cloud, capsys):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    event = a_continuation(cloud, source)
    cloud.fc.wait_idle()
    cloud.oos.put(cloud.region, KEY_PARAMETER)  # version 2, and the previous one retires two days later
    cloud.clock.sleep(3 * 86400)
    assert_nothing_done(cloud, event, capsys, "REFUSED", "continuation refused: not authentic")


def test_without_the_key_a_continuation_is_not_trusted_and_fc_retries_it(make_cloud, capsys):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    event = a_continuation(cloud, source)
    cloud.fc.wait_idle()
    cloud.oos.remove(cloud.region, KEY_PARAMETER)
    cloud.clock.sleep(900)  # the instance's cached key has expired
    before, calls = ecs_state(cloud), len(cloud.ecs.calls)
    with pytest.raises(InvocationFailed):  # the run fails: FC retries an asynchronous one
        invoke(cloud, event)
    assert cloud.ecs.calls[calls:] == [] and ecs_state(cloud) == before
    assert "EntityNotExists.Parameter" in capsys.readouterr().out


# --- genuine requests pass however ROS shows a custom resource, and when ROS is slow to answer ---------------


@pytest.mark.parametrize("shown", [("declared", "in_progress"), ("generic", "previous")])
def test_genuine_requests_pass_whatever_getstackresource_shows_of_a_custom_resource(make_cloud, shown):
    cloud = make_cloud()
    cloud.ros.resource_type_shown, cloud.ros.resource_status_shown = shown  # undocumented: both ways
    source = cloud.seed_image("golden-source")
    stack = cloud.ros.create_stack(cloud.template(), {"ImageId": source.image_id, "DestinationRegionId": DESTINATION})
    assert stack.status == "CREATE_COMPLETE", stack.reason
    cloud.ros.update_stack(stack, {"DestinationImageName": "renamed"})
    assert stack.status == "UPDATE_COMPLETE", stack.reason
    assert cloud.ecs.image(stack.outputs["ImageId"]).name == "renamed"
    cloud.ros.delete_stack(stack)
    assert stack.status == "DELETE_COMPLETE", stack.reason
    assert [i for i in cloud.ecs.images(DESTINATION) if i.is_copy] == []


def test_a_throttled_ros_is_asked_again_later(cloud, source):
    cloud.ros.api.fail_next(6)  # more than one invocation's tries
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    asked = [c for c in cloud.ros.api.calls if c.action == "GetStack"]
    assert len(asked) > 4 and asked[-1].status == 200
    marks = [i.tags.get(WAITER_TAG) for i in cloud.ecs.images(DESTINATION) if i.is_copy]
    assert len(marks) == 1


def test_without_the_key_no_wait_is_handed_over_unsealed(make_cloud):
    # A long copy needs a continuation; with no key to seal it, the Create fails naming the parameter, and what it
    # started is removed: the function never hands over an unsealed wait.
    cloud = make_cloud(copy_seconds=1800)
    cloud.oos.remove(cloud.region, KEY_PARAMETER)
    source = cloud.seed_image("big-source")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert f"OOS secret parameter {KEY_PARAMETER!r}" in answer["Reason"]
    assert not [i for i in cloud.fc.invocations if b'"Continuation"' in i.payload]
    assert [i for i in cloud.ecs.images(DESTINATION) if i.is_copy] == []
