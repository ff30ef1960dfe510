"""Fault injection for the ECS stand-in: errors, latency and empty replies, per action, for a number of calls.

A test adds faults (``cloud.ecs.faults.add("DescribeImages", "throttle", count=3)``); the stand-in takes them after
the signature check and before the action runs (:meth:`FaultPlan.inject`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from emulator.clock import VirtualClock
from emulator.ecs.errors import Conflict, EcsError, InternalError, OperationConflict, ServiceUnavailable, Throttling
from emulator.rpc import EmptyReply

FAULT_ERRORS: dict[str, type[EcsError]] = {
    "throttle": Throttling,
    "conflict": Conflict,
    "operation_conflict": OperationConflict,
    "server_error": InternalError,
    "unavailable": ServiceUnavailable,
}
FAULT_KINDS = (*FAULT_ERRORS, "latency", "malformed")  # malformed: 200 with a body missing every field


@dataclass
class Fault:
    action: str | None  # None: any action
    kind: str
    remaining: int | None  # None: forever
    seconds: float = 0.0


class FaultPlan:
    """Faults to inject, in the order added. Per call, at most one latency and one error fault apply."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, action: str | None, kind: str, count: int | None = 1, seconds: float = 0.0) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for ever")
        fault = Fault(action, kind, count, float(seconds))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault: Fault) -> None:
        """End a fault early (a "persistent" failure that lasts a while)."""
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, action: str) -> tuple[Fault | None, Fault | None]:
        """Consume and return the first matching latency fault and the first matching error fault."""
        latency = error = None
        with self._lock:
            for fault in list(self._faults):
                if fault.action is not None and fault.action != action:
                    continue
                if fault.kind == "latency":
                    if latency is not None:
                        continue
                    latency = fault
                elif error is None:
                    error = fault
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return latency, error

    def inject(self, action: str, clock: VirtualClock) -> None:
        """Apply the faults due for one call of ``action``: a latency, then an error or an empty reply."""
        latency, error = self.take(action)
        if latency is not None:
            clock.pause(latency.seconds)
        if error is not None and error.kind == "malformed":
            raise EmptyReply()
        if error is not None:
            raise FAULT_ERRORS[error.kind]()
