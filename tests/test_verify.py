"""verify.judge: what GetStack and GetStackResource must show for ROS to confirm a first delivery (pure)."""

from __future__ import annotations

import pytest
from copyimage.protocol import parse_request
from copyimage.verify import FITTING, STACK_STATUSES, judge


def request(request_type: str, resource_type: str = "Custom::CopyImage"):
    event = {
        "RequestType": request_type,
        "ResponseURL": "https://ros.aliyuncs.com/x",
        "StackId": "4a6c9851-3b0f-4f5f-b4ca-a14bf6910000",
        "RequestId": "r-1",
        "LogicalResourceId": "CopyImage",
        "RegionId": "cn-hangzhou",
        "ResourceType": resource_type,
        "ResourceProperties": {},
        "PhysicalResourceId": "m-1",
    }
    return parse_request(event)


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_each_request_type_is_confirmed_only_in_the_statuses_ros_sends_it_in(request_type):
    confirmed = {
        status
        for status in STACK_STATUSES
        if judge(request(request_type), {"Status": status}, {"ResourceType": "Custom::CopyImage"}).kind == "confirmed"
    }
    assert confirmed == FITTING[request_type]
    assert confirmed <= STACK_STATUSES and all(status.endswith("_IN_PROGRESS") for status in confirmed)
    assert "CREATE_COMPLETE" not in confirmed and "DELETE_COMPLETE" not in confirmed


def test_the_fitting_statuses_follow_the_stack_operations():
    assert "CREATE_IN_PROGRESS" in FITTING["Create"] and "CREATE_IN_PROGRESS" not in FITTING["Delete"]
    assert {"DELETE_IN_PROGRESS", "CREATE_ROLLBACK_IN_PROGRESS"} <= FITTING["Delete"]
    assert "UPDATE_IN_PROGRESS" in FITTING["Update"] and "DELETE_IN_PROGRESS" not in FITTING["Update"]


def test_a_status_outside_getstacks_list_refuses_nothing():
    verdict = judge(request("Delete"), {"Status": "SOME_NEW_IN_PROGRESS"}, {"ResourceType": "Custom::CopyImage"})
    assert verdict.kind == "confirmed"


@pytest.mark.parametrize("shown", ["Custom::CopyImage", "Custom::Other", "ALIYUN::ROS::CustomResource", ""])
def test_any_custom_resource_type_string_is_accepted(shown):
    verdict = judge(request("Create"), {"Status": "CREATE_IN_PROGRESS"}, {"ResourceType": shown})
    assert verdict.kind == "confirmed"


def test_a_resource_of_another_kind_contradicts_the_request():
    verdict = judge(request("Create"), {"Status": "CREATE_IN_PROGRESS"}, {"ResourceType": "ALIYUN::ECS::Instance"})
    assert verdict.kind == "contradicted" and "ALIYUN::ECS::Instance" in verdict.detail
