"""ROS stand-in: runs a template's custom resources through the FC stand-in, the way a stack would.

Each stack operation (create, update, delete, the rollback of a failed create) is an actor on the shared virtual
clock. Resources that do not refer to one another are created, updated and deleted in parallel, as ROS does for
independent resources (its Parallelism setting: "if 0 or empty, no limit"). For every request it builds the complete
custom resource request ROS documents, hosts one unguessable ResponseURL, checks each answer against ROS's
documented rules, waits at most the resource's ``Timeout``, and rolls a failed create back unless asked not to.

Not documented, hence switches: ``invocation_type`` (whether ROS invokes the function synchronously or
asynchronously), ``accept_late_answers`` (whether a second answer, or one after the Timeout, is refused or taken
with 200 and ignored), ``send_physical_id_after_timeout`` (what PhysicalResourceId a Delete carries after a timed-out
Create).

Stack and resource statuses are ROS's (CREATE_IN_PROGRESS … CREATE_ROLLBACK_COMPLETE, UPDATE_*, DELETE_*). A failed
update ends UPDATE_FAILED: the ROLLBACK_* of a failed update with rollback enabled is not emulated. Events of the
stack itself carry the stack name as LogicalResourceId, ``ALIYUN::ROS::Stack`` as ResourceType and the stack ID as
PhysicalResourceId (an assumption: ROS's documentation shows no stack-level event).

Threads: ``begin_*`` only validate and schedule (the operation runs as a clock actor), so the API can call them from
an HTTP server thread that is no actor. The operations change a stack's status, resources and events under
:attr:`RosStandIn.lock`; readers that need a consistent view (the API) hold it while they copy what they need.

The stand-in's HTTP side serves the ResponseURLs, and the ROS 2019-09-10 API (see :mod:`emulator.ros_api`).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml

from emulator.clock import Signal, VirtualClock
from emulator.http import Reply, Request, StandIn, json_reply

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID_BYTES = 255
CUSTOM_TYPES = ("ALIYUN::ROS::CustomResource",)
PSEUDO_REGION, PSEUDO_ACCOUNT = "ALIYUN::Region", "ALIYUN::AccountId"
DEFAULT_RESOURCE_TIMEOUT = 60.0  # seconds: the custom resource Timeout's documented default


class TemplateError(Exception):
    """The template cannot be run by this stand-in."""


class ParameterError(TemplateError):
    """The stack's parameter values do not fit the template's Parameters."""


class StackStateError(Exception):
    """The stack's status does not allow the operation (``busy``: another operation is still running)."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


SUPPORTED_FUNCTIONS = ("Ref", "Fn::Sub", "Fn::Join", "Fn::Split", "Fn::GetAtt")
UPDATABLE_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")


@dataclass
class Answer:
    """One POST received on a response URL."""

    request_id: str
    url_kind: str  # public | intranet
    headers: dict[str, str]
    body: bytes
    accepted: bool  # ROS took it as the request's answer
    problems: list[str]
    at: float = 0.0  # virtual time it arrived
    http_status: int = 200

    @property
    def json(self) -> dict[str, Any]:
        parsed = _json_object(self.body)
        return parsed if parsed is not None else {}


@dataclass
class Pending:
    """A request sent to the provider and waiting for its answer."""

    request: dict[str, Any]
    token: str
    done: Signal
    sent_at: float = 0.0  # virtual time the request was made
    answer: dict[str, Any] | None = None
    closed: bool = False  # answered, or timed out: the URL refuses from now on


@dataclass
class Event:
    """One line of a stack's history (ListStackEvents)."""

    event_id: str
    at: float
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""
    physical_id: str = ""


@dataclass
class ResourceState:
    logical_id: str
    type: str
    properties: dict[str, Any]
    physical_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    status: str = "INIT_COMPLETE"
    reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass
class Stack:
    id: str
    name: str
    template: dict[str, Any]
    parameters: dict[str, Any]
    status: str = "CREATE_IN_PROGRESS"
    reason: str = ""
    resources: dict[str, ResourceState] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    timeout_minutes: float = 60.0
    disable_rollback: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    operation: Any = None  # the running operation's Task
    region: str = ""

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")


def load_template(path: str | Path) -> dict[str, Any]:
    return parse_template(Path(path).read_text(encoding="utf-8"), str(path))


def parse_template(text: str, where: str = "the template") -> dict[str, Any]:
    """A template from JSON or YAML text (JSON first: not every JSON text is YAML 1.1)."""
    template: Any = None
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            template = json.loads(text)
    if template is None:
        try:
            template = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe
        except yaml.YAMLError as error:
            raise TemplateError(f"{where} is not YAML or JSON: {error}") from None
    if not isinstance(template, dict) or "Resources" not in template:
        raise TemplateError(f"{where} is not a ROS template (no Resources)")
    return template


class RosStandIn(StandIn):
    def __init__(
        self,
        clock: VirtualClock,
        fc: Any,
        region: str = "cn-hangzhou",
        invocation_type: str = "Async",
        public_url_reachable: bool = True,
        send_physical_id_after_timeout: bool = False,
        accept_late_answers: bool = False,
        port: int = 0,
    ) -> None:
        super().__init__(clock, port)
        self.fc = fc
        self.region = region
        self.invocation_type = invocation_type
        self.public_url_reachable = public_url_reachable
        self.send_physical_id_after_timeout = send_physical_id_after_timeout
        self.accept_late_answers = accept_late_answers
        self.answers: list[Answer] = []
        self.violations: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.stacks: dict[str, Stack] = {}
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._closed_port: int | None = None
        self._answer_faults: list[int] = []  # HTTP statuses to answer the next POSTs with
        self._answers_down_until: tuple[float, int] | None = None  # (virtual time, status): an outage
        self.caller_id = str(10**15 + secrets.randbelow(9 * 10**15))
        self.api: Any = None  # the ROS API (emulator.ros_api), set by the local cloud

    # -- stack operations, for Python callers (tests, the demo): each drives the clock until it is done ----------

    def create_stack(
        self,
        template: dict[str, Any],
        parameters: Mapping[str, object],
        name: str = "demo-stack",
        timeout_minutes: float = 60.0,
        disable_rollback: bool = False,
    ) -> Stack:
        stack = self.begin_create(template, parameters, name, timeout_minutes, disable_rollback)
        self.clock.run_task(stack.operation)
        return stack

    def update_stack(self, stack: Stack, parameters: Mapping[str, object]) -> Stack:
        self.begin_update(stack, parameters)
        self.clock.run_task(stack.operation)
        return stack

    def delete_stack(self, stack: Stack) -> Stack:
        self.begin_delete(stack)
        self.clock.run_task(stack.operation)
        return stack

    # -- stack operations, started (the ROS API returns at once; the operation runs on) ----------------------

    @property
    def lock(self) -> threading.Lock:
        """Held while a stack changes; hold it (briefly, never across a wait) to read a stack consistently."""
        return self._lock

    def begin_create(
        self,
        template: dict[str, Any],
        parameters: Mapping[str, object],
        name: str,
        timeout_minutes: float = 60.0,
        disable_rollback: bool = False,
        tags: Mapping[str, str] | None = None,
        region: str | None = None,
    ) -> Stack:
        """Register the stack CREATE_IN_PROGRESS and schedule its creation as an actor; returns at once.

        Raises :class:`TemplateError` (:class:`ParameterError` for the parameter values) before registering anything.
        """
        now = self.clock.now()
        stack = Stack(
            id=str(uuid.uuid4()),
            name=name,
            template=template,
            parameters=dict(parameters),
            timeout_minutes=timeout_minutes,
            disable_rollback=disable_rollback,
            tags=dict(tags or {}),
            created_at=now,
            updated_at=now,
            region=region or self.region,
        )
        values = self._parameter_values(template, parameters, stack)
        self._check_template(template, values)
        with self._lock:
            for logical_id, spec in self._custom_resources(template):
                resource = ResourceState(logical_id, spec["Type"], {}, created_at=now, updated_at=now)
                stack.resources[logical_id] = resource
            self.stacks[stack.id] = stack
            self._set_status_locked(stack, "CREATE_IN_PROGRESS")
        stack.operation = self.clock.spawn(lambda: self._create(stack, values), f"ros-create-{name}")
        return stack

    def begin_update(
        self,
        stack: Stack,
        parameters: Mapping[str, object],
        template: dict[str, Any] | None = None,
        use_previous_parameters: bool = True,
    ) -> None:
        """Schedule an update (to ``template``, or the stack's own) and return at once.

        With ``use_previous_parameters``, a parameter not given keeps the stack's value; otherwise it takes the
        template's Default (UpdateStack's UsePreviousParameters). Resources new in the template are created,
        resources gone from it deleted after the others are updated. Raises :class:`StackStateError` when the
        stack's status allows no update, :class:`TemplateError` for a template or values it cannot run.
        """
        self._check_updatable(stack)
        template = stack.template if template is None else template
        declared = template.get("Parameters") or {}
        given: dict[str, Any] = {}
        if use_previous_parameters:
            given = {key: value for key, value in stack.parameters.items() if key in declared}
        given.update(parameters)
        values = self._parameter_values(template, given, stack)
        self._check_template(template, values)
        resources = template["Resources"]
        for logical_id, spec in resources.items():
            current = stack.resources.get(logical_id)
            if current is not None and current.type != spec["Type"]:
                raise TemplateError(f"{logical_id}: changing a resource's Type is not emulated")
        removed = set(stack.resources) - set(resources)
        removal = [[name for name in level if name in removed] for level in reversed(self._levels(stack))]
        now = self.clock.now()
        with self._lock:
            self._check_updatable(stack)  # again, atomically with the change: another caller may have begun
            stack.template, stack.parameters = template, given
            added = set()
            for logical_id, spec in resources.items():
                if logical_id not in stack.resources or stack.resources[logical_id].status == "INIT_COMPLETE":
                    stack.resources[logical_id] = ResourceState(
                        logical_id, spec["Type"], {}, created_at=now, updated_at=now
                    )
                    added.add(logical_id)
            self._set_status_locked(stack, "UPDATE_IN_PROGRESS")
        stack.operation = self.clock.spawn(
            lambda: self._update(stack, values, added, [level for level in removal if level]),
            f"ros-update-{stack.name}",
        )

    def begin_delete(self, stack: Stack) -> None:
        """Schedule the deletion and return at once; raises :class:`StackStateError` while an operation runs."""
        with self._lock:
            if stack.in_progress:
                raise StackStateError(f"Stack {stack.name} is {stack.status}", busy=True)
            if stack.status == "DELETE_COMPLETE":
                raise StackStateError(f"Stack {stack.name} is already deleted")
            self._set_status_locked(stack, "DELETE_IN_PROGRESS")
        stack.operation = self.clock.spawn(lambda: self._delete(stack), f"ros-delete-{stack.name}")

    def _check_updatable(self, stack: Stack) -> None:
        if stack.in_progress:
            raise StackStateError(f"Stack {stack.name} is {stack.status}", busy=True)
        if stack.status not in UPDATABLE_STATUSES:
            raise StackStateError(f"Stack {stack.name} is {stack.status}, which allows no update")

    def _check_template(self, template: dict[str, Any], values: Mapping[str, Any]) -> None:
        """Refuse, before anything runs, a template this stand-in cannot run to the end."""
        resources = template.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise TemplateError("Resources is not a non-empty mapping")
        self._custom_resources(template)
        _levels_of(resources)
        names = set(resources)
        for logical_id, spec in resources.items():
            _check_fragment(spec.get("Properties") or {}, values, names, f"Resources.{logical_id}")
        outputs = template.get("Outputs") or {}
        if not isinstance(outputs, dict):
            raise TemplateError("Outputs is not a mapping")
        for name, spec in outputs.items():
            if not isinstance(spec, dict) or "Value" not in spec:
                raise TemplateError(f"Outputs.{name} has no Value")
            _check_fragment(spec["Value"], values, names, f"Outputs.{name}")

    def _create(self, stack: Stack, values: dict[str, Any]) -> None:
        deadline = self.clock.now() + stack.timeout_minutes * 60
        for level in self._levels(stack):
            failures = self._in_parallel(
                [(r, lambda r=r: self._create_resource(stack, r, values, deadline)) for r in level]
            )
            if failures:
                reason = "; ".join(failures)
                if stack.disable_rollback:
                    self._set_status(stack, "CREATE_FAILED", reason)
                else:
                    self._set_status(stack, "CREATE_ROLLBACK_IN_PROGRESS", reason)
                    failed = self._delete_resources(stack)
                    if failed:
                        reason += "; rollback: " + "; ".join(failed)
                    self._set_status(stack, "CREATE_ROLLBACK_FAILED" if failed else "CREATE_ROLLBACK_COMPLETE", reason)
                return
        outputs = self._outputs(stack, values)
        with self._lock:
            stack.outputs = outputs
        self._set_status(stack, "CREATE_COMPLETE")

    def _create_resource(
        self, stack: Stack, logical_id: str, values: dict[str, Any], deadline: float | None
    ) -> str | None:
        resource = stack.resources[logical_id]
        spec = (stack.template.get("Resources") or {})[logical_id]
        try:
            properties = self._resolve(spec.get("Properties") or {}, values, stack)
        except TemplateError as error:
            self._resource_event(stack, resource, "CREATE_FAILED", str(error))
            return f"{logical_id}: {error}"
        now = self.clock.now()
        with self._lock:
            resource.properties, resource.created_at = properties, now
        self._resource_event(stack, resource, "CREATE_IN_PROGRESS")
        answer = self._send(stack, resource, "Create", deadline=deadline)
        if answer is not None:
            resource.physical_id = answer.get("PhysicalResourceId")
        if answer is None or answer.get("Status") != "SUCCESS":
            reason = (answer or {}).get("Reason") or "timed out waiting for the provider"
            self._resource_event(stack, resource, "CREATE_FAILED", reason)
            return f"{logical_id}: {reason}"
        resource.data = answer.get("Data") or {}
        self._resource_event(stack, resource, "CREATE_COMPLETE")
        return None

    def _update(self, stack: Stack, values: dict[str, Any], added: set[str], removal: list[list[str]]) -> None:
        for level in self._levels(stack):
            work = [
                (r, lambda r=r: self._create_resource(stack, r, values, None))
                if r in added
                else (r, lambda r=r: self._update_resource(stack, r, values))
                for r in level
            ]
            failures = self._in_parallel(work)
            if failures:
                self._set_status(stack, "UPDATE_FAILED", "; ".join(failures))
                return
        for level in removal:  # resources gone from the template, dependents first
            failures = self._in_parallel([(r, lambda r=r: self._delete_resource(stack, r)) for r in level])
            with self._lock:
                for name in level:
                    if stack.resources[name].status in ("DELETE_COMPLETE", "INIT_COMPLETE"):
                        del stack.resources[name]
            if failures:
                self._set_status(stack, "UPDATE_FAILED", "; ".join(failures))
                return
        outputs = self._outputs(stack, values)
        with self._lock:
            stack.outputs = outputs
        self._set_status(stack, "UPDATE_COMPLETE")

    def _update_resource(self, stack: Stack, logical_id: str, values: dict[str, Any]) -> str | None:
        resource = stack.resources[logical_id]
        spec = (stack.template.get("Resources") or {})[logical_id]
        try:
            properties = self._resolve(spec.get("Properties") or {}, values, stack)
        except TemplateError as error:
            self._resource_event(stack, resource, "UPDATE_FAILED", str(error))
            return f"{logical_id}: {error}"
        if properties.get("ServiceToken") != resource.properties.get("ServiceToken"):
            return f"{logical_id}: ServiceToken cannot be updated"
        if properties.get("Parameters") == resource.properties.get("Parameters"):
            return None
        old = resource.properties
        with self._lock:
            resource.properties = properties
        self._resource_event(stack, resource, "UPDATE_IN_PROGRESS")
        answer = self._send(stack, resource, "Update", old_properties=old)
        if answer is None or answer.get("Status") != "SUCCESS":
            with self._lock:
                resource.properties = old
            reason = (answer or {}).get("Reason") or "timed out waiting for the provider"
            self._resource_event(stack, resource, "UPDATE_FAILED", reason)
            return f"{logical_id}: {reason}"
        resource.data = answer.get("Data") or resource.data
        self._resource_event(stack, resource, "UPDATE_COMPLETE")
        return None

    def _delete(self, stack: Stack) -> None:
        failed = self._delete_resources(stack)
        self._set_status(stack, "DELETE_FAILED" if failed else "DELETE_COMPLETE", "; ".join(failed))

    def _delete_resources(self, stack: Stack) -> list[str]:
        failures: list[str] = []
        for level in reversed(self._levels(stack)):
            failures += self._in_parallel([(r, lambda r=r: self._delete_resource(stack, r)) for r in level])
        return failures

    def _delete_resource(self, stack: Stack, logical_id: str) -> str | None:
        resource = stack.resources[logical_id]
        if resource.status in ("DELETE_COMPLETE", "INIT_COMPLETE"):
            return None  # never created (a sibling failed first): ROS sends nothing
        self._resource_event(stack, resource, "DELETE_IN_PROGRESS")
        answer = self._send(stack, resource, "Delete")
        if answer is None or answer.get("Status") != "SUCCESS":
            reason = (answer or {}).get("Reason") or "timed out waiting for the provider"
            self._resource_event(stack, resource, "DELETE_FAILED", reason)
            return f"{logical_id}: {reason}"
        self._resource_event(stack, resource, "DELETE_COMPLETE")
        return None

    def _in_parallel(self, work: list[tuple[str, Any]]) -> list[str]:
        """Run each (name, function) as its own actor; the failures they return, in order."""
        tasks = [self.clock.spawn(function, f"ros-{name}") for name, function in work]
        return [failure for task in tasks if (failure := self.clock.run_task(task))]

    def _levels(self, stack: Stack) -> list[list[str]]:
        return _levels_of(stack.template.get("Resources") or {})

    def _set_status(self, stack: Stack, status: str, reason: str = "") -> None:
        with self._lock:
            self._set_status_locked(stack, status, reason)

    def _set_status_locked(self, stack: Stack, status: str, reason: str = "") -> None:
        now = self.clock.now()
        stack.status, stack.reason, stack.updated_at = status, reason or _stack_reason(status), now
        stack.events.append(
            Event(str(uuid.uuid4()), now, stack.name, "ALIYUN::ROS::Stack", status, stack.reason, stack.id)
        )

    def _resource_event(self, stack: Stack, resource: ResourceState, status: str, reason: str = "") -> None:
        with self._lock:
            now = self.clock.now()
            # "state changed": the wording of Heat (ROS's ancestor) for a resource's plain transitions.
            resource.status, resource.reason, resource.updated_at = status, reason or "state changed", now
            stack.events.append(
                Event(
                    str(uuid.uuid4()),
                    now,
                    resource.logical_id,
                    resource.type,
                    status,
                    resource.reason,
                    resource.physical_id or "",
                )
            )

    # -- one request --------------------------------------------------------------------------------------

    def new_request(
        self,
        request_type: str,
        properties: Mapping[str, object] | None = None,
        *,
        logical_id: str = "CopyImage",
        physical_id: str | None = None,
        old_properties: Mapping[str, object] | None = None,
        stack_id: str | None = None,
        stack_name: str = "test-stack",
        resource_type: str = "Custom::CopyImage",
        region: str | None = None,
    ) -> dict[str, Any]:
        """A complete ROS request with a live response URL, as ROS would send it (tests may alter it)."""
        token = secrets.token_urlsafe(24)
        request_id = str(uuid.uuid4())
        stack_id = stack_id or str(uuid.uuid4())
        request: dict[str, Any] = {
            "RequestType": request_type,
            "ResponseURL": self._response_url("public", stack_id, request_id, token),
            "IntranetResponseURL": self._response_url("intranet", stack_id, request_id, token),
            "StackId": stack_id,
            "StackName": stack_name,
            "ResourceOwnerId": self.fc.account_id,
            "CallerId": self.caller_id,
            "RegionId": region or self.region,
            "RequestId": request_id,
            "ResourceType": resource_type,
            "LogicalResourceId": logical_id,
            "ResourceProperties": dict(properties or {}),
        }
        if physical_id is not None:
            request["PhysicalResourceId"] = physical_id
        if request_type == "Update":
            request["OldResourceProperties"] = dict(old_properties or {})
        with self._lock:
            self._pending[request_id] = Pending(request, token, self.clock.signal(), self.clock.now())
            self.requests.append(request)
        return request

    def pending(self, request_id: str) -> Pending:
        with self._lock:
            return self._pending[request_id]

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
        if self.api is not None:
            self.api.reset()

    def wait_answer(self, request_id: str, timeout: float = 86400.0) -> dict[str, Any] | None:
        """The accepted answer to a request, waiting up to ``timeout`` virtual seconds; None if none came."""
        with self._lock:
            pending = self._pending[request_id]
        pending.done.wait(timeout)
        return pending.answer

    def expire(self, request_id: str) -> None:
        """Stop waiting for a request, as ROS does when its Timeout passes: later answers are refused."""
        with self._lock:
            pending = self._pending[request_id]
        self._close(pending)

    def _send(
        self,
        stack: Stack,
        resource: ResourceState,
        request_type: str,
        old_properties: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> dict[str, Any] | None:
        physical_id = resource.physical_id
        if request_type != "Create" and physical_id is None and self.send_physical_id_after_timeout:
            physical_id = f"ros-{uuid.uuid4()}"
        request = self.new_request(
            request_type,
            resource.properties.get("Parameters") or {},
            logical_id=resource.logical_id,
            physical_id=physical_id if request_type != "Create" else None,
            old_properties=(old_properties or {}).get("Parameters") or {},
            stack_id=stack.id,
            stack_name=stack.name,
            resource_type=resource.type,
            region=stack.region or self.region,
        )
        with self._lock:
            pending = self._pending[request["RequestId"]]
        service_token = resource.properties.get("ServiceToken")
        if service_token != self.fc.service_token:
            self._close(pending)
            return {"Status": "FAILED", "Reason": f"ServiceToken {service_token!r} names no function"}
        timeout = float(resource.properties.get("Timeout") or DEFAULT_RESOURCE_TIMEOUT)
        if not 1 <= timeout <= 43200:
            self._close(pending)
            return {"Status": "FAILED", "Reason": f"Timeout {timeout} is outside 1..43200"}
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - self.clock.now()))
        with contextlib.suppress(Exception):  # a sync invocation's failure is the provider's: ROS waits for an answer
            self.fc.invoke(json.dumps(request).encode(), invocation_type=self.invocation_type)
        if not pending.done.wait(timeout):
            self._close(pending)
            return None
        return pending.answer

    def _response_url(self, kind: str, stack_id: str, request_id: str, token: str) -> str:
        base = self.url
        if kind == "public" and not self.public_url_reachable:
            base = f"http://127.0.0.1:{self._unreachable_port()}"
        return f"{base}/{kind}/stacks/{stack_id}/requests/{request_id}?Expires=43200&Signature={token}"

    def _unreachable_port(self) -> int:
        if self._closed_port is None:
            import socket

            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self._closed_port = probe.getsockname()[1]
        return self._closed_port

    def fail_next_answers(self, *statuses: int) -> None:
        """Answer the next POSTs with these HTTP statuses (e.g. 503, 429, 400, 302) before behaving again."""
        with self._lock:
            self._answer_faults.extend(statuses)

    def fail_answers_until(self, moment: float, status: int = 503) -> None:
        """Answer every POST before the virtual time ``moment`` with ``status``: an outage of the endpoint."""
        with self._lock:
            self._answers_down_until = (moment, status)

    def _close(self, pending: Pending) -> None:
        with self._lock:
            pending.closed = True
        pending.done.set()

    # -- HTTP: the response URLs, and the ROS API ------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if len(parts) == 5 and parts[0] in ("public", "intranet") and parts[1] == "stacks" and parts[3] == "requests":
            return self._take_answer(request, parts[0], parts[4])
        if self.api is not None and request.method == "POST" and parts == [""]:
            reply: Reply = self.api.handle(request)
            return reply
        return json_reply(404, {"Code": "NotFound", "Message": "no such response URL"})

    def _take_answer(self, request: Request, url_kind: str, request_id: str) -> Reply:
        signature = (parse_qs(request.query).get("Signature") or [""])[0]
        with self._lock:
            pending = self._pending.get(request_id)
        if pending is None or not secrets.compare_digest(signature, pending.token):
            return json_reply(403, {"Code": "SignatureDoesNotMatch", "Message": "the response URL is not valid"})
        now = self.clock.now()
        with self._lock:
            fault = self._answer_faults.pop(0) if self._answer_faults else None
            outage = self._answers_down_until
            if fault is None and outage is not None and now < outage[0]:
                fault = outage[1]
        if fault is not None:
            self._record(Answer(request_id, url_kind, dict(request.headers), request.body, False, [], now, fault))
            headers = {"Location": "https://elsewhere.example.com/"} if 300 <= fault < 400 else {}
            return json_reply(fault, {"Code": "InjectedFault", "Message": f"injected HTTP {fault}"}, headers)
        problems = self._check_answer(request, pending.request)
        parsed = _json_object(request.body)
        with self._lock:
            closed = pending.closed
            previous = pending.answer
        if previous is not None and parsed and _differs(parsed, previous):
            problems.append(f"contradictory answer: {parsed.get('Status')} after {previous.get('Status')}")
        accepted = not problems and not closed
        status = 400 if problems else (403 if closed and not self.accept_late_answers else 200)
        self._record(Answer(request_id, url_kind, dict(request.headers), request.body, accepted, problems, now, status))
        if problems:
            self.violations.extend(f"{pending.request.get('RequestType')} {request_id}: {p}" for p in problems)
            return json_reply(400, {"Code": "InvalidResponse", "Message": "; ".join(problems)})
        if closed:
            if self.accept_late_answers:
                return Reply(200)  # taken, and ignored
            return json_reply(403, {"Code": "RequestClosed", "Message": "the request already finished or timed out"})
        with self._lock:
            pending.answer = parsed
            pending.closed = True
        pending.done.set()
        return Reply(200)

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def _check_answer(self, http: Request, sent: dict[str, Any]) -> list[str]:
        """ROS's documented rules for a custom resource answer."""
        problems = []
        if http.method != "POST":
            problems.append(f"method is {http.method}, not POST")
        if not http.headers.get("content-type", "").startswith("application/json"):
            problems.append(f"Content-Type is {http.headers.get('content-type')!r}, not application/json")
        try:
            parsedate_to_datetime(http.headers.get("date", ""))
            if not http.headers.get("date", "").endswith("GMT"):
                problems.append("Date is not in RFC 1123 GMT form")
        except (TypeError, ValueError):
            problems.append("Date header is missing or not RFC 1123")
        if len(http.body) > MAX_BODY_BYTES:
            problems.append(f"body is {len(http.body)} bytes, more than {MAX_BODY_BYTES}")
        answer = _json_object(http.body)
        if answer is None:
            return [*problems, "body is not a JSON object"]
        status = answer.get("Status")
        if status not in ("SUCCESS", "FAILED"):
            problems.append(f"Status is {status!r}")
        for name in ("StackId", "RequestId", "LogicalResourceId"):
            if answer.get(name) != sent.get(name):
                problems.append(f"{name} is {answer.get(name)!r}, not the request's {sent.get(name)!r}")
        physical_id = answer.get("PhysicalResourceId")
        if status == "SUCCESS" and not physical_id:
            problems.append("PhysicalResourceId is missing on SUCCESS")
        if physical_id is not None and (
            not isinstance(physical_id, str) or len(physical_id.encode()) > MAX_PHYSICAL_ID_BYTES
        ):
            problems.append("PhysicalResourceId is not a string of at most 255 bytes")
        sent_id = sent.get("PhysicalResourceId")
        if sent.get("RequestType") != "Create" and sent_id is not None and physical_id != sent_id:
            problems.append(f"PhysicalResourceId changed from {sent_id!r} to {physical_id!r}")
        if status == "FAILED" and not answer.get("Reason"):
            problems.append("Reason is missing on FAILED")
        if "Data" in answer and not isinstance(answer["Data"], dict):
            problems.append("Data is not a JSON object")
        return problems

    # -- template evaluation ------------------------------------------------------------------------------

    def _custom_resources(self, template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for logical_id, spec in (template.get("Resources") or {}).items():
            if not isinstance(spec, dict) or not isinstance(spec.get("Properties") or {}, dict):
                raise TemplateError(f"{logical_id}: a resource is a mapping with Type and Properties")
            kind = str(spec.get("Type", ""))
            if not (kind.startswith("Custom::") or kind in CUSTOM_TYPES):
                raise TemplateError(f"{logical_id}: {kind} is not emulated (only custom resources are)")
            found.append((logical_id, spec))
        return found

    def _parameter_values(self, template: dict[str, Any], given: Mapping[str, object], stack: Stack) -> dict[str, Any]:
        values: dict[str, Any] = {}
        declared = template.get("Parameters") or {}
        if not isinstance(declared, dict) or not all(isinstance(spec, dict) for spec in declared.values()):
            raise TemplateError("Parameters is not a mapping of parameter declarations")
        unknown = set(given) - set(declared)
        if unknown:
            raise ParameterError(f"unknown parameters: {', '.join(sorted(unknown))}")
        for name, spec in declared.items():
            if name in given:
                raw = given[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise ParameterError(f"parameter {name} has no value and no Default")
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(raw) not in [str(a) for a in allowed]:
                raise ParameterError(f"parameter {name}: {raw!r} is not one of {allowed}")
            kind = spec.get("Type", "String")
            if kind == "CommaDelimitedList":
                values[name] = raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
            elif kind == "Number":
                try:
                    number = float(str(raw))
                except ValueError:
                    raise ParameterError(f"parameter {name}: {raw!r} is not a number") from None
                if ("MinValue" in spec and number < float(spec["MinValue"])) or (
                    "MaxValue" in spec and number > float(spec["MaxValue"])
                ):
                    raise ParameterError(f"parameter {name}: {raw} is out of range")
                values[name] = int(number) if number.is_integer() else number
            else:
                values[name] = str(raw) if not isinstance(raw, bool) else str(raw).lower()
        values.update(self.pseudo_parameters(stack))
        return values

    def pseudo_parameters(self, stack: Stack) -> dict[str, str]:
        """The ALIYUN:: pseudo parameters a stack's template can refer to (GetStack lists them too)."""
        return {
            PSEUDO_REGION: stack.region or self.region,
            PSEUDO_ACCOUNT: self.fc.account_id,
            "ALIYUN::StackId": stack.id,
            "ALIYUN::StackName": stack.name,
        }

    def _resolve(self, node: Any, values: dict[str, Any], stack: Stack) -> Any:
        if isinstance(node, list):
            return [self._resolve(item, values, stack) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                if argument in values:
                    return values[argument]
                if argument in stack.resources:
                    return stack.resources[argument].physical_id
                raise TemplateError(f"Ref to unknown parameter {argument}")
            if function == "Fn::Sub":
                text = argument
                for name, value in values.items():
                    text = text.replace("${" + name + "}", str(value))
                if "${" in text:
                    raise TemplateError(f"Fn::Sub left unresolved names in {text!r}")
                return text
            if function == "Fn::Join":
                separator, items = argument
                return separator.join(str(i) for i in self._resolve(items, values, stack))
            if function == "Fn::Split":
                separator, text = argument[0], self._resolve(argument[1], values, stack)
                return text if isinstance(text, list) else str(text).split(separator)
            if function == "Fn::GetAtt":
                logical_id, key = argument
                resource = stack.resources.get(logical_id)
                if resource is None:
                    raise TemplateError(f"Fn::GetAtt on unknown resource {logical_id}")
                return resource.data if key == "Outputs" else resource.data.get(key)
        return {key: self._resolve(value, values, stack) for key, value in node.items()}

    def _outputs(self, stack: Stack, values: dict[str, Any]) -> dict[str, Any]:
        outputs = {}
        for name, spec in (stack.template.get("Outputs") or {}).items():
            outputs[name] = self._resolve(spec.get("Value"), values, stack)
        return outputs


def _levels_of(resources: Mapping[str, Any]) -> list[list[str]]:
    """The resources in dependency order: each level refers only to earlier ones (Ref, Fn::GetAtt)."""
    needs = {
        name: _references(spec.get("Properties") or {}, set(resources)) - {name} for name, spec in resources.items()
    }
    levels: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(resources):
        level = [name for name in resources if name not in done and needs[name] <= done]
        if not level:
            raise TemplateError("the resources refer to one another in a cycle")
        levels.append(level)
        done.update(level)
    return levels


def _check_fragment(node: Any, values: Mapping[str, Any], resources: set[str], where: str) -> None:
    """Refuse what :meth:`RosStandIn._resolve` cannot evaluate: unknown names, functions it does not emulate."""
    if isinstance(node, list):
        for item in node:
            _check_fragment(item, values, resources, where)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref":
            if argument not in values and argument not in resources:
                raise TemplateError(f"{where}: Ref to {argument!r}, which is no parameter and no resource")
            return
        if function == "Fn::GetAtt":
            if not (isinstance(argument, list) and len(argument) == 2 and argument[0] in resources):
                raise TemplateError(f"{where}: Fn::GetAtt {argument!r} names no resource of the template")
            return
        if function == "Fn::Sub":
            if not isinstance(argument, str):
                raise TemplateError(f"{where}: only the string form of Fn::Sub is emulated")
            unknown = sorted(set(re.findall(r"\$\{([^}]*)\}", argument)) - set(values))
            if unknown:
                raise TemplateError(f"{where}: Fn::Sub names {unknown}, which are no parameters")
            return
        if function in ("Fn::Join", "Fn::Split"):
            if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
                raise TemplateError(f"{where}: {function} takes [separator, value]")
        elif str(function).startswith("Fn::"):
            raise TemplateError(f"{where}: {function} is not emulated (only {', '.join(SUPPORTED_FUNCTIONS)})")
    for value in node.values():
        _check_fragment(value, values, resources, where)


def _stack_reason(status: str) -> str:
    """A stack's StatusReason when nothing failed (Heat's wording, which ROS inherits; not confirmed for ROS)."""
    if status.endswith("_IN_PROGRESS"):
        return f"Stack {status.removesuffix('_IN_PROGRESS')} started"
    if status.endswith("_COMPLETE"):
        return f"Stack {status.removesuffix('_COMPLETE')} completed successfully"
    return ""


def _references(node: Any, names: set[str]) -> set[str]:
    """The resources a fragment refers to through Ref or Fn::GetAtt."""
    if isinstance(node, list):
        return set().union(*(_references(item, names) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref" and value in names:
            found.add(value)
        elif key == "Fn::GetAtt" and isinstance(value, list) and value and value[0] in names:
            found.add(value[0])
        else:
            found |= _references(value, names)
    return found


def _differs(answer: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    """Two answers to one request contradict each other when status, physical id or data differ."""
    return any(answer.get(key) != previous.get(key) for key in ("Status", "PhysicalResourceId", "Data"))


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
