"""The ECS stand-in: the image APIs of ECS 2014-05-26, RPC style, as ``alibabacloud-ecs20140526`` calls them.

Laid out as moto lays out a service: :mod:`~emulator.ecs.models` (plain state and documented limits),
:mod:`~emulator.ecs.backend` (typed methods per action, switches and seeding), :mod:`~emulator.ecs.copies` (how
copies run and queue), :mod:`~emulator.ecs.rules` (format rules), :mod:`~emulator.ecs.errors` (one class per error
code, citing its page), :mod:`~emulator.ecs.responses` (short handlers: parse, call the backend, shape the reply),
:mod:`~emulator.ecs.faults` (fault injection) and :mod:`~emulator.ecs.standin` (the backend served over HTTP through
the shared envelope of :mod:`emulator.rpc`). A new ECS behaviour is one backend method, one handler and one test;
docs/conformance.md cites every behaviour and code.
"""

from emulator.ecs.backend import EcsBackend
from emulator.ecs.errors import EcsError
from emulator.ecs.faults import FAULT_KINDS, Fault, FaultPlan
from emulator.ecs.models import DEFAULT_KMS_KEY_ID, DEFAULT_REGIONS, IMAGE_STATUSES, WORLD_REGIONS, Image, Snapshot
from emulator.ecs.standin import EcsStandIn
from emulator.progress import CopyPlan
from emulator.rpc import Call

__all__ = [
    "DEFAULT_KMS_KEY_ID",
    "DEFAULT_REGIONS",
    "FAULT_KINDS",
    "IMAGE_STATUSES",
    "WORLD_REGIONS",
    "Call",
    "CopyPlan",
    "EcsBackend",
    "EcsError",
    "EcsStandIn",
    "Fault",
    "FaultPlan",
    "Image",
    "Snapshot",
]
