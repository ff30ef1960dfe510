"""Waiting as a pure decision: the schedule, the budget, the deadline and ownership, with plain numbers."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from copyimage.config import Settings
from copyimage.errors import InvalidRequest
from copyimage.waiting import (
    MAX_ATTEMPTS,
    MAX_DELAY,
    MAX_RETRY_SECONDS,
    PRECISION_SECONDS,
    SAMPLES_KEPT,
    SETTLE_SECONDS,
    UNSEEN_LOOK_DELAYS,
    Budget,
    Finish,
    HandOver,
    LookAgain,
    Seen,
    Stop,
    Wait,
    answered_mark,
    chain_mark,
    decide,
    next_look,
    parse_mark,
    task_id,
)

from emulator.progress import CopyPlan

T0 = 1_000_000.0
LIMIT = 43_200.0
OWNER = "w-first"  # the chain's id
FIRST = chain_mark(OWNER, 0)  # the mark its first invocation writes
NO_INLINE = Budget(inline_until=0.0)  # every wait is handed over
ROOMY = Budget(inline_until=math.inf)  # every wait happens inline


def create_wait(**changes) -> Wait:
    wait = Wait.begin(T0, LIMIT, owner=OWNER)
    return replace(wait, started_at=T0, state={"image_id": "m-1"}, **changes)


def pending(percent: int | None = 10, mark: str | None = FIRST) -> Seen:
    return Seen("pending", mark, percent=percent, detail="Creating")


# --- the schedule -------------------------------------------------------------------------------------------


def test_at_zero_percent_the_wait_grows_with_the_age():
    assert next_look((), T0, T0) == 2.0  # the first look comes within seconds
    assert next_look(((T0 + 2, 0),), T0, T0 + 2) == 4.0
    assert next_look(((T0 + 600, 0),), T0, T0 + 600) == 1200.0  # queued: no need to look often


def simulate(plan: CopyPlan, precision: float = PRECISION_SECONDS) -> tuple[int, float]:
    """Looks, and how late the end is noticed, for one copy moving as ``plan`` says (whole percents)."""
    t, samples, looks = 0.0, (), 0
    while True:
        looks += 1
        if t >= plan.duration:
            return looks, t - plan.duration
        samples = (*samples, (t, min(99, math.floor(plan.percent(t)))))[-SAMPLES_KEPT:]
        t += min(MAX_DELAY, max(1, math.ceil(next_look(samples, 0.0, t, precision))))  # as _fc_delay rounds


@pytest.mark.parametrize("duration", [300.0, 3600.0, 14_400.0, 43_200.0])
def test_a_steady_copy_is_noticed_within_seconds_with_few_looks(duration):
    looks, late = simulate(CopyPlan.steady(duration))
    assert looks <= 25 + duration / MAX_DELAY  # FC delays stop at an hour: a 12-hour copy needs 12 looks for that
    assert 0 <= late <= PRECISION_SECONDS


def test_the_estimators_precision_is_a_setting_that_trades_looks_for_detection():
    assert Settings.from_env({}).precision_seconds == PRECISION_SECONDS
    assert Settings.from_env({"COPYIMAGE_PRECISION_SECONDS": "3"}).precision_seconds == 3.0
    assert Settings.from_env({"COPYIMAGE_PRECISION_SECONDS": "0"}).precision_seconds == 1.0  # bounded
    fine, coarse = (simulate(CopyPlan.uneven(43_200.0, seed=3), precision) for precision in (3.0, 20.0))
    assert fine[0] > coarse[0] and 0 <= fine[1] <= 3.0 and 0 <= coarse[1] <= 20.0
    assert Budget(inline_until=0.0).precision_seconds == PRECISION_SECONDS


def test_a_queue_at_zero_percent_costs_a_few_looks_more():
    looks, late = simulate(CopyPlan(600.0, ((3000.0, 100.0),)))
    assert looks <= 25 and 0 <= late <= PRECISION_SECONDS


@pytest.mark.parametrize("minutes, most_looks", [(5, 20), (60, 30), (240, 45), (720, 60)])
def test_uneven_copies_are_noticed_within_ten_seconds_at_the_90th_percentile(minutes, most_looks):
    runs = [simulate(CopyPlan.about(minutes, seed)) for seed in range(20)]  # the copies bench/compare.py runs
    late = sorted(late for _, late in runs)
    assert late[17] <= 10.0  # the 18th of 20: the 90th percentile
    assert max(looks for looks, _ in runs) <= most_looks


def test_the_rate_comes_from_the_last_percents_only():
    # The last 5% go 50% faster than the 20% before. Over sparse samples one steady rate still fits within
    # the slack of whole percents, and predicts an end about 150 s too late; the last percents do not.
    plan = CopyPlan.uneven(43_200.0, seed=17)
    looks, late = simulate(plan)
    assert late <= PRECISION_SECONDS and looks <= 60


def test_a_copy_that_speeds_up_near_the_end_is_not_overshot():
    # 10% per 1000 s up to 90%, then the last 10% in 300 s: the far-phase look must not jump past the end.
    plan = CopyPlan(0.0, ((9000.0, 90.0), (300.0, 10.0)))
    looks, late = simulate(plan)
    assert late <= 60.0 and looks <= 30


def test_a_rate_that_changes_drops_the_old_samples():
    # 50% in the first 1000 s, then three times faster: a fit over all samples would be impossible.
    samples = ((T0 + 200, 10), (T0 + 600, 30), (T0 + 1000, 50), (T0 + 1100, 65), (T0 + 1200, 80))
    delay = next_look(samples, T0, T0 + 1200)
    assert delay < 200  # the end (~T0 + 1333) is near at the new rate: far sooner than the old rate says


def test_near_the_end_looks_split_the_window_of_the_next_percent():
    # 1% per 100 s, 97% seen at T0 + 9700 exactly: the 98% boundary falls in [9800, 9900).
    samples = tuple((T0 + 100 * p, p) for p in range(90, 98))
    delay = next_look(samples, T0, T0 + 9700)
    assert 0 < delay < 200


# --- ownership ------------------------------------------------------------------------------------------------


def test_a_look_that_owns_the_work_hands_over_and_claims_it():
    decision = decide(create_wait(), pending(10), T0 + 60, NO_INLINE)
    assert isinstance(decision, HandOver)
    assert decision.claim == chain_mark(OWNER, 1)  # the chain and the hop of the next invocation
    assert decision.wait.owner == OWNER and decision.wait.accepts == ()
    assert decision.wait.hop == 1 and decision.wait.due_at == T0 + 60 + decision.delay


def test_work_taken_away_is_started_again_by_the_next_hop_only_while_attempts_and_time_last():
    taken = Seen("restart", FIRST, detail="the copy m-1 was cancelled: the relay it read from was deleted")
    again = decide(create_wait(hop=3), taken, T0 + 600, ROOMY)
    assert isinstance(again, HandOver) and again.claim is None  # handed over even with time inline: FC dedups hops
    assert (again.wait.hop, again.wait.attempt, again.wait.state) == (4, 1, {})  # the next hop starts it anew
    assert not again.wait.found and again.wait.confirmed_at is None and not again.wait.verified  # ROS asked again
    assert isinstance(decide(create_wait(hop=3), replace(taken, mark=chain_mark(OWNER, 4)), T0, ROOMY), Stop)
    spent = decide(create_wait(attempt=MAX_ATTEMPTS - 1), taken, T0 + 600, ROOMY)
    late = decide(create_wait(), taken, T0 + LIMIT, ROOMY)
    alone = decide(create_wait(), taken, T0 + 600, Budget(inline_until=math.inf, can_defer=False))
    for decision, why in ((spent, "started 3 times"), (late, "no time"), (alone, "cannot invoke itself")):
        assert isinstance(decision, Finish) and not decision.ok and decision.discard
        assert decision.detail.startswith(taken.detail) and why in decision.detail


def test_a_mark_of_another_chain_stops_the_chain():
    decision = decide(create_wait(), pending(10, mark="w-someone-else.3"), T0 + 60, NO_INLINE)
    assert isinstance(decision, Stop) and "another invocation owns" in decision.reason


def test_a_failed_mark_leaves_a_working_chain():
    first = decide(create_wait(), pending(10), T0 + 60, NO_INLINE)
    assert isinstance(first, HandOver)
    # TagResources failed: the copy still carries the first mark when the next invocation looks, and after that.
    second = decide(first.wait, pending(20, mark=FIRST), T0 + 120, NO_INLINE)
    assert isinstance(second, HandOver)
    third = decide(second.wait, pending(30, mark=FIRST), T0 + 180, NO_INLINE)
    assert isinstance(third, HandOver)


def test_a_mark_that_lands_late_never_strands_the_chain_and_a_later_hop_stops_a_stale_run():
    wait = replace(create_wait(), hop=4)
    # hop 3's mark landed after hop 4 started (a slow TagResources), or hop 2's write landed last: still ours.
    for hop in (0, 2, 3, 4):
        assert isinstance(decide(wait, pending(20, mark=chain_mark(OWNER, hop)), T0 + 120, NO_INLINE), HandOver)
    # hop 5 was scheduled (its mark says so): this run is a stale replay of hop 4, and hop 5 lives on.
    assert isinstance(decide(wait, pending(20, mark=chain_mark(OWNER, 5)), T0 + 120, NO_INLINE), Stop)


def test_an_adopted_mark_is_accepted_until_this_chain_writes_its_own():
    wait = replace(create_wait(), accepts=("w-earlier-create.7",))
    assert isinstance(decide(wait, pending(20, mark="w-earlier-create.7"), T0 + 120, NO_INLINE), HandOver)
    assert isinstance(decide(wait, pending(20, mark="w-earlier-create.8"), T0 + 120, NO_INLINE), Stop)


def test_task_ids_name_the_chain_and_hop_within_fcs_rules():
    assert task_id(OWNER, 3) == task_id(OWNER, 3) != task_id(OWNER, 4)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,127}", task_id("w-0123456789abcdef", 3599))
    assert parse_mark(chain_mark("w-0123456789abcdef", 12)) == ("w-0123456789abcdef", 12)
    assert parse_mark(answered_mark(T0)) is None and parse_mark("w-legacy-token") is None


def test_an_answered_mark_stops_a_replay_and_repeats_the_answer_to_a_redelivered_request():
    ready = Seen("ready", answered_mark(T0), physical_id="m-1", data={"ImageId": "m-1"})
    replay = replace(create_wait(), found=True, hop=3, owner="w-3", accepts=("w-2"))
    assert isinstance(decide(replay, ready, T0 + 999, NO_INLINE), Stop)
    redelivered = decide(create_wait(), ready, T0 + 999, NO_INLINE)
    assert isinstance(redelivered, Finish) and redelivered.ok and redelivered.physical_id == "m-1"


def test_waits_without_an_owner_ignore_marks():
    delete_wait = Wait.begin(T0, 3600.0)
    decision = decide(delete_wait, Seen("pending", "w-anything.9", after=5.0), T0, NO_INLINE)
    assert isinstance(decision, HandOver) and decision.claim is None and decision.delay == 5


# --- budget, deadline, FC's bounds ------------------------------------------------------------------------------


def test_short_waits_happen_inline_and_long_ones_are_handed_over():
    budget = Budget(inline_until=T0 + 20)
    assert isinstance(decide(create_wait(), pending(0), T0 + 2, budget), LookAgain)
    assert isinstance(decide(create_wait(), pending(0), T0 + 19, budget), HandOver)


def test_without_hand_over_the_last_look_comes_at_the_end_of_the_budget_then_it_fails():
    budget = Budget(inline_until=T0 + 100, can_defer=False)
    last = decide(create_wait(), pending(5), T0 + 90, budget)
    assert isinstance(last, LookAgain) and last.delay == pytest.approx(10)
    failed = decide(create_wait(), pending(5), T0 + 100, budget)
    assert isinstance(failed, Finish) and not failed.ok and failed.discard
    assert "cannot invoke itself" in failed.detail


@pytest.mark.parametrize("age", [0.2, 5_000.0, 40_000.0])
def test_every_hand_over_delay_is_a_whole_number_within_fcs_documented_range(age):
    decision = decide(create_wait(), pending(0), T0 + age, NO_INLINE)
    assert isinstance(decision, HandOver)
    assert isinstance(decision.delay, int) and 1 <= decision.delay <= MAX_DELAY


def test_the_deadline_gives_up_and_discards():
    decision = decide(create_wait(), pending(42), T0 + LIMIT, NO_INLINE)
    assert isinstance(decision, Finish) and not decision.ok and decision.discard
    assert "gave up after waiting 43200 s" in decision.detail and "42%" in decision.detail


def test_the_last_look_comes_at_the_deadline():
    decision = decide(create_wait(), pending(1), T0 + LIMIT - 30, NO_INLINE)
    assert isinstance(decision, HandOver) and decision.delay == 30


# --- trouble -----------------------------------------------------------------------------------------------------


def test_refusals_are_tried_again_later_doubling_and_claiming_nothing():
    wait = create_wait()
    delays = []
    for _ in range(7):
        decision = decide(wait, Seen("unreachable", detail="Throttling"), T0 + 100, NO_INLINE)
        assert isinstance(decision, HandOver) and decision.claim is None
        assert decision.wait.accepts == wait.accepts and decision.wait.owner == OWNER
        delays.append(decision.delay)
        wait = decision.wait
    assert delays == [30, 60, 120, 240, 480, MAX_RETRY_SECONDS, MAX_RETRY_SECONDS]


def test_refusals_past_the_deadline_fail_with_the_code():
    decision = decide(create_wait(), Seen("unreachable", detail="Throttling"), T0 + LIMIT, NO_INLINE)
    assert isinstance(decision, Finish) and not decision.ok and "Throttling" in decision.detail


def test_failed_work_fails_the_request_and_discards_it():
    decision = decide(create_wait(), Seen("failed", FIRST, detail="ended CreateFailed"), T0, NO_INLINE)
    assert isinstance(decision, Finish) and not decision.ok and decision.discard


# --- work that is not (or no longer) listed ---------------------------------------------------------------------


def test_work_never_seen_is_looked_for_a_minute_in_two_invocations_then_left_to_whoever_saw_it():
    budget = Budget(inline_until=T0 + 20)
    wait, now, kinds = create_wait(), T0, []
    for _ in range(len(UNSEEN_LOOK_DELAYS) + 1):
        decision = decide(wait, Seen("missing"), now, budget)
        kinds.append(type(decision).__name__)
        if isinstance(decision, Stop):
            break
        assert getattr(decision, "claim", None) is None
        wait, now = decision.wait, now + decision.delay
    assert kinds == ["LookAgain", "LookAgain", "LookAgain", "HandOver", "Stop"]
    assert now - T0 == sum(UNSEEN_LOOK_DELAYS) == 60


def test_work_that_vanishes_soon_after_it_was_seen_fails_the_request_once_confirmed():
    seen_before = replace(create_wait(), found=True, hop=2, confirmed_at=T0 + 490)
    again = decide(seen_before, Seen("missing"), T0 + 501, NO_INLINE)
    assert isinstance(again, HandOver) and again.delay == 2
    failed = decide(again.wait, Seen("missing", detail="gone"), T0 + 503, NO_INLINE)
    assert isinstance(failed, Finish) and not failed.ok and not failed.discard and failed.detail == "gone"


def test_work_gone_long_after_it_was_last_seen_may_have_been_answered_so_it_stops():
    # A late replay, or a twin that could not look for a while: another chain may have answered, and the stack's
    # Delete removed the copy after waiting SETTLE_SECONDS.
    replay = replace(create_wait(), found=True, hop=2, confirmed_at=T0)
    decision = decide(replay, Seen("missing"), T0 + SETTLE_SECONDS + 1, NO_INLINE)
    assert isinstance(decision, Stop) and "may have been answered" in decision.reason


def test_a_look_at_work_in_progress_confirms_it():
    decision = decide(create_wait(), pending(10), T0 + 60, NO_INLINE)
    assert decision.wait.confirmed_at == T0 + 60 and decision.wait.found


# --- what survives between invocations -----------------------------------------------------------------------------


def test_the_wait_survives_json():
    wait = replace(create_wait(), hop=4, due_at=T0 + 9, found=True, samples=((T0, 1), (T0 + 5, 3)), retries=2)
    assert Wait.from_json(wait.to_json()) == wait


@pytest.mark.parametrize("raw", [None, [], {"deadline": 1}, {"began_at": "x", "deadline": 1}])
def test_a_malformed_wait_is_refused(raw):
    with pytest.raises(InvalidRequest, match="malformed continuation"):
        Wait.from_json(raw)
