"""Copies of any length: the wait moves into delayed self-invocations and survives at-least-once delivery."""

from __future__ import annotations

import json
import re

import pytest
from conftest import DESTINATION, copies_in, properties, request_and_answer

from emulator.ros import load_template


def start_create(cloud, source, **extra) -> dict:
    request = cloud.ros.new_request("Create", properties(source, **extra))
    _, result = cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert result == {"Status": "WAITING"}
    return request


def continuations(cloud) -> list:
    return [i for i in cloud.fc.invocations if b"CopyImageContinuation" in i.payload]


@pytest.mark.parametrize("fc_api", ["fc3", "fc2"])
def test_copy_longer_than_several_invocations(make_cloud, fc_api):
    cloud = make_cloud(time_scale=200, copy_seconds=1800, fc_api=fc_api)
    source = cloud.seed_image("big-source")
    request, answer = request_and_answer(cloud, "Create", properties(source), timeout=7200)
    assert answer["Status"] == "SUCCESS", answer
    later = continuations(cloud)
    assert len(later) >= 3
    assert {i.api for i in later} == {fc_api}  # invoked through the FC 3.0 or the FC 2.0 API
    assert all(i.invocation_type == "Async" for i in later)
    assert all(len(i.payload) < 128 * 1024 for i in later)
    assert not any(i.timed_out for i in cloud.fc.invocations)  # no invocation outlived its timeout
    assert max(cloud.fc.async_delays) > 60  # the wait happened between invocations, not inside them
    assert json.loads(later[0].payload)["CopyImageContinuation"]["Request"]["RequestId"] == request["RequestId"]
    # Most of the copy passed between invocations, in FC's delay, not inside a running (billed) one. The
    # billed share itself is a benchmark figure (bench/long_copy.py), not a timed test.
    assert sum(cloud.fc.async_delays) >= 0.8 * 1800
    assert len(copies_in(cloud)) == 1
    assert "copyimage:waiter" not in copies_in(cloud)[0].tags
    assert cloud.ros.violations == []


def test_without_self_invocation_a_long_copy_fails_before_the_function_timeout(make_cloud):
    cloud = make_cloud(copy_seconds=3600, function_timeout=120, environment={"COPYIMAGE_DEFER": "false"})
    source = cloud.seed_image("big-source")
    _request, answer = request_and_answer(cloud, "Create", properties(source), timeout=7200)
    assert answer["Status"] == "FAILED"
    assert "still Creating" in answer["Reason"] and "invoke itself" in answer["Reason"]
    (run,) = cloud.fc.invocations
    # It waited while it could (until 120 s less room for one more ECS call that could hang through all its
    # retries, 43.5 s, and for the answer, 15 s), and answered before the timeout.
    assert 45 < run.billed_seconds < 120 and not run.timed_out
    assert copies_in(cloud) == []  # the copy was cancelled
    assert cloud.ecs.calls_to("CancelCopyImage")


def test_duplicated_continuations_collapse_into_one_chain(make_cloud):
    cloud = make_cloud(time_scale=400, copy_seconds=1800)
    source = cloud.seed_image("big-source")
    cloud.fc.duplicate_next_async(3)
    request = start_create(cloud, source)
    answer = cloud.ros.wait_answer(request["RequestId"], timeout=3600)
    assert cloud.fc.wait_idle(20)
    assert answer["Status"] == "SUCCESS"
    results = [i.result for i in continuations(cloud)]
    assert {"Status": "SUPERSEDED"} in results  # a duplicate saw another chain owning the wait, and stopped
    assert len([a for a in cloud.ros.answers if a.accepted]) == 1
    assert cloud.ros.violations == []  # no contradictory answer
    assert len(copies_in(cloud)) == 1
    assert cloud.fc.pending_async() == 0  # no chain left running


@pytest.mark.parametrize("when", ["before", "after"])
def test_failed_continuation_is_retried_by_fc(make_cloud, when):
    cloud = make_cloud(time_scale=400, copy_seconds=1800)
    source = cloud.seed_image("big-source")
    request = start_create(cloud, source)
    cloud.fc.fail_next(1, when=when)  # the first continuation's instance dies
    answer = cloud.ros.wait_answer(request["RequestId"], timeout=3600)
    assert cloud.fc.wait_idle(20)
    assert answer["Status"] == "SUCCESS"
    runs = continuations(cloud)
    assert runs[0].error is not None
    assert any(i.attempt == 2 and i.request_id == runs[0].request_id for i in runs)  # FC retried the event
    assert len(copies_in(cloud)) == 1
    assert len([a for a in cloud.ros.answers if a.accepted]) == 1
    assert cloud.ros.violations == []
    assert cloud.fc.pending_async() == 0


def test_overall_deadline_cancels_the_copy_and_says_how_far_it_got(make_cloud):
    cloud = make_cloud(time_scale=400, copy_seconds=7200, environment={"COPYIMAGE_MAX_WAIT_SECONDS": "900"})
    source = cloud.seed_image("big-source")
    _request, answer = request_and_answer(cloud, "Create", properties(source), timeout=7200)
    assert answer["Status"] == "FAILED"
    waited = int(re.search(r"gave up after waiting (\d+) s \(the limit is 900 s\)", answer["Reason"]).group(1))
    assert 900 <= waited < 1200
    assert "was still Creating at 1" in answer["Reason"]  # about 900/7200 = 12%
    assert cloud.ecs.calls_to("CancelCopyImage")
    assert copies_in(cloud) == []


def test_delete_during_the_wait_cancels_the_copy_and_the_chain_stops(make_cloud):
    cloud = make_cloud(time_scale=400, copy_seconds=3600)
    source = cloud.seed_image("big-source")
    create = start_create(cloud, source)
    cloud.ros.expire(create["RequestId"])  # ROS gave up on the Create and rolls back
    _, deleted = request_and_answer(
        cloud, "Delete", properties(source), settle=False, stack_id=create["StackId"], physical_id=None
    )
    assert deleted["Status"] == "SUCCESS"
    assert cloud.ecs.calls_to("CancelCopyImage")
    assert cloud.fc.wait_idle(20)  # the orphaned continuation noticed and scheduled nothing more
    assert copies_in(cloud) == []
    assert cloud.fc.pending_async() == 0


@pytest.mark.parametrize("physical_id_after_timeout", [False, True])
def test_ros_timing_out_leaves_nothing_in_ecs(make_cloud, physical_id_after_timeout):
    cloud = make_cloud(time_scale=400, copy_seconds=3600, send_physical_id_after_timeout=physical_id_after_timeout)
    source = cloud.seed_image("big-source")
    stack = cloud.ros.create_stack(
        load_template(cloud_template()),
        {"ImageId": source.image_id, "DestinationRegionId": DESTINATION, "Timeout": 600},
    )
    assert stack.status == "ROLLBACK_COMPLETE", (stack.status, stack.reason)
    assert "timed out" in stack.reason
    assert cloud.fc.wait_idle(20)
    assert copies_in(cloud) == []
    assert cloud.fc.pending_async() == 0


def test_refused_success_after_ros_stopped_waiting_removes_the_copy(make_cloud):
    cloud = make_cloud(time_scale=400, copy_seconds=1200)
    source = cloud.seed_image("big-source")
    create = start_create(cloud, source)
    cloud.ros.expire(create["RequestId"])  # no rollback Delete comes (say, rollback is disabled)
    assert cloud.fc.wait_idle(30)
    refused = [a for a in cloud.ros.answers if not a.accepted]
    assert refused and refused[0].json["Status"] == "SUCCESS"
    assert copies_in(cloud) == []  # the continuation removed the copy nobody will ever own


def test_a_copy_queued_behind_five_others_is_waited_for(make_cloud):
    cloud = make_cloud(time_scale=400, copy_seconds=600)
    source = cloud.seed_image("big-source")
    blockers = [start_create(cloud, source) for _ in range(5)]  # five copies in progress from cn-hangzhou
    request = start_create(cloud, source)
    (queued,) = [image for image in copies_in(cloud) if image.status == "Waiting"]  # ECS queues the sixth
    answer = cloud.ros.wait_answer(request["RequestId"], timeout=7200)
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == queued.image_id
    assert all(cloud.ros.wait_answer(b["RequestId"], timeout=7200)["Status"] == "SUCCESS" for b in blockers)


def test_a_full_image_quota_fails_at_once_with_what_to_do(make_cloud):
    cloud = make_cloud()
    source = cloud.seed_image("src")
    cloud.ecs.image_quota = 0
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert "QuotaExceed.Image" in answer["Reason"] and "quota in cn-shanghai is used up" in answer["Reason"]
    assert continuations(cloud) == []  # not worth waiting for: it does not free itself


def test_throttled_copyimage_is_retried_later_instead_of_failing(make_cloud):
    cloud = make_cloud(time_scale=400)
    source = cloud.seed_image("src")
    cloud.ecs.faults.add("CopyImage", "throttle", count=6)  # more than one invocation's retries
    _request, answer = request_and_answer(cloud, "Create", properties(source), timeout=7200)
    assert answer["Status"] == "SUCCESS"
    assert [c.error_code for c in cloud.ecs.calls_to("CopyImage")].count("Throttling.User") == 6
    assert len(continuations(cloud)) >= 1
    assert len(copies_in(cloud)) == 1


def cloud_template():
    from emulator.cloud import TEMPLATE

    return TEMPLATE


def test_failure_to_invoke_itself_fails_the_create_and_cancels_the_copy(make_cloud):
    cloud = make_cloud(copy_seconds=3600, environment={"COPYIMAGE_FC_ENDPOINT": "http://127.0.0.1:9"})
    source = cloud.seed_image("big-source")
    _, answer = request_and_answer(cloud, "Create", properties(source), timeout=600)
    assert answer["Status"] == "FAILED"
    assert "FC InvokeFunction" in answer["Reason"]
    assert copies_in(cloud) == []
    assert cloud.ecs.calls_to("CancelCopyImage")


@pytest.mark.parametrize(("fault", "count"), [("throttle", 4), ("malformed", 1), ("malformed", 2)])
def test_a_late_continuation_never_removes_a_copy_ros_owns(cloud, source, fault, count):
    _request, answer = request_and_answer(cloud, "Create", properties(source), timeout=7200)
    assert answer["Status"] == "SUCCESS"
    late = continuations(cloud)[0].payload  # FC delivers it once more, after the Create was answered
    cloud.ecs.faults.add("DescribeImages", fault, count=count)  # and its first look goes wrong
    cloud.fc.invoke(late, invocation_type="Sync")
    assert cloud.fc.wait_idle(20)
    assert cloud.ecs.image(answer["PhysicalResourceId"]).status == "Available"
    assert not cloud.ecs.calls_to("DeleteImage") and not cloud.ecs.calls_to("CancelCopyImage")
    assert len([a for a in cloud.ros.answers if a.accepted]) == 1
    assert "copyimage:waiter" not in cloud.ecs.image(answer["PhysicalResourceId"]).tags  # nothing re-claimed it
