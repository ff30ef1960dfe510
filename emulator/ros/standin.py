"""The ROS stand-in: runs a template's custom resources through the FC stand-in, the way a stack would, and answers
the ROS 2019-09-10 API (:mod:`emulator.ros.api`) on ``POST /`` of the same endpoint.

For every request it builds the complete custom resource request ROS documents, hosts one unguessable ResponseURL,
checks each answer against ROS's documented rules, waits at most the resource's ``Timeout``, and rolls a failed
create back unless asked not to.

Not documented, hence switches: ``invocation_type`` (whether ROS invokes the function synchronously or
asynchronously), ``accept_late_answers`` (whether a second answer, or one after the Timeout, is refused or taken
with 200 and ignored), ``send_physical_id_after_timeout`` (what PhysicalResourceId a Delete carries after a timed-out
Create), ``resource_type_shown`` and ``resource_status_shown`` (what GetStackResource shows for a custom resource
while its provider runs: its declared ``Custom::`` type or ``ALIYUN::ROS::CustomResource``; its operation's
``_IN_PROGRESS`` status or the one before). Tests also set ``public_url_reachable`` and the answer faults
(``fail_next_answers``, ``fail_answers_until``).

Stack and resource statuses are ROS's (CREATE_IN_PROGRESS … CREATE_ROLLBACK_COMPLETE, UPDATE_*, DELETE_*). A failed
update ends UPDATE_FAILED: the ROLLBACK_* of a failed update with rollback enabled is not emulated. Events of the
stack itself carry the stack name as LogicalResourceId, ``ALIYUN::ROS::Stack`` as ResourceType and the stack ID as
PhysicalResourceId (an assumption: ROS's documentation shows no stack-level event).

Threads: the operations change a stack's status, resources and events under :attr:`RosStandIn.lock`; readers that
need a consistent view (the API) hold it while they copy what they need.
"""

from __future__ import annotations

import secrets

from emulator.clock import VirtualClock
from emulator.credentials import CredentialStore
from emulator.http import Reply, Request, StandIn, json_reply
from emulator.ros.answers import FunctionService
from emulator.ros.api import RosApi
from emulator.ros.models import RESOURCE_STATUSES_SHOWN, RESOURCE_TYPES_SHOWN
from emulator.ros.native import NativeResources
from emulator.ros.stacks import StackEngine


class RosStandIn(StackEngine, StandIn):
    def __init__(
        self,
        clock: VirtualClock,
        fc: FunctionService,
        region: str = "cn-hangzhou",
        invocation_type: str = "Async",
        public_url_reachable: bool = True,
        send_physical_id_after_timeout: bool = False,
        accept_late_answers: bool = False,
        port: int = 0,
        credentials: CredentialStore | None = None,
        resource_type_shown: str = "declared",
        resource_status_shown: str = "in_progress",
        native: NativeResources | None = None,
    ) -> None:
        StandIn.__init__(self, clock, port)
        StackEngine.__init__(self, native)
        self.fc = fc
        self.region = region
        self.invocation_type = invocation_type
        self.public_url_reachable = public_url_reachable
        self.send_physical_id_after_timeout = send_physical_id_after_timeout
        self.accept_late_answers = accept_late_answers
        if resource_type_shown not in RESOURCE_TYPES_SHOWN or resource_status_shown not in RESOURCE_STATUSES_SHOWN:
            raise ValueError(
                f"resource_type_shown: {RESOURCE_TYPES_SHOWN}; resource_status_shown: {RESOURCE_STATUSES_SHOWN}"
            )
        self.resource_type_shown = resource_type_shown
        self.resource_status_shown = resource_status_shown
        self.caller_id = str(10**15 + secrets.randbelow(9 * 10**15))
        # The ROS 2019-09-10 API, on POST / of this endpoint, checking signatures against ``credentials``.
        self.api = RosApi(self, credentials if credentials is not None else CredentialStore())

    def response_base(self) -> str:
        return self.url

    def reset(self) -> None:
        """Forget requests, answers and stacks (between the scenarios of one test)."""
        with self._lock:
            self.answers.clear()
            self.violations.clear()
            self.requests.clear()
            self.stacks.clear()
            self._pending.clear()
            self._answer_faults.clear()
            self._answers_down_until = None
        self.accept_late_answers = False
        self.invocation_type = "Async"
        self.api.reset()

    def handle(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if len(parts) == 5 and parts[0] in ("public", "intranet") and parts[1] == "stacks" and parts[3] == "requests":
            return self._take_answer(request, parts[0], parts[4])
        if request.method == "POST" and parts == [""]:
            return self.api.handle(request)
        return json_reply(404, {"Code": "NotFound", "Message": "no such response URL"})
