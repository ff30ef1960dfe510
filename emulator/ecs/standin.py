"""The ECS stand-in: the backend served over HTTP through the shared RPC envelope, with fault injection.

Each request is verified (``ACS3-HMAC-SHA256``) before anything else; then injected faults apply
(:mod:`emulator.ecs.faults`); then the action's handler (:mod:`emulator.ecs.responses`) runs under the backend's
lock. Every region is served on the one endpoint; the region comes from ``RegionId``. A region the backend does not
serve fails the way an unresolvable ``ecs.<region>.aliyuncs.com`` would: the connection closes without an answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from emulator.clock import VirtualClock
from emulator.credentials import CredentialStore
from emulator.ecs.backend import EcsBackend
from emulator.ecs.faults import FaultPlan
from emulator.ecs.models import API_VERSION, DEFAULT_REGIONS, HOST_ID
from emulator.ecs.responses import EcsParams, EcsResponses
from emulator.http import Reply, Request, StandIn
from emulator.rpc import Call, RpcEnvelope


class EcsStandIn(EcsBackend, StandIn):
    """An :class:`EcsBackend` (its state, switches and seeding) that also listens on loopback."""

    def __init__(
        self,
        clock: VirtualClock,
        credentials: CredentialStore,
        regions: Iterable[str] = DEFAULT_REGIONS,
        copy_seconds: float = 60.0,
        port: int = 0,
    ) -> None:
        EcsBackend.__init__(self, clock, regions, copy_seconds)
        StandIn.__init__(self, clock, port)
        self.credentials = credentials
        self.faults = FaultPlan()
        self.rpc: RpcEnvelope[EcsParams] = RpcEnvelope(
            clock,
            credentials,
            version=API_VERSION,
            host_id=HOST_ID,
            actions=EcsResponses(self).actions(),
            params=EcsParams,
            served=self.serves,
            before_action=lambda action: self.faults.inject(action, self.clock),
            lock=self.lock,
        )

    @property
    def calls(self) -> list[Call]:
        """Every request, in arrival order."""
        return self.rpc.calls

    def calls_to(self, action: str) -> list[Call]:
        return self.rpc.calls_to(action)

    def reset_calls(self) -> None:
        self.rpc.reset_calls()

    def reset(self) -> None:
        """Back to an empty account with the documented behaviour, no faults and no calls."""
        self.rpc.reset_calls()
        self.faults.clear()
        EcsBackend.reset(self)

    def handle(self, request: Request) -> Reply:
        return self.rpc.handle(request)
