"""Bad input always gets a clear FAILED answer that names the property, and nothing reaches ECS."""

from __future__ import annotations

import json

import pytest
from conftest import actions, copies_in, properties, request_and_answer, send
from copyimage.protocol import FAILED_CREATE_PREFIX

from emulator.fc import InvocationFailed


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ImageId": None}, "Property ImageId: is required"),
        ({"DestinationRegionId": None}, "Property DestinationRegionId: is required"),
        ({"DestinationImageName": "9lives"}, "Property DestinationImageName:"),
        ({"DestinationDescription": "http://x"}, "Property DestinationDescription:"),
        ({"Encrypted": "sometimes"}, "Property Encrypted: must be true or false"),
        ({"KMSKeyId": "key-1"}, "Property KMSKeyId: takes effect only with Encrypted: true"),
        ({"Tag": [{"Key": "acs:owner", "Value": "x"}]}, "Property Tag[1].Key:"),
        ({"Tag": [f"k{i}=v" for i in range(18)]}, "Property Tag: has 18 tags; at most 14"),
        ({"ResourceGroupId": "default"}, "Property ResourceGroupId:"),
        ({"RetainOnDelete": "yes"}, "Property RetainOnDelete:"),
        ({"DestinationImageNmae": "typo"}, "Property DestinationImageNmae: is not a property"),
        ({"Tag": [{"Key": "k", "Value": "see https://example.com"}]}, "Property Tag[1].Value: must not contain"),
        ({"Tag": [f"k{i}=v" for i in range(40_000)]}, "Property Tag: has 40000 tags"),
        ({"DestinationDescription": "d" * 1_000_000}, "Property DestinationDescription: must be 2 to 256"),
    ],
)
def test_invalid_property_fails_the_create_naming_it(cloud, source, changes, named):
    props = {k: v for k, v in properties(source, **changes).items() if v is not None}
    _, answer = request_and_answer(cloud, "Create", props)
    assert answer["Status"] == "FAILED"
    assert named in answer["Reason"]
    assert len(answer["Reason"]) < 1000
    assert answer["PhysicalResourceId"].startswith(FAILED_CREATE_PREFIX)
    assert cloud.ecs.calls == []  # validated before any ECS call

    # The Delete that ROS sends after the failed Create succeeds without touching ECS.
    _, deleted = request_and_answer(cloud, "Delete", props, physical_id=answer["PhysicalResourceId"])
    assert deleted["Status"] == "SUCCESS"
    assert deleted["PhysicalResourceId"] == answer["PhysicalResourceId"]
    assert cloud.ecs.calls == []
    assert cloud.ros.violations == []


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"ImageId": "m-doesnotexist"}, "InvalidImageId.NotFound"),
        ({"Encrypted": "true", "KMSKeyId": "key-unknown"}, "InvalidParameter.KMSKeyId.NotFound"),
    ],
)
def test_ecs_refusal_fails_with_its_code_and_leaves_nothing(cloud, source, changes, code):
    _, answer = request_and_answer(cloud, "Create", properties(source, **changes))
    assert answer["Status"] == "FAILED"
    assert f"ECS CopyImage failed: {code}" in answer["Reason"]
    assert copies_in(cloud, "cn-shanghai") == []
    assert actions(cloud).count("CopyImage") == 1  # a client error is not retried


def test_request_without_response_url_fails_the_invocation_loudly(cloud, source, capsys):
    request = cloud.ros.new_request("Create", properties(source))
    del request["ResponseURL"]
    with pytest.raises(InvocationFailed) as failed:
        cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert "no ResponseURL" in failed.value.error_message
    assert cloud.ros.wait_answer(request["RequestId"], timeout=1) is None
    assert cloud.ecs.calls == []
    assert "request cannot be answered" in capsys.readouterr().out


def test_event_that_is_not_json_fails_the_invocation(cloud):
    with pytest.raises(InvocationFailed, match="not JSON"):
        cloud.fc.invoke(b"Create please", invocation_type="Sync")


@pytest.mark.parametrize("field", ["StackId", "RequestType", "LogicalResourceId"])
def test_request_missing_a_field_is_answered_failed(cloud, source, field):
    request = cloud.ros.new_request("Create", properties(source))
    request.pop(field)
    answer = send(cloud, request, timeout=1)  # a Sync run has answered by the time it returns
    recorded = cloud.ros.answers[-1].json
    assert recorded["Status"] == "FAILED"
    assert f"no {field}" in recorded["Reason"]
    assert answer is None or answer["Status"] == "FAILED"  # ROS rejects an answer missing its own ids
    assert cloud.ecs.calls == []


def test_unknown_request_type_is_answered_failed(cloud, source):
    request = cloud.ros.new_request("Create", properties(source))
    request["RequestType"] = "Rename"
    answer = send(cloud, request)
    assert answer["Status"] == "FAILED"
    assert "RequestType must be one of Create, Update, Delete" in answer["Reason"]


def test_an_unexpected_error_still_gets_a_failed_answer(cloud, source):
    cloud.ecs.faults.add("CopyImage", "malformed")  # 200 without ImageId: the provider trips over it
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("internal error in the provider: KeyError")
    assert "see the function's logs" in answer["Reason"]


def test_a_bad_setting_falls_back_to_its_default_instead_of_silencing_the_function(make_cloud, capsys):
    cloud = make_cloud(environment={"COPYIMAGE_ECS_ATTEMPTS": "four"})
    source = cloud.seed_image("src")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    assert "ignoring a setting that is not a number" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "region"), [("SourceRegionId", "cn-nowhere"), ("DestinationRegionId", "xx-nowhere-1")]
)
def test_a_region_ecs_does_not_serve_is_refused_before_any_copy(cloud, source, name, region):
    _, answer = request_and_answer(cloud, "Create", properties(source, **{name: region}))
    assert answer["Status"] == "FAILED"
    assert f"Property {name}: {region!r} is not a region ECS serves" in answer["Reason"]
    assert actions(cloud) == ["DescribeRegions"]


def test_continuation_of_an_unknown_version_is_answered_failed(cloud, source):
    request = cloud.ros.new_request("Create", properties(source))
    event = {"Continuation": {"Version": 99, "Request": request, "Wait": {}}}
    cloud.fc.invoke(json.dumps(event).encode(), invocation_type="Sync")
    answer = cloud.ros.wait_answer(request["RequestId"], timeout=1)
    assert answer["Status"] == "FAILED"
    assert "continuation version 99 is not supported" in answer["Reason"]
