"""The ROS 2019-09-10 API of the ROS stand-in, RPC style, as ``alibabacloud-ros20190910`` calls it.

The SDK sends ``POST /`` with the action in the ``x-acs-action`` header (older RPC clients: ``Action=`` in the
query) and the version in ``x-acs-version``. Parameters are read from the query and the form-encoded body together:
SDK 3.7 sends ``TemplateBody`` in the body, 3.2 (iact3's pin) in the query, everything else in the query, lists
flattened as ``Parameters.1.ParameterKey``. Booleans arrive as Python spells them (``True``): any case is accepted.
Every region is served on the one endpoint; a stack lives in the region of its ``RegionId`` and is found only there.

Each request is verified (``ACS3-HMAC-SHA256``, :mod:`emulator.signing`) first, as the ECS stand-in does. Stack
operations only start here (:meth:`StackEngine.begin_create` and its siblings schedule an actor on the virtual
clock and return): the call answers at once, and whoever drives the clock (``clock.sleep``, ``run_until``) lets the
operation run on. This code runs on an HTTP server thread that is no actor, so it never waits on the clock; it reads
stacks under :attr:`StackEngine.lock`, so a poll taken while an operation runs (realtime mode) is consistent.

Actions: CreateStack, GetStack, UpdateStack, DeleteStack, ListStackEvents, ListStackResources, GetStackResource.
Error replies are JSON ``{"RequestId", "HostId", "Code", "Message", "Recommend"}``; the SDK raises
``ClientException`` (4xx) carrying ``.code``:

Any action
    the signature errors of :mod:`emulator.signing`; 404 ``InvalidAction.NotFound``; 400 ``InvalidVersion``;
    400 ``MissingParameter`` ("The input parameter {name} should be specified."); 400 ``InvalidParameter``
    ("The specified parameter {name} is invalid, {reason}."): both from ROS's common error codes page.
    404 ``StackNotFound`` ("The Stack ({id}) could not be found."), also for a stack that is DELETE_COMPLETE or in
    another region. A StackId that is no UUID is 400 ``InvalidParameter``, as ROS answers (ros-cdk issue #42).
CreateStack
    409 ``StackExists`` ("The Stack ({name}) already exists."), for a name a live stack of the region has;
    400 ``InvalidTemplate``; 400 ``InvalidIdempotenceParameter`` (a ClientToken reused with other parameters).
UpdateStack / DeleteStack
    409 ``ActionInProgress`` while an operation runs; 400 ``StackValidationFailed`` for an update of a stack whose
    status allows none (CREATE_FAILED, CREATE_ROLLBACK_*, DELETE_FAILED).
GetStackResource
    404 ``ResourceNotFound``.

Not emulated (refused with ``InvalidParameter`` rather than ignored): TemplateURL, TemplateId, TemplateScratchId
without a TemplateBody; RetainAllResources=true and RetainResources on DeleteStack.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from emulator.credentials import CredentialStore
from emulator.errors import ApiError
from emulator.http import Reply, Request
from emulator.ros.models import CUSTOM_TYPES, ParameterError, ResourceState, Stack, StackStateError, TemplateError
from emulator.ros.stacks import StackEngine
from emulator.ros.templates import parse_template
from emulator.rpc import Call, Params, RpcEnvelope

API_VERSION = "2019-09-10"
HOST_ID = "ros.aliyuncs.com"
TEMPLATE_FORMAT_VERSION = "2015-09-01"
MAX_TEMPLATE_BYTES = 524_288  # TemplateBody: "1 to 524,288 bytes"
MAX_PARAMETERS = 200  # Parameters.N: "Maximum value of N: 200"
MAX_TAGS = 20  # Tags.N: "Maximum value of N: 20"
TIMEOUT_RANGE = (10, 1440)  # TimeoutInMinutes: "Valid values: 10 to 1440", default 60
MAX_PAGE_SIZE = 50  # ListStackEvents PageSize: "Maximum value: 50", default 10
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # "UTC ... YYYY-MM-DDThh:mm:ss", without the Z
STACK_ID_RE = re.compile(r"^[0-9a-f]{8}[-][0-9a-f]{4}[-][0-9a-f]{4}[-][0-9a-f]{4}[-][0-9a-f]{12}$")
STACK_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,254}")
CLIENT_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RosError(ApiError):
    """An API error: HTTP status, Alibaba error code, message."""


def _missing(name: str) -> RosError:
    return RosError(400, "MissingParameter", f"The input parameter {name} should be specified.")


def _invalid(name: str, reason: str) -> RosError:
    return RosError(400, "InvalidParameter", f"The specified parameter {name} is invalid, {reason}.")


def _stack_not_found(stack_id: str) -> RosError:
    # ROS's documentation gives no HTTP status for StackNotFound; 404 is a choice (as Heat, ROS's ancestor, answers).
    return RosError(404, "StackNotFound", f"The Stack ({stack_id}) could not be found.")


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(TIME_FORMAT)


def _text(value: Any) -> str:
    """A parameter value as GetStack shows it: the text it was given as."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


class RosParams(Params):
    """ROS's wording of parameter errors (its common error codes page), and its ``Prefix.N.Field`` lists."""

    def missing(self, name: str) -> ApiError:
        return _missing(name)

    def bad_boolean(self, name: str, value: str) -> ApiError:
        return _invalid(name, f'"{value}" is not true or false')

    def bad_integer(self, name: str, value: str, low: int, high: int | None) -> ApiError:
        try:
            number = int(value)
        except ValueError:
            return _invalid(name, f'"{value}" is not an integer')
        limits = f"{low} to {high}" if high is not None else f"at least {low}"
        return _invalid(name, f"{number} is out of range ({limits})")

    def choice(self, name: str, default: str, allowed: Iterable[str]) -> str:
        value = self.get(name) or default
        if value not in allowed:
            raise _invalid(name, f'"{value}" is not one of {", ".join(allowed)}')
        return value

    def entries(self, prefix: str, fields: tuple[str, ...], limit: int) -> list[dict[str, str]]:
        """``Prefix.N.Field`` entries, in index order, each a dict of the fields given."""
        entries = self.indexed(prefix, fields)
        for index in entries:
            if not 1 <= index <= limit:
                raise _invalid(f"{prefix}.{index}", f"N must be 1 to {limit}")
        return [entries[index] for index in sorted(entries)]


class RosApi:
    """The API side of a ROS stand-in; the stand-in routes ``POST /`` here (``ros.api``)."""

    def __init__(self, ros: StackEngine, credentials: CredentialStore) -> None:
        self.ros = ros
        self.credentials = credentials
        self.rpc: RpcEnvelope[RosParams] = RpcEnvelope(
            ros.clock,
            credentials,
            version=API_VERSION,
            host_id=HOST_ID,
            actions=self.actions(),
            params=RosParams,
            recommend_product="ROS",
            before_action=self._inject,
        )
        self._faults: list[tuple[str | None, RosError]] = []  # (action or None for any, the error to answer)
        self._lock = threading.RLock()  # serializes the actions that change stacks (names, client tokens)
        self._tokens: dict[tuple[str, str], tuple[str, str]] = {}  # (action, token) -> (parameters hash, stack id)

    def actions(self) -> dict[str, Callable[[RosParams], Mapping[str, object]]]:
        return {
            "CreateStack": self.create_stack,
            "GetStack": self.get_stack,
            "UpdateStack": self.update_stack,
            "DeleteStack": self.delete_stack,
            "ListStackEvents": self.list_stack_events,
            "ListStackResources": self.list_stack_resources,
            "GetStackResource": self.get_stack_resource,
        }

    @property
    def calls(self) -> list[Call]:
        """Every request, in arrival order."""
        return self.rpc.calls

    def fail_next(self, count: int = 1, action: str | None = None, status: int = 400, code: str = "Throttling") -> None:
        """Answer the next ``count`` calls (of ``action``, or any) with this error: throttling by default (ROS's
        common error codes page), or a 5xx."""
        with self._lock:
            self._faults.extend((action, RosError(status, code, "injected fault")) for _ in range(count))

    def _inject(self, action: str) -> None:
        with self._lock:
            fault = next((f for f in self._faults if f[0] in (None, action)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            raise fault[1]

    def reset(self) -> None:
        self.rpc.reset_calls()
        self._faults.clear()
        with self._lock:
            self._tokens.clear()

    def handle(self, request: Request) -> Reply:
        return self.rpc.handle(request)

    # ------------------------------------------------------------------ helpers

    def _stack(self, params: RosParams) -> Stack:
        """The live stack named by StackId in the request's region (call with the stand-in's lock held)."""
        region = params.required("RegionId")
        stack_id = params.required("StackId")
        if not STACK_ID_RE.fullmatch(stack_id):
            raise _invalid("StackId", f'"{stack_id}" does not match pattern "{STACK_ID_RE.pattern}"')
        stack = self.ros.stacks.get(stack_id)
        if stack is None or stack.region != region or stack.status == "DELETE_COMPLETE":
            raise _stack_not_found(stack_id)
        return stack

    def _read(self, params: RosParams, view: Callable[[Stack], dict[str, Any]]) -> dict[str, Any]:
        """``view`` of the request's stack, taken under the stand-in's lock: operations may be running."""
        with self.ros.lock:
            return view(self._stack(params))

    def _template(self, params: RosParams) -> dict[str, Any] | None:
        body = params.get("TemplateBody")
        if body is None:
            for name in ("TemplateURL", "TemplateId", "TemplateScratchId"):
                if params.get(name):
                    raise _invalid(name, "only TemplateBody is emulated")
            return None
        if len(body.encode()) > MAX_TEMPLATE_BYTES:
            raise _invalid("TemplateBody", f"it is longer than {MAX_TEMPLATE_BYTES} bytes")
        try:
            template = parse_template(body, "TemplateBody")
        except TemplateError as error:
            raise _invalid_template(str(error)) from None
        version = template.get("ROSTemplateFormatVersion")
        if str(version) != TEMPLATE_FORMAT_VERSION:
            raise _invalid_template(f"ROSTemplateFormatVersion is {version!r}, not {TEMPLATE_FORMAT_VERSION!r}")
        return template

    def _parameters(self, params: RosParams) -> dict[str, str]:
        given: dict[str, str] = {}
        for index, entry in enumerate(params.entries("Parameters", ("ParameterKey", "ParameterValue"), MAX_PARAMETERS)):
            if not entry.get("ParameterKey"):
                raise _missing(f"Parameters.{index + 1}.ParameterKey")
            if "ParameterValue" not in entry:
                raise _missing(f"Parameters.{index + 1}.ParameterValue")
            if entry["ParameterKey"] in given:
                raise _invalid("Parameters", f"{entry['ParameterKey']} is given twice")
            given[entry["ParameterKey"]] = entry["ParameterValue"]
        return given

    def _idempotent(self, action: str, params: RosParams) -> tuple[tuple[str, str], str] | None:
        """The (token key, parameters hash) of a request with a ClientToken; None without one."""
        token = params.get("ClientToken")
        if token is None:
            return None
        if not CLIENT_TOKEN_RE.fullmatch(token):
            raise _invalid("ClientToken", "it must be 1 to 64 letters, digits, hyphens or underscores")
        digest = hashlib.sha256(json.dumps(sorted(params.values.items())).encode()).hexdigest()
        return (action, token), digest

    def _earlier(self, idempotency: tuple[tuple[str, str], str] | None) -> str | None:
        """The StackId an earlier request with the same ClientToken answered (call with self._lock held)."""
        if idempotency is None:
            return None
        key, digest = idempotency
        earlier = self._tokens.get(key)
        if earlier is None:
            return None
        if earlier[0] != digest:
            raise RosError(400, "InvalidIdempotenceParameter", "The specified parameters are different from before.")
        return earlier[1]

    # ------------------------------------------------------------------ actions

    def create_stack(self, params: RosParams) -> dict[str, Any]:
        region = params.required("RegionId")
        name = params.required("StackName")
        if not STACK_NAME_RE.fullmatch(name):
            raise _invalid(
                "StackName", "it must be up to 255 letters, digits, hyphens or underscores, starting with a letter"
            )
        template = self._template(params)
        if template is None:
            raise RosError(
                400, "MissingParameter", "One of the input parameters TemplateBody, TemplateURL should be specified."
            )
        parameters = self._parameters(params)
        timeout = params.integer("TimeoutInMinutes", 60, *TIMEOUT_RANGE)
        disable_rollback = params.boolean("DisableRollback")
        tags: dict[str, str] = {}
        for index, entry in enumerate(params.entries("Tags", ("Key", "Value"), MAX_TAGS)):
            if not entry.get("Key"):
                raise _missing(f"Tags.{index + 1}.Key")
            tags[entry["Key"]] = entry.get("Value", "")
        idempotency = self._idempotent("CreateStack", params)
        with self._lock:
            earlier = self._earlier(idempotency)
            if earlier is not None:
                return {"StackId": earlier}
            with self.ros.lock:
                taken = any(
                    s.name == name and s.region == region and s.status != "DELETE_COMPLETE" and not s.played
                    for s in self.ros.stacks.values()
                )
            if taken:
                # ROS's documentation gives no HTTP status for StackExists; 409 is a choice (Heat answers 409).
                raise RosError(409, "StackExists", f"The Stack ({name}) already exists.")
            try:
                stack = self.ros.begin_create(template, parameters, name, timeout, disable_rollback, tags, region)
            except ParameterError as error:
                raise _invalid("Parameters", str(error)) from None
            except TemplateError as error:
                raise _invalid_template(str(error)) from None
            if idempotency is not None:
                self._tokens[idempotency[0]] = (idempotency[1], stack.id)
        return {"StackId": stack.id}

    def get_stack(self, params: RosParams) -> dict[str, Any]:
        with_outputs = params.choice("OutputOption", "Enabled", ("Enabled", "Disabled")) == "Enabled"

        def view(stack: Stack) -> dict[str, Any]:
            declared = stack.template.get("Parameters") or {}
            parameters = {**self.ros.pseudo_parameters(stack)}
            for key, spec in declared.items():
                if key in stack.parameters or "Default" in spec:
                    parameters[key] = _text(stack.parameters.get(key, spec.get("Default")))
            result: dict[str, Any] = {
                "StackId": stack.id,
                "StackName": stack.name,
                "RegionId": stack.region,
                "StackType": "ROS",
                "Status": stack.status,
                "StatusReason": stack.reason,
                "CreateTime": _time(stack.created_at),
                "UpdateTime": _time(stack.updated_at),
                "TimeoutInMinutes": int(stack.timeout_minutes),
                "DisableRollback": stack.disable_rollback,
                "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
                "Tags": [{"Key": k, "Value": v} for k, v in stack.tags.items()],
            }
            if stack.template.get("Description"):
                result["Description"] = result["TemplateDescription"] = stack.template["Description"]
            if with_outputs:
                specs = stack.template.get("Outputs") or {}
                result["Outputs"] = [
                    {"OutputKey": key, "OutputValue": value}
                    | ({"Description": specs[key]["Description"]} if "Description" in specs.get(key, {}) else {})
                    for key, value in stack.outputs.items()
                ]
            return result

        return self._read(params, view)

    def update_stack(self, params: RosParams) -> dict[str, Any]:
        template = self._template(params)
        parameters = self._parameters(params)
        use_previous = params.boolean("UsePreviousParameters")
        timeout: int | None = None
        if params.get("TimeoutInMinutes") is not None:
            # Kept and shown by GetStack; the stand-in's updates run without a deadline (its creates have one).
            timeout = params.integer("TimeoutInMinutes", 60, *TIMEOUT_RANGE)
        idempotency = self._idempotent("UpdateStack", params)
        with self._lock:
            earlier = self._earlier(idempotency)
            if earlier is not None:
                return {"StackId": earlier}
            with self.ros.lock:
                stack = self._stack(params)
            try:
                self.ros.begin_update(stack, parameters, template, use_previous_parameters=use_previous)
            except StackStateError as error:
                raise _state_error(error) from None
            except ParameterError as error:
                raise _invalid("Parameters", str(error)) from None
            except TemplateError as error:
                raise _invalid_template(str(error)) from None
            if timeout is not None:
                with self.ros.lock:
                    stack.timeout_minutes = timeout
            if idempotency is not None:
                self._tokens[idempotency[0]] = (idempotency[1], stack.id)
        return {"StackId": stack.id}

    def delete_stack(self, params: RosParams) -> dict[str, Any]:
        if params.boolean("RetainAllResources") or params.listed("RetainResources", keep_empty=True):
            raise _invalid("RetainAllResources", "keeping resources on delete is not emulated")
        with self._lock:
            with self.ros.lock:
                stack = self._stack(params)
            try:
                self.ros.begin_delete(stack)
            except StackStateError as error:
                raise _state_error(error) from None
        return {}

    def list_stack_events(self, params: RosParams) -> dict[str, Any]:
        page = params.integer("PageNumber", 1, 1)
        size = params.integer("PageSize", 10, 1, MAX_PAGE_SIZE)
        statuses = set(params.listed("Status", keep_empty=True))
        logical_ids = set(params.listed("LogicalResourceId", keep_empty=True))
        types = set(params.listed("ResourceType", keep_empty=True))

        def view(stack: Stack) -> dict[str, Any]:
            events = [
                event
                for event in reversed(stack.events)  # newest first
                if (not statuses or event.status in statuses)
                and (not logical_ids or event.logical_id in logical_ids)
                and (not types or event.resource_type in types)
            ]
            shown = events[(page - 1) * size : page * size]
            return {
                "Events": [
                    {
                        "EventId": event.event_id,
                        "StackId": stack.id,
                        "StackName": stack.name,
                        "LogicalResourceId": event.logical_id,
                        "PhysicalResourceId": event.physical_id,
                        "ResourceType": event.resource_type,
                        "Status": event.status,
                        "StatusReason": event.reason,
                        "CreateTime": _time(event.at),
                    }
                    for event in shown
                ],
                "TotalCount": len(events),
                "PageNumber": page,
                "PageSize": size,
            }

        return self._read(params, view)

    def list_stack_resources(self, params: RosParams) -> dict[str, Any]:
        return self._read(
            params,
            lambda stack: {"Resources": [self._resource(stack, r.logical_id) for r in stack.resources.values()]},
        )

    def get_stack_resource(self, params: RosParams) -> dict[str, Any]:
        logical_id = params.required("LogicalResourceId")
        show_attributes = params.boolean("ShowResourceAttributes")

        def view(stack: Stack) -> dict[str, Any]:
            if logical_id not in stack.resources:
                # Heat's code and wording (ROS's ancestor); not confirmed in ROS's documentation.
                message = f"The Resource ({logical_id}) could not be found in Stack {stack.name}."
                raise RosError(404, "ResourceNotFound", message)
            result = self._resource(stack, logical_id)
            spec = (stack.template.get("Resources") or {}).get(logical_id) or {}
            if spec.get("Description"):
                result["Description"] = spec["Description"]
            if show_attributes:
                data = stack.resources[logical_id].data
                result["ResourceAttributes"] = [{"Key": key, "Value": value} for key, value in data.items()]
            return result

        return self._read(params, view)

    def _resource(self, stack: Stack, logical_id: str) -> dict[str, Any]:
        """A resource as GetStackResource and ListStackResources show it; for a custom resource while its provider
        runs, as the switches ``resource_type_shown`` and ``resource_status_shown`` say (undocumented)."""
        resource = stack.resources[logical_id]
        shown = _resource(stack, resource)
        if self.ros.resource_type_shown == "generic" and resource.type.startswith("Custom::"):
            shown["ResourceType"] = CUSTOM_TYPES[0]
        if self.ros.resource_status_shown == "previous" and resource.status.endswith("_IN_PROGRESS"):
            shown["Status"] = resource.previous_status
        return shown


def _resource(stack: Stack, resource: ResourceState) -> dict[str, Any]:
    result: dict[str, Any] = {
        "LogicalResourceId": resource.logical_id,
        "ResourceType": resource.type,
        "Status": resource.status,
        "StatusReason": resource.reason,
        "CreateTime": _time(resource.created_at),
        "UpdateTime": _time(resource.updated_at),
        "StackId": stack.id,
        "StackName": stack.name,
    }
    if resource.physical_id:
        result["PhysicalResourceId"] = resource.physical_id
    return result


def _invalid_template(reason: str) -> RosError:
    # The code is not confirmed in ROS's documentation (which lists none for a template ROS cannot run).
    return RosError(400, "InvalidTemplate", f"The template is invalid: {reason}.")


def _state_error(error: StackStateError) -> RosError:
    if error.busy:
        # Heat's code and status (ROS's ancestor) for an operation on a stack that is still busy; not confirmed
        # in ROS's documentation.
        return RosError(409, "ActionInProgress", f"{error}: another action is in progress.")
    # Not confirmed in ROS's documentation either (Heat's code for an operation the stack's state forbids).
    return RosError(400, "StackValidationFailed", str(error))
