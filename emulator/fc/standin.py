"""The Function Compute stand-in: the backend (:mod:`emulator.fc.backend`) served over HTTP (:mod:`emulator.fc.api`).

A function is either an FC 3.0 function or lives in an FC 2.0 service (``FunctionSpec.service``); each path only
serves its own kind. The async delay must be within FC 3.0's documented (0, 3600) seconds on the FC 3.0 path, and
within FC 2.0's [0, 3600] on the FC 2.0 path.

The handler runs in this process (:mod:`emulator.fc.process`), so the stand-in sets the process environment the FC
runtime would set (``FC_*`` variables and the function's own) on ``start`` and restores ``os.environ`` and
``sys.path`` on ``stop``; ``FunctionSpec.install_clock`` points the function's own clock at the virtual one.
"""

from __future__ import annotations

import socket

from emulator.clock import VirtualClock
from emulator.credentials import CredentialStore
from emulator.fc.api import FcApi
from emulator.fc.backend import FcBackend
from emulator.fc.model import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, FunctionSpec
from emulator.http import Reply, Request, StandIn


class FcStandIn(FcBackend, StandIn):
    """An :class:`FcBackend` (the function's runs, queue, tasks and faults) that also listens on loopback."""

    def __init__(
        self,
        clock: VirtualClock,
        credentials: CredentialStore,
        function: FunctionSpec,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        port: int = 0,
        listener: socket.socket | None = None,
        deployed: bool = True,
    ) -> None:
        StandIn.__init__(self, clock, port, listener)
        FcBackend.__init__(self, clock, credentials, function, region, account_id, deployed)
        self.api = FcApi(self, credentials)

    def start(self) -> FcStandIn:
        if self.deployed:
            self.load_function()
        try:
            StandIn.start(self)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.close_queue()
        StandIn.stop(self)
        self.unload_function()

    def handle(self, request: Request) -> Reply:
        return self.api.handle(request)
