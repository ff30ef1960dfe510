"""Copies of any length: the wait moves into delayed self-invocations and survives at-least-once delivery."""

from __future__ import annotations

import json
import re

import pytest
from conftest import DESTINATION, copies_in, properties, request_and_answer
from copyimage.properties import WAITER_TAG
from copyimage.waiting import ANSWERED

from emulator.cloud import TEMPLATE
from emulator.progress import CopyPlan
from emulator.ros import load_template


def start_create(cloud, source, **extra) -> dict:
    request = cloud.ros.new_request("Create", properties(source, **extra))
    _, result = cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
    assert result == {"Status": "WAITING"}
    return request


def continuations(cloud) -> list:
    return [i for i in cloud.fc.invocations if b'"Continuation"' in i.payload]


def accepted(cloud) -> list:
    return [a for a in cloud.ros.answers if a.accepted]


@pytest.mark.parametrize("fc_api", ["fc3", "fc2"])
def test_copy_longer_than_several_invocations(make_cloud, fc_api):
    cloud = make_cloud(copy_seconds=1800, fc_api=fc_api)
    source = cloud.seed_image("big-source")
    request, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS", answer
    later = continuations(cloud)
    assert len(later) >= 3
    assert {i.api for i in later} == {fc_api}  # invoked through the FC 3.0 or the FC 2.0 API
    assert all(i.invocation_type == "Async" for i in later)
    assert all(len(i.payload) < 128 * 1024 for i in later)
    assert not any(i.timed_out for i in cloud.fc.invocations)
    # Every delay is a whole number of seconds within FC's documented range (FC 3.0: (0, 3600)).
    assert all(float(delay).is_integer() and 1 <= delay <= 3599 for delay in cloud.fc.async_delays)
    assert json.loads(later[0].payload)["Continuation"]["Request"]["RequestId"] == request["RequestId"]
    # Nearly all of the copy passed between invocations, in FC's delay, not inside a running (billed) one.
    assert sum(i.billed_seconds for i in cloud.fc.invocations) < 0.02 * 1800
    assert answer_at(cloud) - cloud.ecs.image(answer["PhysicalResourceId"]).available_at < 20
    assert len(copies_in(cloud)) == 1
    assert copies_in(cloud)[0].tags[WAITER_TAG].startswith(ANSWERED)
    assert cloud.ros.violations == []


def answer_at(cloud) -> float:
    return next(a.at for a in cloud.ros.answers if a.accepted)


def test_a_copy_longer_than_an_hour_gets_delays_below_fcs_limit(make_cloud):
    cloud = make_cloud(copy_seconds=12 * 3600)
    cloud.ecs.copy_plan = lambda: CopyPlan(queue_seconds=4 * 3600, segments=((8 * 3600, 100.0),))
    # Four hours at 0%: the growing wait would pass FC's 3600 s.
    source = cloud.seed_image("huge-source")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    assert max(cloud.fc.async_delays) == 3599
    assert all(1 <= delay <= 3599 for delay in cloud.fc.async_delays)


def test_without_self_invocation_a_long_copy_fails_before_the_function_timeout(make_cloud):
    cloud = make_cloud(copy_seconds=3600, function_timeout=120, environment={"COPYIMAGE_DEFER": "false"})
    source = cloud.seed_image("big-source")
    _request, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert "cannot invoke itself" in answer["Reason"]
    (run,) = cloud.fc.invocations
    # It waited while it could (until 120 s less room for one more ECS call that could hang through all its
    # retries, 43.5 s, and for the answer, 15 s), and answered before the timeout.
    assert run.billed_seconds == pytest.approx(120 - 43.5 - 15, abs=3) and not run.timed_out
    assert copies_in(cloud) == []  # the copy was cancelled
    assert cloud.ecs.calls_to("CancelCopyImage")


def test_duplicated_continuations_collapse_into_one_chain(make_cloud):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    cloud.fc.duplicate_next_async(3)
    request = start_create(cloud, source)
    answer = cloud.ros.wait_answer(request["RequestId"])
    assert cloud.fc.wait_idle()
    assert answer["Status"] == "SUCCESS"
    results = [i.result for i in continuations(cloud)]
    assert {"Status": "STOPPED"} in results  # a duplicate saw another chain owning the wait, and stopped
    assert len(accepted(cloud)) == 1
    assert cloud.ros.violations == []
    assert len(copies_in(cloud)) == 1
    assert cloud.fc.pending_async() == 0  # no chain left running


@pytest.mark.parametrize("when", ["before", "after"])
def test_failed_continuation_is_retried_by_fc(make_cloud, when):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    request = start_create(cloud, source)
    cloud.fc.fail_next(1, when=when)  # the first continuation's instance dies (time stands still meanwhile)
    answer = cloud.ros.wait_answer(request["RequestId"])
    assert cloud.fc.wait_idle()
    assert answer["Status"] == "SUCCESS"
    runs = continuations(cloud)
    assert runs[0].error is not None
    assert any(i.attempt == 2 and i.request_id == runs[0].request_id for i in runs)  # FC retried the event
    assert len(copies_in(cloud)) == 1
    assert len(accepted(cloud)) == 1
    assert cloud.ros.violations == []
    assert cloud.fc.pending_async() == 0


def test_overall_deadline_cancels_the_copy_and_says_how_far_it_got(make_cloud):
    cloud = make_cloud(copy_seconds=7200, environment={"COPYIMAGE_MAX_WAIT_SECONDS": "900"})
    source = cloud.seed_image("big-source")
    _request, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    waited = int(re.search(r"gave up after waiting (\d+) s \(the limit is 900 s\)", answer["Reason"]).group(1))
    assert 900 <= waited < 905  # the last look came at the deadline
    assert re.search(r"Creating at 1[0-9]%", answer["Reason"])  # about 900/7200 = 12%
    assert cloud.ecs.calls_to("CancelCopyImage")
    assert copies_in(cloud) == []


def test_delete_during_the_wait_cancels_the_copy_and_the_chain_stops(make_cloud):
    cloud = make_cloud(copy_seconds=3600)
    source = cloud.seed_image("big-source")
    create = start_create(cloud, source)
    cloud.ros.expire(create["RequestId"])  # ROS gave up on the Create and rolls back
    _, deleted = request_and_answer(
        cloud, "Delete", properties(source), settle=False, stack_id=create["StackId"], physical_id=None
    )
    assert deleted["Status"] == "SUCCESS"
    assert cloud.ecs.calls_to("CancelCopyImage")
    assert cloud.fc.wait_idle()  # the orphaned continuation noticed and scheduled nothing more
    assert copies_in(cloud) == []
    assert cloud.fc.pending_async() == 0


@pytest.mark.parametrize("physical_id_after_timeout", [False, True])
def test_ros_timing_out_leaves_nothing_in_ecs(make_cloud, physical_id_after_timeout):
    cloud = make_cloud(copy_seconds=3600, send_physical_id_after_timeout=physical_id_after_timeout)
    source = cloud.seed_image("big-source")
    stack = cloud.ros.create_stack(
        load_template(TEMPLATE),
        {"ImageId": source.image_id, "DestinationRegionId": DESTINATION, "Timeout": 600},
    )
    assert stack.status == "CREATE_ROLLBACK_COMPLETE", (stack.status, stack.reason)
    assert "timed out" in stack.reason
    assert cloud.fc.wait_idle()
    assert copies_in(cloud) == []
    assert cloud.fc.pending_async() == 0


def test_a_refused_success_leaves_the_copy_for_the_stacks_rollback(make_cloud):
    cloud = make_cloud(copy_seconds=1200)
    source = cloud.seed_image("big-source")
    create = start_create(cloud, source)
    cloud.ros.expire(create["RequestId"])  # ROS stopped waiting; its rollback Delete comes later
    assert cloud.fc.wait_idle()
    refused = [a for a in cloud.ros.answers if not a.accepted]
    assert refused and refused[0].json["Status"] == "SUCCESS"
    (copy,) = copies_in(cloud)  # never removed by the Create that made it: ROS may yet own it
    assert not copy.tags[WAITER_TAG].startswith(ANSWERED)
    _, deleted = request_and_answer(cloud, "Delete", properties(source), stack_id=create["StackId"], physical_id=None)
    assert deleted["Status"] == "SUCCESS"
    assert copies_in(cloud) == []


def test_copies_queued_behind_five_others_are_waited_for(make_cloud):
    cloud = make_cloud(copy_seconds=600)
    sources = [cloud.seed_image(f"source-{n}") for n in range(6)]
    requests = [start_create(cloud, source) for source in sources]  # six copies from cn-hangzhou at once
    (queued,) = [image for image in copies_in(cloud) if image.status == "Waiting"]  # ECS queues the sixth
    answers = [cloud.ros.wait_answer(r["RequestId"]) for r in requests]
    assert all(a["Status"] == "SUCCESS" for a in answers)
    assert answers[-1]["PhysicalResourceId"] == queued.image_id


def test_a_full_image_quota_fails_at_once_with_what_to_do(make_cloud):
    cloud = make_cloud()
    source = cloud.seed_image("src")
    cloud.ecs.image_quota = 0
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert "QuotaExceed.Image" in answer["Reason"] and "quota in cn-shanghai is used up" in answer["Reason"]
    assert continuations(cloud) == []  # not worth waiting for: it does not free itself


@pytest.mark.parametrize("fault", ["throttle", "conflict"])
def test_copyimage_refused_for_now_is_tried_again_later(make_cloud, fault):
    cloud = make_cloud()
    source = cloud.seed_image("src")
    cloud.ecs.faults.add("CopyImage", fault, count=6)  # more than one invocation's retries
    _request, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    codes = [c.error_code for c in cloud.ecs.calls_to("CopyImage")]
    assert len([code for code in codes if code]) == 6 and codes[-1] is None
    assert len(continuations(cloud)) >= 1
    assert len(copies_in(cloud)) == 1


def test_a_copy_of_the_same_source_in_progress_is_waited_for_not_failed(make_cloud):
    cloud = make_cloud(copy_seconds=900)
    source = cloud.seed_image("golden")
    first = start_create(cloud, source)
    second = cloud.ros.new_request("Create", properties(source, DestinationRegionId="cn-beijing"))
    cloud.fc.invoke(json.dumps(second).encode(), invocation_type="Async")
    answers = [cloud.ros.wait_answer(r["RequestId"]) for r in (first, second)]
    assert [a["Status"] for a in answers] == ["SUCCESS", "SUCCESS"]
    conflicts = [c for c in cloud.ecs.calls_to("CopyImage") if c.error_code == "OperationDenied.ImageCopyConflict"]
    assert conflicts  # ECS refused the concurrent copy of one source; the provider waited its turn
    assert len(copies_in(cloud, "cn-beijing")) == 1 and len(copies_in(cloud)) == 1


def test_failure_to_invoke_itself_fails_the_create_and_cancels_the_copy(make_cloud):
    cloud = make_cloud(copy_seconds=3600, environment={"COPYIMAGE_FC_ENDPOINT": "http://127.0.0.1:9"})
    source = cloud.seed_image("big-source")
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert "FC InvokeFunction" in answer["Reason"]
    assert copies_in(cloud) == []
    assert cloud.ecs.calls_to("CancelCopyImage")


@pytest.mark.parametrize(("fault", "count"), [("throttle", 4), ("malformed", 1), ("malformed", 2)])
def test_a_late_continuation_never_removes_a_copy_ros_owns(cloud, source, fault, count):
    _request, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS"
    late = continuations(cloud)[0].payload  # FC delivers it once more, after the Create was answered
    cloud.ecs.faults.add("DescribeImages", fault, count=count)  # and its first look goes wrong
    cloud.fc.invoke(late, invocation_type="Sync")
    assert cloud.fc.wait_idle()
    assert cloud.ecs.image(answer["PhysicalResourceId"]).status == "Available"
    assert not cloud.ecs.calls_to("DeleteImage") and not cloud.ecs.calls_to("CancelCopyImage")
    assert len(accepted(cloud)) == 1
    assert cloud.ecs.image(answer["PhysicalResourceId"]).tags[WAITER_TAG].startswith(ANSWERED)


def test_a_create_sent_again_with_a_new_request_id_adopts_the_copy_in_progress(make_cloud):
    cloud = make_cloud(copy_seconds=1800)
    source = cloud.seed_image("big-source")
    first = start_create(cloud, source)
    cloud.ros.expire(first["RequestId"])
    again = cloud.ros.new_request("Create", properties(source), stack_id=first["StackId"])  # new RequestId
    cloud.fc.invoke(json.dumps(again).encode(), invocation_type="Async")
    answer = cloud.ros.wait_answer(again["RequestId"])
    assert cloud.fc.wait_idle()
    assert answer["Status"] == "SUCCESS"
    (copy,) = copies_in(cloud)
    assert answer["PhysicalResourceId"] == copy.image_id
    assert len([c for c in cloud.ecs.calls_to("CopyImage") if c.error_code is None]) == 1  # no second copy
    assert cloud.ros.violations == []
