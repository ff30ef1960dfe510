"""The ROS stand-in's stack operations: create, update, delete and the rollback of a failed create, each an actor
on the shared virtual clock; independent resources run in parallel (CreateStack ``Parallelism``: "if 0 or empty,
no limit"). ``begin_*`` only validate and schedule, so the API can call them from an HTTP thread that is no actor;
``create_stack`` and its siblings also drive the clock until the operation is done (tests, Python callers)."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from emulator.ros.answers import ResponseUrls
from emulator.ros.models import (
    DEFAULT_RESOURCE_TIMEOUT,
    PSEUDO_ACCOUNT,
    PSEUDO_REGION,
    UPDATABLE_STATUSES,
    Event,
    ResourceFailed,
    ResourceState,
    Stack,
    StackStateError,
    Template,
    TemplateError,
)
from emulator.ros.native import NativeResources
from emulator.ros.resource_types import RESOURCE_TYPES
from emulator.ros.templates import check_template, levels_of, outputs_of, parameter_values, resolve, resources_of

# The status a played stack and resource are in when a test sends each request type.
PLAYED_STATUSES = {"Create": "CREATE_IN_PROGRESS", "Update": "UPDATE_IN_PROGRESS", "Delete": "DELETE_IN_PROGRESS"}


class StackEngine(ResponseUrls):
    """Stacks and their operations (the stand-in's state, for the API and for tests)."""

    invocation_type: str
    send_physical_id_after_timeout: bool
    resource_type_shown: str
    resource_status_shown: str

    def __init__(self, native: NativeResources | None = None) -> None:
        super().__init__()
        self.stacks: dict[str, Stack] = {}
        self.native = native  # the RAM and FC resources ROS creates itself (None: only custom resources run)

    def new_request(
        self, request_type: str, properties: Mapping[str, object] | None = None, *, play: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """A complete ROS request (see ResponseUrls.new_request). With ``play``, the test plays ROS: the stack it names
        is registered (or brought to the status this request type is sent in) unless a stack operation made it, so
        that the ROS API confirms the request as it would confirm ROS's own."""
        request = super().new_request(request_type, properties, **fields)
        if play:
            self._play(request)
        return request

    def _play(self, request: Mapping[str, Any]) -> None:
        now = self.clock.now()
        status = PLAYED_STATUSES.get(str(request["RequestType"]), "CREATE_IN_PROGRESS")
        logical_id, resource_type = str(request["LogicalResourceId"]), str(request["ResourceType"])
        with self._lock:
            stack = self.stacks.get(request["StackId"])
            if stack is None:
                template = {
                    "ROSTemplateFormatVersion": "2015-09-01",
                    "Resources": {logical_id: {"Type": resource_type}},
                }
                stack = Stack(
                    id=request["StackId"],
                    name=request["StackName"],
                    template=template,
                    parameters={},
                    created_at=now,
                    updated_at=now,
                    region=request["RegionId"],
                    played=True,
                )
                self.stacks[stack.id] = stack
            if not stack.played:
                return
            resource = stack.resources.setdefault(
                logical_id, ResourceState(logical_id, resource_type, {}, created_at=now)
            )
            resource.previous_status, resource.status, resource.updated_at = resource.status, status, now
            stack.status, stack.updated_at = status, now

    # -- stack operations, for Python callers (tests, the demo): each drives the clock until it is done ----------

    def create_stack(
        self,
        template: Template,
        parameters: Mapping[str, object],
        name: str = "demo-stack",
        timeout_minutes: float = 60.0,
        disable_rollback: bool = False,
    ) -> Stack:
        stack = self.begin_create(template, parameters, name, timeout_minutes, disable_rollback)
        self._finish(stack)
        return stack

    def update_stack(self, stack: Stack, parameters: Mapping[str, object]) -> Stack:
        self.begin_update(stack, parameters)
        self._finish(stack)
        return stack

    def delete_stack(self, stack: Stack) -> Stack:
        self.begin_delete(stack)
        self._finish(stack)
        return stack

    def _finish(self, stack: Stack) -> None:
        assert stack.operation is not None
        self.clock.run_task(stack.operation)

    # -- stack operations, started (the ROS API returns at once; the operation runs on) ----------------------

    @property
    def lock(self) -> threading.Lock:
        """Held while a stack changes; hold it (briefly, never across a wait) to read a stack consistently."""
        return self._lock

    def begin_create(
        self,
        template: Template,
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
        values = parameter_values(template, parameters, self.pseudo_parameters(stack))
        check_template(template, values)
        with self._lock:
            for logical_id, spec in resources_of(template):
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
        template: Template | None = None,
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
        values = parameter_values(template, given, self.pseudo_parameters(stack))
        check_template(template, values)
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
        outputs = outputs_of(stack, values)
        with self._lock:
            stack.outputs = outputs
        self._set_status(stack, "CREATE_COMPLETE")

    def _create_resource(
        self, stack: Stack, logical_id: str, values: dict[str, Any], deadline: float | None
    ) -> str | None:
        resource = stack.resources[logical_id]
        spec = (stack.template.get("Resources") or {})[logical_id]
        try:
            properties = resolve(spec.get("Properties") or {}, values, stack)
        except TemplateError as error:
            self._resource_event(stack, resource, "CREATE_FAILED", str(error))
            return f"{logical_id}: {error}"
        now = self.clock.now()
        with self._lock:
            resource.properties, resource.created_at = properties, now
        self._resource_event(stack, resource, "CREATE_IN_PROGRESS")
        if resource.type in RESOURCE_TYPES:
            return self._native_operation(stack, resource, "CREATE", properties)
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
        outputs = outputs_of(stack, values)
        with self._lock:
            stack.outputs = outputs
        self._set_status(stack, "UPDATE_COMPLETE")

    def _update_resource(self, stack: Stack, logical_id: str, values: dict[str, Any]) -> str | None:
        resource = stack.resources[logical_id]
        spec = (stack.template.get("Resources") or {})[logical_id]
        try:
            properties = resolve(spec.get("Properties") or {}, values, stack)
        except TemplateError as error:
            self._resource_event(stack, resource, "UPDATE_FAILED", str(error))
            return f"{logical_id}: {error}"
        if resource.type in RESOURCE_TYPES:
            if properties == resource.properties:
                return None
            self._resource_event(stack, resource, "UPDATE_IN_PROGRESS")
            return self._native_operation(stack, resource, "UPDATE", properties)
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
        if resource.type in RESOURCE_TYPES:
            return self._native_operation(stack, resource, "DELETE", resource.properties)
        answer = self._send(stack, resource, "Delete")
        if answer is None or answer.get("Status") != "SUCCESS":
            reason = (answer or {}).get("Reason") or "timed out waiting for the provider"
            self._resource_event(stack, resource, "DELETE_FAILED", reason)
            return f"{logical_id}: {reason}"
        self._resource_event(stack, resource, "DELETE_COMPLETE")
        return None

    def _native_operation(
        self, stack: Stack, resource: ResourceState, operation: str, properties: dict[str, Any]
    ) -> str | None:
        """CREATE, UPDATE or DELETE a resource ROS creates itself (emulator.ros.native); the failure, or None."""
        try:
            if self.native is None:
                raise ResourceFailed(f"{resource.type} is not emulated by this ROS (no FC stand-in wired to it)")
            if operation == "CREATE":
                resource.physical_id, resource.data = self.native.create(resource.type, properties)
            elif operation == "UPDATE":
                resource.data = self.native.update(resource.type, resource.properties, properties)
                with self._lock:
                    resource.properties = properties
            else:
                self.native.delete(resource.type, resource.physical_id or "")
        except ResourceFailed as error:
            self._resource_event(stack, resource, f"{operation}_FAILED", str(error))
            return f"{resource.logical_id}: {error}"
        self._resource_event(stack, resource, f"{operation}_COMPLETE")
        return None

    def _in_parallel(self, work: list[tuple[str, Any]]) -> list[str]:
        """Run each (name, function) as its own actor; the failures they return, in order."""
        tasks = [self.clock.spawn(function, f"ros-{name}") for name, function in work]
        return [failure for task in tasks if (failure := self.clock.run_task(task))]

    def _levels(self, stack: Stack) -> list[list[str]]:
        return levels_of(stack.template.get("Resources") or {})

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
            if status.endswith("_IN_PROGRESS"):
                resource.previous_status = resource.status
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
            play=False,
        )
        with self._lock:
            pending = self._pending[request["RequestId"]]
        service_token = resource.properties.get("ServiceToken")
        if service_token != self.fc.service_token or not getattr(self.fc, "deployed", True):
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

    def pseudo_parameters(self, stack: Stack) -> dict[str, str]:
        """The ALIYUN:: pseudo parameters a stack's template can refer to (GetStack lists them too)."""
        return {
            PSEUDO_REGION: stack.region or self.region,
            PSEUDO_ACCOUNT: self.fc.account_id,
            "ALIYUN::StackId": stack.id,
            "ALIYUN::StackName": stack.name,
        }


def _stack_reason(status: str) -> str:
    """A stack's StatusReason when nothing failed (Heat's wording, which ROS inherits; not confirmed for ROS)."""
    if status.endswith("_IN_PROGRESS"):
        return f"Stack {status.removesuffix('_IN_PROGRESS')} started"
    if status.endswith("_COMPLETE"):
        return f"Stack {status.removesuffix('_COMPLETE')} completed successfully"
    return ""
