"""When to look at a copy again, and what survives between invocations."""

from dataclasses import replace

import pytest
from copyimage.errors import InvalidRequest
from copyimage.waiting import (
    MAX_CHECK_DELAY,
    MIN_CHECK_DELAY,
    Budget,
    WaitState,
    continuation_payload,
    continuation_state,
    next_check_delay,
    retry_delay,
    wrapped_request,
)


def test_first_looks_come_within_seconds():
    assert next_check_delay(0, 0) == MIN_CHECK_DELAY
    assert next_check_delay(2, 20) < 10  # a quick copy: next look soon
    assert next_check_delay(0.05, 0) == MIN_CHECK_DELAY  # 0% right after the start says nothing yet
    assert next_check_delay(8, 0) == 8  # still 0%: double the wait


def test_delay_follows_the_estimated_time_left():
    # 50% after 600 s: about 600 s left, look again at 80% of it.
    assert next_check_delay(600, 50) == pytest.approx(0.8 * 600 * 49.5 / 50.5)
    # nearly done: never sooner than 1% of the copy's age
    assert next_check_delay(3500, 99) == pytest.approx(35.0)


def test_delay_never_exceeds_the_copy_age_nor_fcs_limit():
    assert next_check_delay(100, 1) == 100  # estimate says ~80 min, but the rate may change: look after 100 s
    assert next_check_delay(30000, 1) == MAX_CHECK_DELAY


def test_unknown_progress_doubles_the_wait():
    assert next_check_delay(300, None) == 300


def test_simulated_hour_long_copy_needs_few_looks_and_notices_the_end_quickly():
    duration, t, looks = 3600.0, 2.0, 0
    while True:
        looks += 1
        progress = min(99, int(100 * t / duration))
        if t >= duration:
            break
        t += next_check_delay(t, progress)
    assert looks <= 20
    assert t - duration <= 72  # 2% of the copy's duration


def test_retry_delay_doubles_and_is_capped():
    assert [retry_delay(n) for n in range(6)] == [30, 60, 120, 240, 480, 600]


def test_budget_without_deferral_uses_the_whole_timeout_less_the_margin():
    assert Budget.for_invocation(100.0, 60.0, 10.0, 20.0, can_defer=True).inline_until == 120.0
    assert Budget.for_invocation(100.0, 60.0, 10.0, 20.0, can_defer=False).inline_until == 150.0
    assert Budget.for_invocation(100.0, 15.0, 10.0, 20.0, can_defer=True).inline_until == 105.0


def test_continuation_round_trip():
    state = WaitState(began_at=10.0, image_id="m-1", copy_started_at=12.0, continuations=3, waiter="abc")
    request = {"RequestType": "Create", "RequestId": "r"}
    payload = continuation_payload(request, state)
    assert (wrapped_request(payload), continuation_state(payload)) == (request, state)
    assert (wrapped_request(request), continuation_state(request)) == (request, None)


@pytest.mark.parametrize(
    "wrapper",
    [{"Version": 99, "Request": {}, "State": {"began_at": 1}}, {"Version": 1, "Request": {}}, {"Version": 1}],
)
def test_malformed_continuation_is_rejected(wrapper):
    with pytest.raises(InvalidRequest):
        continuation_state({"CopyImageContinuation": wrapper})


def test_a_continuation_without_its_request_cannot_be_answered():
    with pytest.raises(InvalidRequest, match="carries no ROS request"):
        wrapped_request({"CopyImageContinuation": {"Version": 1, "State": {}}})


def test_a_chain_owns_the_wait_while_the_tag_holds_its_token_or_its_schedulers():
    first = WaitState(began_at=0.0, image_id="m-1", copy_started_at=0.0, waiter="t0")
    assert first.owns("t0")
    assert first.owns(None)  # a first invocation: the tag may not be visible yet, or the wait was answered
    assert not first.owns("t9")
    second = first.handed_over("t1")
    assert (second.waiter, second.previous_waiter, second.continuations) == ("t1", "t0", 1)
    assert second.owns("t1") and second.owns("t0")  # scheduled before its scheduler marked the copy
    assert not second.owns("t2")  # a newer chain took over
    assert not second.owns(None)  # the wait was answered
    assert replace(second, retries=3).handed_over("t2").retries == 0  # a look succeeded: the backoff resets
