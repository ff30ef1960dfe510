"""Virtual time for the local cloud: a discrete-event scheduler that whoever waits drives.

Nothing here follows the wall clock (except in ``realtime`` mode, for ``python -m emulator serve``). Time stands
still while code runs and jumps to the next due event when nothing is left to do now: a delayed invocation, a
retry, the end of an inline wait, a ROS timeout. So an hour-long copy takes as long as the work around it, and
every run of a test sees the same order of events, however busy the machine is.

The pieces:
- **Actors** are threads the clock runs one at a time: an FC invocation, a ROS stack operation. An actor gives
  the baton back when it sleeps, waits for a :class:`Signal`, or ends. The handler's sleeps are such sleeps (the
  FC stand-in installs this clock as the function's clock).
- **The driver** is the thread that called :meth:`VirtualClock.run_until` (a test, the demo, a benchmark): it
  picks the next due entry, moves the time to it and hands the baton over, until its condition holds.
- **Delegates**: a stand-in's HTTP server thread, answering a request of the running actor, acts in that actor's
  name, so a stand-in can pause (``pause``) or offer a switch point (``checkpoint``) as if the caller did.

Entries due at the same instant run in the order they were scheduled, or in a seeded random order when the
clock has an ``interleave_seed``: with ``checkpoint`` at every stand-in request, that explores the ways
concurrent invocations can interleave, reproducibly.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: virtual time starts at a round, fixed instant


class SimulationStopped(BaseException):
    """Raised inside an actor when the clock is closed while it waits: unwinds it without running it on.

    A BaseException, so that the handler's ``except Exception`` does not swallow it.
    """


@dataclass(eq=False)
class Task:
    """An actor's outcome, once it ends."""

    name: str
    finished: Signal
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None  # the actor's thread, once it started

    def outcome(self) -> Any:
        """The actor's return value, or its exception raised again."""
        if self.error is not None:
            raise self.error
        return self.result


@dataclass(eq=False)
class _Actor:
    name: str
    wake: threading.Condition
    task: Task
    turn: int = 0  # counts the actor's suspensions: a wake-up meant for an earlier one is stale


@dataclass(order=True)
class _Entry:
    time: float
    tiebreak: float
    seq: int
    actor: _Actor = field(compare=False)
    turn: int = field(compare=False)
    start: Callable[[], Any] | None = field(compare=False, default=None)  # set: the actor's first turn
    cancelled: bool = field(compare=False, default=False)


class Signal:
    """Something an actor or the driver can wait for, with a timeout in virtual seconds."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._set = False
        self._waiters: list[tuple[_Actor, int]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._clock._set_signal(self)

    def wait(self, timeout: float | None = None) -> bool:
        return self._clock.wait(self, timeout)


_local = threading.local()


class VirtualClock:
    def __init__(self, start: float = DEFAULT_START, interleave_seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._turn_over = threading.Condition(self._lock)  # the driver waits here while an actor runs
        self._changed = threading.Condition(self._lock)  # realtime mode: the loop and outside waiters
        self._now = float(start)
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self._holder: _Actor | None = None
        self._actors: set[_Actor] = set()
        self._driver = threading.RLock()
        self._closed = False
        self._random = random.Random(interleave_seed) if interleave_seed is not None else None
        self._realtime: tuple[float, float] | None = None  # (virtual, monotonic) when realtime began
        self.interleaving = interleave_seed is not None

    def reseed(self, interleave_seed: int | None) -> None:
        """Explore another interleaving from now on (None: scheduling order)."""
        with self._lock:
            self._random = random.Random(interleave_seed) if interleave_seed is not None else None
            self.interleaving = interleave_seed is not None

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Virtual seconds since the Unix epoch."""
        with self._lock:
            return self._time()

    def _time(self) -> float:
        if self._realtime is not None:
            virtual, wall = self._realtime
            self._now = max(self._now, virtual + (time.monotonic() - wall))
        return self._now

    # ------------------------------------------------------------------ scheduling

    def spawn(self, function: Callable[[], Any], name: str, delay: float = 0.0) -> Task:
        """Run ``function`` as a new actor, ``delay`` virtual seconds from now."""
        with self._lock:
            task = Task(name, Signal(self))
            actor = _Actor(name, threading.Condition(self._lock), task)
            self._push(actor, self._time() + max(0.0, delay), start=function)
            return task

    def _push(self, actor: _Actor, at: float, start: Callable[[], Any] | None = None) -> _Entry:
        tiebreak = self._random.random() if self._random is not None else 0.0
        entry = _Entry(at, tiebreak, next(self._seq), actor, actor.turn, start)
        heapq.heappush(self._queue, entry)
        self._changed.notify_all()
        return entry

    def pending(self) -> int:
        """Entries that will still run: actors to start, and wake-ups of suspended actors."""
        with self._lock:
            return sum(1 for entry in self._queue if self._live(entry))

    def next_due(self) -> float | None:
        with self._lock:
            self._drop_stale()
            return self._queue[0].time if self._queue else None

    @staticmethod
    def _live(entry: _Entry) -> bool:
        return not entry.cancelled and (entry.start is not None or entry.turn == entry.actor.turn)

    def _drop_stale(self) -> None:
        while self._queue and not self._live(self._queue[0]):
            heapq.heappop(self._queue)

    # ------------------------------------------------------------------ who is calling

    def _acting(self) -> _Actor | None:
        """The actor the calling thread runs for: its own, or (as a delegate) the one holding the baton."""
        if getattr(_local, "clock", None) is self:
            actor: _Actor | None = _local.actor
            return actor
        return self._holder if self._realtime is None else None

    def in_actor(self) -> bool:
        with self._lock:
            return self._acting() is not None

    # ------------------------------------------------------------------ waiting

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass: an actor yields; the driver runs everything due meanwhile."""
        seconds = max(0.0, float(seconds))
        with self._lock:
            actor = self._acting()
            if actor is not None:
                self._push(actor, self._time() + seconds)
                self._yield(actor)
                return
        self.run_until(lambda: False, timeout=seconds)

    def pause(self, seconds: float) -> None:
        """A stand-in's pause on behalf of its caller (network latency); outside the simulation, none."""
        if self.in_actor():
            self.sleep(seconds)

    def checkpoint(self) -> None:
        """A point where another actor due now may run first (only while exploring interleavings, and only when
        one is due: otherwise yielding could change nothing)."""
        if not self.interleaving:
            return
        with self._lock:
            self._drop_stale()
            if not self._queue or self._queue[0].time > self._time():
                return
        self.pause(0.0)

    def signal(self) -> Signal:
        return Signal(self)

    def wait(self, signal: Signal, timeout: float | None = None) -> bool:
        """Wait until ``signal`` is set or ``timeout`` virtual seconds pass; True if it was set."""
        with self._lock:
            if signal.is_set():
                return True
            actor = self._acting()
            if actor is not None:
                signal._waiters.append((actor, actor.turn))
                if timeout is not None:
                    self._push(actor, self._time() + max(0.0, timeout))
                self._yield(actor)
                return signal.is_set()
        return self.run_until(signal.is_set, timeout=timeout)

    def _set_signal(self, signal: Signal) -> None:
        with self._lock:
            self._set_signal_locked(signal)

    def _set_signal_locked(self, signal: Signal) -> None:
        """(lock held) Set ``signal`` and wake whoever waits for it."""
        if signal._set:
            return
        signal._set = True
        at = self._time()
        for actor, turn in signal._waiters:
            if actor.turn == turn:
                self._push(actor, at)
        signal._waiters.clear()
        self._changed.notify_all()

    def _yield(self, actor: _Actor) -> None:
        """(lock held) Give the baton back and wait until it comes back to ``actor``."""
        if self._holder is actor:
            self._holder = None
            self._turn_over.notify_all()
        while self._holder is not actor:
            if self._closed:
                raise SimulationStopped(actor.name)
            actor.wake.wait()
        actor.turn += 1  # every other wake-up scheduled for this suspension is stale now

    # ------------------------------------------------------------------ driving

    def run_until(self, condition: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run due entries until ``condition()`` holds (True), or ``timeout`` virtual seconds pass, or nothing is
        left to run (False)."""
        with self._lock:
            if self._acting() is not None:
                raise RuntimeError("an actor cannot drive the clock: use sleep() or wait()")
            deadline = None if timeout is None else self._time() + max(0.0, timeout)
            if self._realtime is not None:
                return self._wait_realtime(condition, deadline)
        with self._driver:
            while True:
                if condition():
                    return True
                if not self._step(deadline):
                    return condition()

    def run_task(self, task: Task, timeout: float | None = None) -> Any:
        """Wait until ``task`` ends and return its outcome (raises its exception)."""
        if not self.wait(task.finished, timeout):
            raise TimeoutError(f"{task.name} did not finish within {timeout} virtual seconds")
        return task.outcome()

    def call(self, function: Callable[[], Any], name: str) -> Any:
        """Run ``function`` as an actor and return its result; inline when already inside the simulation."""
        if self.in_actor():
            return function()
        return self.run_task(self.spawn(function, name))

    def run_idle(self, limit: float = 7 * 86400.0) -> float:
        """Run everything scheduled up to ``limit`` virtual seconds ahead; returns the time then."""
        self.run_until(lambda: False, timeout=limit)
        return self.now()

    def _step(self, deadline: float | None) -> bool:
        """Run the next entry due by ``deadline``; False when there is none (time then moves to the deadline)."""
        with self._lock:
            self._drop_stale()
            if not self._queue or (deadline is not None and self._queue[0].time > deadline):
                if deadline is not None:
                    self._now = max(self._now, deadline)
                return False
            entry = heapq.heappop(self._queue)
            self._now = max(self._now, entry.time)
            self._hand_over(entry)
        return True

    def _hand_over(self, entry: _Entry) -> None:
        """(lock held) Give the baton to the entry's actor and wait until it gives it back."""
        actor = entry.actor
        if entry.start is not None:
            self._actors.add(actor)
            thread = threading.Thread(target=self._run_actor, args=(actor, entry.start), name=actor.name, daemon=True)
            actor.task.thread = thread
            thread.start()
        self._holder = actor
        actor.wake.notify_all()
        while self._holder is not None and not self._closed:
            self._turn_over.wait()

    def _run_actor(self, actor: _Actor, function: Callable[[], Any]) -> None:
        _local.actor, _local.clock = actor, self
        with self._lock:
            while self._holder is not actor:
                if self._closed:
                    self._actors.discard(actor)
                    return
                actor.wake.wait()
        try:
            actor.task.result = function()
        except SimulationStopped:
            pass
        except BaseException as error:  # kept for whoever joins the task
            actor.task.error = error
        finally:
            with self._lock:
                actor.task.done = True
                self._actors.discard(actor)
                # Set before the baton goes back: a driver waiting for this task must find it finished then.
                self._set_signal_locked(actor.task.finished)
                if self._holder is actor:
                    self._holder = None
                    self._turn_over.notify_all()

    # ------------------------------------------------------------------ realtime mode (serve)

    def start_realtime(self) -> None:
        """From now on, entries run when the wall clock reaches them (an interactive local cloud)."""
        with self._lock:
            self._realtime = (self._now, time.monotonic())
        threading.Thread(target=self._realtime_loop, name="VirtualClock-realtime", daemon=True).start()

    def _realtime_loop(self) -> None:
        with self._lock:
            while not self._closed:
                self._drop_stale()
                now = self._time()
                if not self._queue or self._queue[0].time > now:
                    self._changed.wait(None if not self._queue else self._queue[0].time - now)
                    continue
                self._hand_over(heapq.heappop(self._queue))

    def _wait_realtime(self, condition: Callable[[], bool], deadline: float | None) -> bool:
        """(lock held) An outside thread waits, in wall time, for the realtime loop to make ``condition`` true."""
        while True:
            self._lock.release()
            try:
                if condition():
                    return True
            finally:
                self._lock.acquire()
            left = None if deadline is None else deadline - self._time()
            if left is not None and left <= 0:
                return False
            self._changed.wait(0.05 if left is None else min(left, 0.05))

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Stop: actors still waiting unwind with SimulationStopped; nothing scheduled runs any more."""
        with self._lock:
            self._closed = True
            self._queue.clear()
            for actor in self._actors:
                actor.wake.notify_all()
            self._turn_over.notify_all()
            self._changed.notify_all()
