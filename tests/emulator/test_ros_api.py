"""The ROS 2019-09-10 API of the ROS stand-in, driven through the real ``alibabacloud_ros20190910`` client.

The calls return at once while the stack operation runs on the cloud's virtual clock; the tests move that clock
themselves (``cloud.clock.sleep``) between polls, so every status and time below is exact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml
from alibabacloud_ros20190910 import models as ros_models
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils
from conftest import DESTINATION, settle_stack
from darabonba.runtime import RuntimeOptions

from emulator.cloud import TEMPLATE, LocalCloud
from emulator.credentials import AccessKey

HZ = "cn-hangzhou"
START = "2026-01-01T00:00:00"  # the virtual clock's first instant, as ROS writes times
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")  # UTC, no trailing Z
IMAGE_ID = re.compile(r"m-[a-z0-9]{20}")
TEMPLATE_TEXT = TEMPLATE.read_text(encoding="utf-8")
Parameter = ros_models.CreateStackRequestParameters


@pytest.fixture
def cloud(make_cloud) -> LocalCloud:
    return make_cloud()


@pytest.fixture
def client(cloud: LocalCloud) -> Any:
    return cloud.ros_client()


@pytest.fixture
def source(cloud: LocalCloud) -> Any:
    return cloud.seed_image("golden-source")


def parameters(image_id: str, **extra: str) -> list[Any]:
    given = {"ImageId": image_id, "DestinationRegionId": DESTINATION, **extra}
    return [Parameter(parameter_key=key, parameter_value=value) for key, value in given.items()]


def create(client: Any, image_id: str, name: str = "copy-stack", **kwargs: Any) -> str:
    kwargs.setdefault("template_body", TEMPLATE_TEXT)
    kwargs.setdefault("parameters", parameters(image_id))
    request = ros_models.CreateStackRequest(region_id=HZ, stack_name=name, **kwargs)
    return client.create_stack(request).body.stack_id


def settle(cloud: LocalCloud, client: Any, stack_id: str, step: float = 30.0, polls: int = 100) -> Any:
    return settle_stack(cloud, client, stack_id, step, polls)


def get(client: Any, stack_id: str, **kwargs: Any) -> Any:
    return client.get_stack(ros_models.GetStackRequest(region_id=HZ, stack_id=stack_id, **kwargs)).body


def events(client: Any, stack_id: str, **kwargs: Any) -> Any:
    request = ros_models.ListStackEventsRequest(region_id=HZ, stack_id=stack_id, **kwargs)
    return client.list_stack_events(request).body


def expect_error(code: str, status: int, call: Callable[[], Any]) -> ClientException:
    with pytest.raises(ClientException) as caught:
        call()
    assert (caught.value.code, caught.value.status_code) == (code, status), caught.value
    return caught.value


def signed_raw_request(cloud: LocalCloud, key: AccessKey, query: dict[str, str], form: dict[str, str] | None = None):
    """An ACS3-HMAC-SHA256 request signed by hand, with the action only as ``Action=`` in the query (no
    ``x-acs-action`` header), as older RPC clients put it."""
    body = urlencode(form).encode() if form else b""
    headers = {
        "host": cloud.ros.endpoint,
        "x-acs-version": "2019-09-10",
        "x-acs-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "content-type": "application/x-www-form-urlencoded",
    }
    names = sorted(headers)
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{n}:{headers[n]}\n" for n in names)
    payload_hash = headers["x-acs-content-sha256"]
    canonical = "\n".join(["POST", "/", canonical_query, canonical_headers, ";".join(names), payload_hash])
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(key.secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={key.id},SignedHeaders={';'.join(names)},Signature={signature}"
    )
    del headers["host"]  # urllib sends the same value itself
    url = f"{cloud.ros.url}/?{urlencode(query, quote_via=quote)}"
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def send(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --------------------------------------------------------------------------- the lifecycle


def test_create_returns_at_once_and_get_stack_follows_the_operation_on_virtual_time(cloud, client, source):
    tags = [ros_models.CreateStackRequestTags(key="team", value="imaging")]
    before = cloud.clock.now()
    stack_id = create(client, source.image_id, tags=tags)
    body = get(client, stack_id)
    assert cloud.clock.now() == before  # the calls only started the operation: no virtual time passed
    assert (body.status, body.status_reason) == ("CREATE_IN_PROGRESS", "Stack CREATE started")
    assert body.outputs == []  # nothing resolved yet

    cloud.clock.sleep(10)  # the copy takes 30 virtual seconds: still running
    assert get(client, stack_id).status == "CREATE_IN_PROGRESS"
    body = settle(cloud, client, stack_id)
    assert (body.status, body.status_reason) == ("CREATE_COMPLETE", "Stack CREATE completed successfully")
    (copy,) = [image for image in cloud.ecs.images(DESTINATION) if image.is_copy]
    assert body.outputs == [
        {
            "OutputKey": "ImageId",
            "OutputValue": copy.image_id,
            "Description": "ID of the copied image in the destination region.",
        }
    ]
    assert IMAGE_ID.fullmatch(copy.image_id)
    assert (body.stack_id, body.stack_name, body.region_id) == (stack_id, "copy-stack", HZ)
    assert (body.timeout_in_minutes, body.disable_rollback) == (60, False)
    assert [(t.key, t.value) for t in body.tags] == [("team", "imaging")]
    assert body.create_time == START and TIME.fullmatch(body.update_time) and body.update_time > START
    given = {p.parameter_key: p.parameter_value for p in body.parameters}
    assert given == {
        "ALIYUN::Region": HZ,
        "ALIYUN::AccountId": cloud.fc.account_id,
        "ALIYUN::StackId": stack_id,
        "ALIYUN::StackName": "copy-stack",
        "ImageId": source.image_id,
        "DestinationRegionId": DESTINATION,
        "FunctionName": "ros-copy-image",  # the template's defaults too
        "DestinationImageName": "",
        "DestinationDescription": "",
        "Encrypted": "false",
        "Tag": "",
        "AllowRelay": "true",
        "Timeout": "43200",
    }
    assert get(client, stack_id, output_option="Disabled").outputs is None
    expect_error("InvalidParameter", 400, lambda: get(client, stack_id, output_option="Sometimes"))


def test_resources_of_a_created_stack(cloud, client, source):
    stack_id = create(client, source.image_id)
    request = ros_models.ListStackResourcesRequest(region_id=HZ, stack_id=stack_id)
    (resource,) = client.list_stack_resources(request).body.resources
    assert (resource.logical_resource_id, resource.resource_type) == ("CopyImage", "Custom::CopyImage")
    assert (resource.status, resource.physical_resource_id) == ("INIT_COMPLETE", None)  # not begun: no time passed
    cloud.clock.sleep(1)
    (resource,) = client.list_stack_resources(request).body.resources
    assert (resource.status, resource.physical_resource_id) == ("CREATE_IN_PROGRESS", None)  # the copy takes 30 s

    settle(cloud, client, stack_id)
    (resource,) = client.list_stack_resources(request).body.resources
    image_id = get(client, stack_id).outputs[0]["OutputValue"]
    assert (resource.status, resource.physical_resource_id) == ("CREATE_COMPLETE", image_id)
    assert (resource.stack_id, resource.stack_name) == (stack_id, "copy-stack")
    assert resource.create_time == START and resource.update_time > START

    one = client.get_stack_resource(
        ros_models.GetStackResourceRequest(
            region_id=HZ, stack_id=stack_id, logical_resource_id="CopyImage", show_resource_attributes=True
        )
    ).body
    shown = one.to_map()
    attributes = shown.pop("ResourceAttributes")
    assert shown.pop("RequestId") and shown == resource.to_map()
    assert {"Key": "ImageId", "Value": image_id} in attributes
    missing = ros_models.GetStackResourceRequest(region_id=HZ, stack_id=stack_id, logical_resource_id="Nope")
    expect_error("ResourceNotFound", 404, lambda: client.get_stack_resource(missing))
    expect_error(
        "MissingParameter",
        400,
        lambda: client.get_stack_resource(ros_models.GetStackResourceRequest(region_id=HZ, stack_id=stack_id)),
    )


def test_list_stack_events_is_newest_first_paged_and_filtered(cloud, client, source):
    stack_id = create(client, source.image_id)
    settle(cloud, client, stack_id)
    body = events(client, stack_id)
    listed = [(e.logical_resource_id, e.resource_type, e.status) for e in body.events]
    assert listed == [
        ("copy-stack", "ALIYUN::ROS::Stack", "CREATE_COMPLETE"),
        ("CopyImage", "Custom::CopyImage", "CREATE_COMPLETE"),
        ("CopyImage", "Custom::CopyImage", "CREATE_IN_PROGRESS"),
        ("copy-stack", "ALIYUN::ROS::Stack", "CREATE_IN_PROGRESS"),
    ]
    assert (body.total_count, body.page_number, body.page_size) == (4, 1, 10)
    newest, copied = body.events[0], body.events[1]
    assert (newest.stack_id, newest.stack_name, newest.physical_resource_id) == (stack_id, "copy-stack", stack_id)
    assert newest.status_reason == "Stack CREATE completed successfully"
    assert copied.physical_resource_id == get(client, stack_id).outputs[0]["OutputValue"]
    assert body.events[-1].create_time == START and TIME.fullmatch(newest.create_time) and newest.create_time > START
    assert len({e.event_id for e in body.events}) == 4

    second = events(client, stack_id, page_size=3, page_number=2)
    assert [e.event_id for e in second.events] == [body.events[3].event_id]
    assert (second.total_count, second.page_number, second.page_size) == (4, 2, 3)
    assert events(client, stack_id, page_number=3, page_size=2).events == []

    done = events(client, stack_id, status=["CREATE_COMPLETE"])
    assert [e.logical_resource_id for e in done.events] == ["copy-stack", "CopyImage"] and done.total_count == 2
    mine = events(client, stack_id, logical_resource_id=["CopyImage"], page_size=1)
    assert ([e.status for e in mine.events], mine.total_count) == (["CREATE_COMPLETE"], 2)
    stack_only = events(client, stack_id, resource_type=["ALIYUN::ROS::Stack"], status=["CREATE_IN_PROGRESS"])
    assert [e.event_id for e in stack_only.events] == [body.events[3].event_id]
    both = events(
        client, stack_id, status=["CREATE_IN_PROGRESS", "CREATE_COMPLETE"], resource_type=["Custom::CopyImage"]
    )
    assert both.total_count == 2

    expect_error("InvalidParameter", 400, lambda: events(client, stack_id, page_size=51))
    expect_error("InvalidParameter", 400, lambda: events(client, stack_id, page_number=0))
    assert events(client, stack_id, page_size=50).page_size == 50


def test_update_then_delete_through_the_api(cloud, client, source):
    stack_id = create(client, source.image_id)
    created = settle(cloud, client, stack_id)
    image_id = created.outputs[0]["OutputValue"]
    cloud.clock.sleep(60)  # the update starts a minute later: its time shows in UpdateTime

    request = ros_models.UpdateStackRequest(
        region_id=HZ,
        stack_id=stack_id,
        use_previous_parameters=True,
        parameters=[ros_models.UpdateStackRequestParameters(parameter_key="Tag", parameter_value="team=web")],
    )
    assert client.update_stack(request).body.stack_id == stack_id
    body = get(client, stack_id)
    assert (body.status, body.status_reason) == ("UPDATE_IN_PROGRESS", "Stack UPDATE started")
    body = settle(cloud, client, stack_id)
    assert body.status == "UPDATE_COMPLETE", body.status_reason
    assert body.outputs[0]["OutputValue"] == image_id  # updated in place
    assert cloud.ecs.image(image_id).tags.get("team") == "web"
    given = {p.parameter_key: p.parameter_value for p in body.parameters}
    assert (given["Tag"], given["ImageId"]) == ("team=web", source.image_id)  # the others kept
    assert body.create_time == START and body.update_time > created.update_time
    statuses = [e.status for e in events(client, stack_id, resource_type=["ALIYUN::ROS::Stack"]).events]
    assert statuses == ["UPDATE_COMPLETE", "UPDATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_IN_PROGRESS"]

    delete = ros_models.DeleteStackRequest(region_id=HZ, stack_id=stack_id)
    assert client.delete_stack(delete).body.request_id
    assert get(client, stack_id).status == "DELETE_IN_PROGRESS"  # still there while it runs
    assert settle(cloud, client, stack_id) is None
    assert cloud.ros.stacks[stack_id].status == "DELETE_COMPLETE"
    assert cloud.ecs.image(image_id) is None
    error = expect_error("StackNotFound", 404, lambda: get(client, stack_id))
    assert error.message.startswith(f"code: 404, The Stack ({stack_id}) could not be found.")
    assert set(error.data) >= {"RequestId", "HostId", "Code", "Message"}
    for call in (
        lambda: events(client, stack_id),
        lambda: client.list_stack_resources(ros_models.ListStackResourcesRequest(region_id=HZ, stack_id=stack_id)),
        lambda: client.delete_stack(delete),
        lambda: client.update_stack(request),
    ):
        expect_error("StackNotFound", 404, call)


def test_update_without_previous_parameters_and_with_a_new_template(cloud, client, source):
    stack_id = create(client, source.image_id)
    settle(cloud, client, stack_id)
    tag = [ros_models.UpdateStackRequestParameters(parameter_key="Tag", parameter_value="a=b")]
    # UsePreviousParameters defaults to false: ImageId has no Default, so it must be given again.
    request = ros_models.UpdateStackRequest(region_id=HZ, stack_id=stack_id, parameters=tag)
    expect_error("InvalidParameter", 400, lambda: client.update_stack(request))
    assert get(client, stack_id).status == "CREATE_COMPLETE"  # refused before anything began

    template = yaml.safe_load(TEMPLATE_TEXT)
    template["Outputs"]["SourceImageId"] = {"Description": "The source.", "Value": {"Ref": "ImageId"}}
    request = ros_models.UpdateStackRequest(
        region_id=HZ,
        stack_id=stack_id,
        template_body=json.dumps(template),
        use_previous_parameters=True,
        parameters=tag,
    )
    client.update_stack(request)
    body = settle(cloud, client, stack_id)
    assert body.status == "UPDATE_COMPLETE", body.status_reason
    outputs = {o["OutputKey"]: o["OutputValue"] for o in body.outputs}
    assert outputs["SourceImageId"] == source.image_id and IMAGE_ID.fullmatch(outputs["ImageId"])
    assert cloud.ecs.image(outputs["ImageId"]).tags.get("a") == "b"


def test_operations_on_a_busy_stack_are_refused(cloud, client, source):
    stack_id = create(client, source.image_id)
    update = ros_models.UpdateStackRequest(region_id=HZ, stack_id=stack_id, use_previous_parameters=True)
    expect_error("ActionInProgress", 409, lambda: client.update_stack(update))
    delete = ros_models.DeleteStackRequest(region_id=HZ, stack_id=stack_id)
    expect_error("ActionInProgress", 409, lambda: client.delete_stack(delete))
    assert settle(cloud, client, stack_id).status == "CREATE_COMPLETE"
    client.update_stack(update)
    assert settle(cloud, client, stack_id).status == "UPDATE_COMPLETE"  # no change: nothing to send


@pytest.mark.parametrize(
    ("disable_rollback", "final", "resource_status"),
    [(False, "CREATE_ROLLBACK_COMPLETE", "DELETE_COMPLETE"), (True, "CREATE_FAILED", "CREATE_FAILED")],
)
def test_a_failed_create_rolls_back_unless_disabled(cloud, client, disable_rollback, final, resource_status):
    stack_id = create(client, "m-00000000000000000000", disable_rollback=disable_rollback)
    body = settle(cloud, client, stack_id)
    assert body.status == final
    assert body.disable_rollback is disable_rollback
    assert "InvalidImageId.NotFound" in body.status_reason
    assert body.outputs == []
    stack_statuses = [e.status for e in events(client, stack_id, resource_type=["ALIYUN::ROS::Stack"]).events]
    resource_statuses = [e.status for e in events(client, stack_id, logical_resource_id=["CopyImage"]).events]
    if disable_rollback:
        assert stack_statuses == ["CREATE_FAILED", "CREATE_IN_PROGRESS"]
        assert resource_statuses == ["CREATE_FAILED", "CREATE_IN_PROGRESS"]
        assert [r["RequestType"] for r in cloud.ros.requests] == ["Create"]
    else:  # the rollback events replace the stack's CREATE_FAILED
        assert stack_statuses == ["CREATE_ROLLBACK_COMPLETE", "CREATE_ROLLBACK_IN_PROGRESS", "CREATE_IN_PROGRESS"]
        assert resource_statuses == ["DELETE_COMPLETE", "DELETE_IN_PROGRESS", "CREATE_FAILED", "CREATE_IN_PROGRESS"]
        assert [r["RequestType"] for r in cloud.ros.requests] == ["Create", "Delete"]
    (resource,) = client.list_stack_resources(
        ros_models.ListStackResourcesRequest(region_id=HZ, stack_id=stack_id)
    ).body.resources
    assert resource.status == resource_status

    update = ros_models.UpdateStackRequest(region_id=HZ, stack_id=stack_id, use_previous_parameters=True)
    expect_error("StackValidationFailed", 400, lambda: client.update_stack(update))
    client.delete_stack(ros_models.DeleteStackRequest(region_id=HZ, stack_id=stack_id))
    assert settle(cloud, client, stack_id) is None


# --------------------------------------------------------------------------- idempotency and names


def test_client_token_makes_create_idempotent_and_names_are_unique(cloud, client, source):
    first = create(client, source.image_id, client_token="token-1")
    assert create(client, source.image_id, client_token="token-1") == first  # a retry: the same stack
    assert list(cloud.ros.stacks) == [first]
    expect_error(
        "InvalidIdempotenceParameter", 400, lambda: create(client, source.image_id, client_token="token-1", name="b")
    )
    error = expect_error("StackExists", 409, lambda: create(client, source.image_id, client_token="token-2"))
    assert "The Stack (copy-stack) already exists." in error.message
    expect_error("StackExists", 409, lambda: create(client, source.image_id))
    expect_error("InvalidParameter", 400, lambda: create(client, source.image_id, client_token="bad token!"))
    other = create(client, source.image_id, name="copy-stack-2")
    assert other != first and len(cloud.ros.stacks) == 2

    settle(cloud, client, first)
    client.delete_stack(ros_models.DeleteStackRequest(region_id=HZ, stack_id=first))
    assert settle(cloud, client, first) is None
    again = create(client, source.image_id)  # the name is free once the stack is deleted
    assert again not in (first, other)


def test_a_stack_is_found_only_in_its_region(cloud, client, source):
    stack_id = create(client, source.image_id)
    expect_error(
        "StackNotFound",
        404,
        lambda: client.get_stack(ros_models.GetStackRequest(region_id="cn-beijing", stack_id=stack_id)),
    )
    expect_error("InvalidParameter", 400, lambda: get(client, "not-a-stack-id"))
    expect_error("StackNotFound", 404, lambda: get(client, str(uuid.uuid4())))
    # the same name in another region is another stack
    request = ros_models.CreateStackRequest(
        region_id="cn-beijing", stack_name="copy-stack", template_body=TEMPLATE_TEXT, parameters=parameters("m-x")
    )
    assert client.create_stack(request).body.stack_id != stack_id


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"timeout_in_minutes": 9}, "InvalidParameter"),
        ({"timeout_in_minutes": 1441}, "InvalidParameter"),
        ({"stack_name": None}, "MissingParameter"),
        ({"stack_name": "9starts-with-a-digit"}, "InvalidParameter"),
        ({"region_id": None}, "MissingParameter"),
        ({"template_body": None}, "MissingParameter"),
        (
            {"parameters": [Parameter(parameter_key="DestinationRegionId", parameter_value=DESTINATION)]},
            "InvalidParameter",
        ),
        ({"parameters": parameters("m-x", Unknown="1")}, "InvalidParameter"),
        ({"parameters": parameters("m-x", Timeout="soon")}, "InvalidParameter"),
        ({"parameters": parameters("m-x", Encrypted="maybe")}, "InvalidParameter"),
        ({"parameters": [Parameter(parameter_value="x")]}, "MissingParameter"),
        ({"template_body": "Resources: [unclosed"}, "InvalidTemplate"),
        ({"template_body": "just text"}, "InvalidTemplate"),
        ({"template_body": TEMPLATE_TEXT.replace("'2015-09-01'", "'2010-09-09'")}, "InvalidTemplate"),
        ({"template_body": TEMPLATE_TEXT.replace("Custom::CopyImage", "ALIYUN::ECS::CopyImage")}, "InvalidTemplate"),
        ({"template_body": TEMPLATE_TEXT.replace("Ref: DestinationRegionId", "Ref: Nowhere")}, "InvalidTemplate"),
        ({"template_body": TEMPLATE_TEXT.replace("Fn::GetAtt", "Fn::Select")}, "InvalidTemplate"),
        ({"template_url": "oss://bucket/template.yml", "template_body": None}, "InvalidParameter"),
        ({"disable_rollback": "maybe"}, "InvalidParameter"),
        ({"tags": [ros_models.CreateStackRequestTags(value="v")]}, "MissingParameter"),
    ],
)
def test_create_stack_refuses_bad_input(cloud, client, change, code):
    fields: dict[str, Any] = {
        "region_id": HZ,
        "stack_name": "bad-input",
        "template_body": TEMPLATE_TEXT,
        "parameters": parameters("m-x"),
        **change,
    }
    request = ros_models.CreateStackRequest(**fields)
    expect_error(code, 400, lambda: client.create_stack(request))
    assert cloud.ros.stacks == {}  # refused before anything began


@pytest.mark.parametrize("minutes", [10, 1440])
def test_timeout_bounds_are_accepted(cloud, client, minutes):
    stack_id = create(client, "m-x", timeout_in_minutes=minutes)
    assert get(client, stack_id).timeout_in_minutes == minutes


def test_template_bodies_in_json_and_yaml_give_the_same_stack(cloud, client, source):
    from_yaml = create(client, source.image_id, name="from-yaml")
    from_json = create(
        client, source.image_id, name="from-json", template_body=json.dumps(yaml.safe_load(TEMPLATE_TEXT))
    )
    assert cloud.ros.stacks[from_yaml].template == cloud.ros.stacks[from_json].template
    created = [call for call in cloud.ros.api.calls if call.action == "CreateStack"]
    assert [call.body_params for call in created] == [("TemplateBody",), ("TemplateBody",)]  # SDK 3.7: in the body
    assert all("TemplateBody" in call.params and call.status == 200 for call in created)
    for stack_id in (from_yaml, from_json):
        assert settle(cloud, client, stack_id).status == "CREATE_COMPLETE"


def test_template_body_in_the_query_as_older_sdks_send_it(cloud, client, source):
    params = open_api_models.Params(
        action="CreateStack",
        version="2019-09-10",
        protocol="HTTPS",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    query = {
        "RegionId": HZ,
        "StackName": "old-sdk",
        "TemplateBody": TEMPLATE_TEXT,
        "DisableRollback": True,
        "Parameters": [
            {"ParameterKey": "ImageId", "ParameterValue": source.image_id},
            {"ParameterKey": "DestinationRegionId", "ParameterValue": DESTINATION},
        ],
    }
    request = open_api_models.OpenApiRequest(query=Utils.query(query))
    stack_id = client.call_api(params, request, RuntimeOptions())["body"]["StackId"]
    call = cloud.ros.api.calls[-1]
    assert call.body_params == () and call.params["TemplateBody"] == TEMPLATE_TEXT
    assert call.params["DisableRollback"] == "True"
    body = settle(cloud, client, stack_id)
    assert (body.status, body.disable_rollback) == ("CREATE_COMPLETE", True)


def test_action_in_the_query_and_lower_case_booleans(cloud, source):
    key = cloud.credentials.add_access_key()
    query = {
        "Action": "CreateStack",
        "RegionId": HZ,
        "StackName": "raw",
        "DisableRollback": "true",
        "Parameters.1.ParameterKey": "ImageId",
        "Parameters.1.ParameterValue": source.image_id,
        "Parameters.2.ParameterKey": "DestinationRegionId",
        "Parameters.2.ParameterValue": DESTINATION,
    }
    status, body = send(signed_raw_request(cloud, key, query, form={"TemplateBody": TEMPLATE_TEXT}))
    assert status == 200, body
    assert set(body) == {"RequestId", "StackId"} and cloud.ros.stacks[body["StackId"]].disable_rollback is True
    status, got = send(
        signed_raw_request(cloud, key, {"Action": "GetStack", "RegionId": HZ, "StackId": body["StackId"]})
    )
    assert (status, got["StackName"], got["DisableRollback"]) == (200, "raw", True)
    status, error = send(signed_raw_request(cloud, key, {"Action": "DescribeEverything", "RegionId": HZ}))
    assert (status, error["Code"]) == (404, "InvalidAction.NotFound")
    assert (
        set(error) == {"RequestId", "HostId", "Code", "Message", "Recommend"} and error["HostId"] == "ros.aliyuncs.com"
    )


# --------------------------------------------------------------------------- signatures


def test_requests_signed_as_the_aliyun_cli_signs_them_are_served(cloud, source):
    """Signature 1.0 (HMAC-SHA1 over the sorted parameters), which the CLI's RPC calls use, as well as ACS3."""
    key = cloud.credentials.add_access_key()
    classic = cloud.ros_client(key, signature_v1=True)
    stack_id = create(classic, source.image_id)
    body = settle(cloud, classic, stack_id)
    assert body.status == "CREATE_COMPLETE"
    assert IMAGE_ID.fullmatch({o["OutputKey"]: o["OutputValue"] for o in body.outputs}["ImageId"])
    call = next(c for c in cloud.ros.api.calls if c.action == "CreateStack")
    assert (call.params["SignatureMethod"], call.access_key_id) == ("HMAC-SHA1", key.id)
    wrong_secret = cloud.ros_client(AccessKey(key.id, "not-the-secret"), signature_v1=True)
    expect_error("SignatureDoesNotMatch", 400, lambda: get(wrong_secret, stack_id))
    unknown = cloud.ros_client(AccessKey("LTAI-nobody", "whatever"), signature_v1=True)
    expect_error("InvalidAccessKeyId.NotFound", 404, lambda: get(unknown, stack_id))


def test_bad_signatures_are_refused_before_anything_happens(cloud, source):
    key = cloud.credentials.add_access_key()
    wrong_secret = cloud.ros_client(AccessKey(key.id, "not-the-secret"))
    expect_error("SignatureDoesNotMatch", 400, lambda: create(wrong_secret, source.image_id))
    unknown = cloud.ros_client(AccessKey("LTAI-nobody", "whatever"))
    expect_error("InvalidAccessKeyId.NotFound", 404, lambda: create(unknown, source.image_id))
    assert cloud.ros.stacks == {}
    assert [(c.action, c.status, c.error_code) for c in cloud.ros.api.calls] == [
        ("CreateStack", 400, "SignatureDoesNotMatch"),
        ("CreateStack", 404, "InvalidAccessKeyId.NotFound"),
    ]
    assert create(cloud.ros_client(key), source.image_id)  # the right secret works

    good = signed_raw_request(cloud, key, {"Action": "GetStack", "RegionId": HZ, "StackId": str(uuid.uuid4())})
    tampered = urllib.request.Request(
        good.full_url.replace("GetStack", "DeleteStack"), data=good.data, headers=good.headers, method="POST"
    )
    status, body = send(tampered)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert send(good)[1]["Code"] == "StackNotFound"
    assert send(good)[1]["Code"] == "SignatureNonceUsed"  # the very same request again
