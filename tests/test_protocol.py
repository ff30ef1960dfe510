"""The ROS answer format: fields, limits, markers."""

import json

import pytest
from copyimage.errors import InvalidRequest, Unanswerable
from copyimage.protocol import (
    FAILED_CREATE_PREFIX,
    MAX_BODY_BYTES,
    Answer,
    CreateRequest,
    DeleteRequest,
    UpdateRequest,
    client_token,
    decode_event,
    parse_request,
    response_body,
)

EVENT = {
    "RequestType": "Create",
    "ResponseURL": "https://ros-callback.cn-hangzhou.aliyuncs.com/x?Signature=secret",
    "IntranetResponseURL": "https://ros-intranet.cn-hangzhou.aliyuncs.com/x?Signature=secret",
    "StackId": "stack-1",
    "StackName": "demo",
    "RequestId": "req-1",
    "LogicalResourceId": "CopyImage",
    "RegionId": "cn-hangzhou",
    "ResourceType": "Custom::CopyImage",
    "ResourceProperties": {"ImageId": "m-1"},
}


def test_decode_accepts_bytes_and_rejects_non_objects():
    assert decode_event(json.dumps(EVENT).encode())["RequestId"] == "req-1"
    with pytest.raises(Unanswerable, match="not JSON"):
        decode_event(b"{nope")
    with pytest.raises(Unanswerable, match="not a JSON object"):
        decode_event(b"[1, 2]")
    with pytest.raises(Unanswerable, match="not UTF-8"):
        decode_event(b"\xff\xfe")


def test_parse_request_gives_each_request_type_its_own_model():
    create = parse_request(EVENT)
    assert isinstance(create, CreateRequest) and create.properties == {"ImageId": "m-1"}
    update = parse_request(
        {**EVENT, "RequestType": "Update", "PhysicalResourceId": "m-2", "OldResourceProperties": {"ImageId": "m-0"}}
    )
    assert isinstance(update, UpdateRequest)
    assert update.physical_resource_id == "m-2"
    assert update.old_properties == {"ImageId": "m-0"}
    assert update.intranet_response_url.startswith("https://ros-intranet")
    delete = parse_request({**EVENT, "RequestType": "Delete"})
    assert isinstance(delete, DeleteRequest)
    assert delete.physical_resource_id is None  # after a timed-out Create ROS may send none
    assert delete.answer_id == create.failed_create_id


def test_an_update_without_a_physical_id_is_malformed():
    with pytest.raises(InvalidRequest, match="PhysicalResourceId"):
        parse_request({**EVENT, "RequestType": "Update"})


def test_properties_must_be_an_object():
    with pytest.raises(InvalidRequest, match="ResourceProperties must be a JSON object"):
        parse_request({**EVENT, "ResourceProperties": ["ImageId"]})


@pytest.mark.parametrize("field", ["RequestType", "StackId", "RequestId", "LogicalResourceId", "ResponseURL"])
def test_parse_request_names_a_missing_field(field):
    with pytest.raises(InvalidRequest, match=field):
        parse_request({k: v for k, v in EVENT.items() if k != field})


def test_unknown_request_type_is_rejected():
    with pytest.raises(InvalidRequest, match="RequestType"):
        parse_request({**EVENT, "RequestType": "Replace"})


def test_body_copies_the_request_ids():
    body = json.loads(response_body(parse_request(EVENT), Answer("SUCCESS", "m-9", data={"ImageId": "m-9"})))
    assert body == {
        "Status": "SUCCESS",
        "PhysicalResourceId": "m-9",
        "StackId": "stack-1",
        "RequestId": "req-1",
        "LogicalResourceId": "CopyImage",
        "Data": {"ImageId": "m-9"},
    }


def test_long_reason_is_cut_from_its_end_to_fit_4096_bytes():
    reason = "Property Tag: starts here. " + '\u4e2d"' * 5000
    raw = response_body(parse_request(EVENT), Answer("FAILED", "x", reason=reason))
    assert len(raw) <= MAX_BODY_BYTES
    body = json.loads(raw)
    assert body["Reason"].startswith("Property Tag: starts here.")
    assert body["Reason"].endswith("[...]")
    assert len(raw) > MAX_BODY_BYTES - 64  # kept as much as fits


def test_physical_id_is_cut_to_255_bytes_and_marker_is_recognisable():
    marker = parse_request({**EVENT, "RequestId": "r" * 400}).failed_create_id
    assert marker.startswith(FAILED_CREATE_PREFIX)
    assert len(marker.encode()) == 255
    body = json.loads(response_body(parse_request(EVENT), Answer("SUCCESS", "\u00e9" * 300)))
    assert len(body["PhysicalResourceId"].encode()) <= 255


def test_client_token_is_stable_ascii_and_short():
    token = client_token("stack", "CopyImage", "req")
    assert token == client_token("stack", "CopyImage", "req")
    assert token != client_token("stack", "CopyImage", "req2")
    assert token.isascii() and len(token) <= 64
