"""The virtual clock: time moves only when nothing can run now, and always in the same order."""

from __future__ import annotations

import pytest

from emulator.clock import DEFAULT_START, VirtualClock


@pytest.fixture
def clock():
    clock = VirtualClock()
    yield clock
    clock.close()


def test_time_stands_still_until_the_driver_waits(clock):
    assert clock.now() == DEFAULT_START
    clock.sleep(3600)
    assert clock.now() == DEFAULT_START + 3600


def test_actors_run_at_their_due_time_and_in_order(clock):
    seen = []

    def actor(name, pause):
        def run():
            seen.append((name, clock.now() - DEFAULT_START))
            clock.sleep(pause)
            seen.append((name + " woke", clock.now() - DEFAULT_START))
            return name

        return run

    late = clock.spawn(actor("late", 5), "late", delay=10)
    early = clock.spawn(actor("early", 30), "early", delay=1)
    clock.run_idle()
    assert seen == [("early", 1), ("late", 10), ("late woke", 15), ("early woke", 31)]
    assert (early.outcome(), late.outcome()) == ("early", "late")


def test_same_instant_runs_in_scheduling_order_without_a_seed(clock):
    order = []
    for name in "abcd":
        clock.spawn(lambda name=name: order.append(name), name, delay=5)
    clock.run_idle()
    assert order == list("abcd")


def test_a_seed_shuffles_same_instant_entries_reproducibly():
    def run(seed):
        clock = VirtualClock(interleave_seed=seed)
        order = []
        for name in "abcdefgh":
            clock.spawn(lambda name=name: order.append(name), name, delay=5)
        clock.run_idle()
        clock.close()
        return order

    assert run(1) == run(1)
    assert sorted(run(1)) == list("abcdefgh")
    assert any(run(seed) != list("abcdefgh") for seed in range(5))


def test_wait_for_a_signal_with_a_timeout(clock):
    ready = clock.signal()
    results = []

    def waiter(timeout):
        def run():
            results.append((timeout, ready.wait(timeout), clock.now() - DEFAULT_START))

        return run

    clock.spawn(waiter(10), "short")
    clock.spawn(waiter(100), "long")
    clock.spawn(ready.set, "setter", delay=50)
    clock.run_idle()
    assert sorted(results) == [(10, False, 10), (100, True, 50)]


def test_a_timed_out_wait_is_not_woken_again_by_the_signal(clock):
    ready = clock.signal()
    trace = []

    def run():
        trace.append(ready.wait(10))
        clock.sleep(100)  # the signal comes at 20: it must not cut this sleep short
        trace.append(clock.now() - DEFAULT_START)

    clock.spawn(run, "waiter")
    clock.spawn(ready.set, "setter", delay=20)
    clock.run_idle()
    assert trace == [False, 110]


def test_run_task_returns_the_outcome_and_raises_its_error(clock):
    assert clock.run_task(clock.spawn(lambda: 42, "answer")) == 42
    with pytest.raises(ValueError, match="boom"):
        clock.run_task(clock.spawn(lambda: (_ for _ in ()).throw(ValueError("boom")), "failing"))


def test_driver_condition_and_timeout(clock):
    box = []
    clock.spawn(lambda: box.append(1), "writer", delay=30)
    assert clock.run_until(lambda: bool(box), timeout=10) is False
    assert clock.now() == DEFAULT_START + 10
    assert clock.run_until(lambda: bool(box), timeout=100) is True
    assert clock.now() == DEFAULT_START + 30


def test_an_actor_cannot_drive(clock):
    task = clock.spawn(lambda: clock.run_until(lambda: True), "driver?")
    with pytest.raises(RuntimeError, match="cannot drive"):
        clock.run_task(task)


def test_call_runs_inline_inside_an_actor(clock):
    def outer():
        return clock.call(lambda: clock.in_actor(), "inner")

    assert clock.call(outer, "outer") is True
    assert clock.call(lambda: clock.in_actor(), "plain") is True
    assert clock.in_actor() is False


def test_close_unwinds_waiting_actors(clock):
    reached = []

    def sleeper():
        clock.sleep(1000)
        reached.append("after")  # never: the clock closed while it slept

    task = clock.spawn(sleeper, "sleeper")
    clock.run_until(lambda: False, timeout=1)
    clock.close()
    task.thread.join()  # the actor's thread unwinds on its own once woken
    assert task.done and task.error is None
    assert reached == []
