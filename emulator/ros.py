"""ROS stand-in: runs a template's custom resources through the FC stand-in, like a stack would.

It builds complete ROS requests (every field ROS documents), hosts one unguessable ResponseURL per
request, checks each answer the way ROS documents it, enforces the resource's Timeout, rolls a failed
Create back with a Delete, and exposes the stack's outputs.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import yaml

from emulator.clock import Clock
from emulator.http import Reply, Request, StandIn, json_reply

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID_BYTES = 255
CUSTOM_TYPES = ("ALIYUN::ROS::CustomResource",)
PSEUDO_REGION, PSEUDO_ACCOUNT = "ALIYUN::Region", "ALIYUN::AccountId"


class TemplateError(Exception):
    """The template cannot be run by this stand-in."""


@dataclass
class Answer:
    """One POST received on a response URL."""

    request_id: str
    url_kind: str  # public | intranet
    headers: dict[str, str]
    body: bytes
    accepted: bool
    problems: list[str]
    at: float = 0.0  # virtual time it arrived

    @property
    def json(self) -> dict:
        try:
            parsed = json.loads(self.body)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


@dataclass
class Pending:
    """A request sent to the provider and waiting for its answer."""

    request: dict
    token: str
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict | None = None
    closed: bool = False  # answered, or timed out: the URL refuses from now on


@dataclass
class ResourceState:
    logical_id: str
    type: str
    properties: dict
    physical_id: str | None = None
    data: dict = field(default_factory=dict)
    status: str = "INIT"
    reason: str = ""


@dataclass
class Stack:
    id: str
    name: str
    template: dict
    parameters: dict
    status: str = "CREATE_IN_PROGRESS"
    reason: str = ""
    resources: dict[str, ResourceState] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


def load_template(path: str | Path) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    template = yaml.safe_load(text)
    if not isinstance(template, dict) or "Resources" not in template:
        raise TemplateError(f"{path} is not a ROS template (no Resources)")
    return template


class RosStandIn(StandIn):
    def __init__(
        self,
        clock: Clock,
        fc,
        region: str = "cn-hangzhou",
        invocation_type: str = "Async",
        public_url_reachable: bool = True,
        send_physical_id_after_timeout: bool = False,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.clock = clock
        self.fc = fc
        self.region = region
        self.invocation_type = invocation_type
        self.public_url_reachable = public_url_reachable
        self.send_physical_id_after_timeout = send_physical_id_after_timeout
        self.answers: list[Answer] = []
        self.violations: list[str] = []
        self.requests: list[dict] = []
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._closed_port: int | None = None
        self._answer_faults: list[int] = []  # HTTP statuses to answer the next POSTs with
        self.caller_id = str(10**15 + secrets.randbelow(9 * 10**15))

    # -- stack operations ---------------------------------------------------------------------------------

    def create_stack(self, template: dict, parameters: Mapping[str, object], name: str = "demo-stack") -> Stack:
        stack = Stack(id=str(uuid.uuid4()), name=name, template=template, parameters=dict(parameters))
        values = self._parameter_values(template, parameters, stack)
        for logical_id, spec in self._custom_resources(template):
            properties = self._resolve(spec.get("Properties") or {}, values, stack)
            resource = ResourceState(logical_id, spec["Type"], properties)
            stack.resources[logical_id] = resource
            answer = self._send(stack, resource, "Create")
            if answer is None or answer.get("Status") != "SUCCESS":
                resource.status = "CREATE_FAILED"
                resource.reason = (answer or {}).get("Reason", "timed out waiting for the provider")
                stack.status, stack.reason = "CREATE_FAILED", f"{logical_id}: {resource.reason}"
                if answer is not None:
                    resource.physical_id = answer.get("PhysicalResourceId")
                self._rollback(stack)
                return stack
            resource.physical_id = answer.get("PhysicalResourceId")
            resource.data = answer.get("Data") or {}
            resource.status = "CREATE_COMPLETE"
        stack.status = "CREATE_COMPLETE"
        stack.outputs = self._outputs(stack, values)
        return stack

    def update_stack(self, stack: Stack, parameters: Mapping[str, object]) -> Stack:
        merged = {**stack.parameters, **parameters}
        values = self._parameter_values(stack.template, merged, stack)
        stack.parameters = merged
        stack.status = "UPDATE_IN_PROGRESS"
        for logical_id, spec in self._custom_resources(stack.template):
            resource = stack.resources[logical_id]
            properties = self._resolve(spec.get("Properties") or {}, values, stack)
            if properties.get("ServiceToken") != resource.properties.get("ServiceToken"):
                stack.status, stack.reason = "UPDATE_FAILED", f"{logical_id}: ServiceToken cannot be updated"
                return stack
            if properties.get("Parameters") == resource.properties.get("Parameters"):
                continue
            old = resource.properties
            resource.properties = properties
            answer = self._send(stack, resource, "Update", old_properties=old)
            if answer is None or answer.get("Status") != "SUCCESS":
                resource.properties = old
                resource.status = "UPDATE_FAILED"
                resource.reason = (answer or {}).get("Reason", "timed out waiting for the provider")
                stack.status, stack.reason = "UPDATE_FAILED", f"{logical_id}: {resource.reason}"
                return stack
            resource.data = answer.get("Data") or resource.data
            resource.status = "UPDATE_COMPLETE"
        stack.status = "UPDATE_COMPLETE"
        stack.outputs = self._outputs(stack, values)
        return stack

    def delete_stack(self, stack: Stack) -> Stack:
        stack.status = "DELETE_IN_PROGRESS"
        failed = self._delete_resources(stack)
        stack.status = "DELETE_FAILED" if failed else "DELETE_COMPLETE"
        stack.reason = "; ".join(failed)
        return stack

    def _rollback(self, stack: Stack) -> None:
        stack.events.append("rollback")
        failed = self._delete_resources(stack)
        stack.status = "ROLLBACK_FAILED" if failed else "ROLLBACK_COMPLETE"
        if failed:
            stack.reason += "; rollback: " + "; ".join(failed)

    def _delete_resources(self, stack: Stack) -> list[str]:
        failed = []
        for resource in reversed(list(stack.resources.values())):
            if resource.status == "DELETE_COMPLETE":
                continue
            answer = self._send(stack, resource, "Delete")
            if answer is None or answer.get("Status") != "SUCCESS":
                resource.status = "DELETE_FAILED"
                resource.reason = (answer or {}).get("Reason", "timed out waiting for the provider")
                failed.append(f"{resource.logical_id}: {resource.reason}")
            else:
                resource.status = "DELETE_COMPLETE"
        return failed

    # -- one request --------------------------------------------------------------------------------------

    def new_request(
        self,
        request_type: str,
        properties: Mapping | None = None,
        *,
        logical_id: str = "CopyImage",
        physical_id: str | None = None,
        old_properties: Mapping | None = None,
        stack_id: str | None = None,
        stack_name: str = "test-stack",
        resource_type: str = "Custom::CopyImage",
    ) -> dict:
        """A complete ROS request with a live response URL, as ROS would send it (tests may alter it)."""
        token = secrets.token_urlsafe(24)
        request_id = str(uuid.uuid4())
        stack_id = stack_id or str(uuid.uuid4())
        request = {
            "RequestType": request_type,
            "ResponseURL": self._response_url("public", stack_id, request_id, token),
            "IntranetResponseURL": self._response_url("intranet", stack_id, request_id, token),
            "StackId": stack_id,
            "StackName": stack_name,
            "ResourceOwnerId": self.fc.account_id,
            "CallerId": self.caller_id,
            "RegionId": self.region,
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
            self._pending[request_id] = Pending(request, token)
            self.requests.append(request)
        return request

    def wait_answer(self, request_id: str, timeout: float = 30.0) -> dict | None:
        """The accepted answer to a request, waiting up to ``timeout`` virtual seconds; None if none came."""
        with self._lock:
            pending = self._pending[request_id]
        pending.done.wait(self.clock.real_seconds(timeout))
        return pending.answer

    def expire(self, request_id: str) -> None:
        """Stop waiting for a request, as ROS does when its Timeout passes: later answers are refused."""
        with self._lock:
            pending = self._pending[request_id]
        self._close(pending)

    def _send(self, stack: Stack, resource: ResourceState, request_type: str, old_properties: dict | None = None):
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
        )
        with self._lock:
            pending = self._pending[request["RequestId"]]
        stack.events.append(f"{request_type} {resource.logical_id} sent")

        service_token = resource.properties.get("ServiceToken")
        if service_token != self.fc.service_token:
            self._close(pending)
            return {"Status": "FAILED", "Reason": f"ServiceToken {service_token!r} names no function"}
        timeout = float(resource.properties.get("Timeout") or 60)
        if not 1 <= timeout <= 43200:
            self._close(pending)
            return {"Status": "FAILED", "Reason": f"Timeout {timeout} is outside 1..43200"}
        body = json.dumps(request).encode()
        try:
            self.fc.invoke(body, invocation_type=self.invocation_type)
        except Exception as error:  # a sync invocation's failure is the provider's failure
            stack.events.append(f"invoke failed: {error!r}")
        if not pending.done.wait(self.clock.real_seconds(timeout)):
            self._close(pending)
            stack.events.append(f"{request_type} {resource.logical_id} timed out after {timeout:.0f} s")
            return None
        stack.events.append(f"{request_type} {resource.logical_id} answered {pending.answer.get('Status')}")
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
        """Answer the next POSTs with these HTTP statuses (e.g. 503, 429, 400) before behaving again."""
        with self._lock:
            self._answer_faults.extend(statuses)

    def _close(self, pending: Pending) -> None:
        with self._lock:
            pending.closed = True
        pending.done.set()

    # -- the response URLs --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if len(parts) != 5 or parts[0] not in ("public", "intranet") or parts[1] != "stacks" or parts[3] != "requests":
            return json_reply(404, {"Code": "NotFound", "Message": "no such response URL"})
        from urllib.parse import parse_qs

        signature = (parse_qs(request.query).get("Signature") or [""])[0]
        with self._lock:
            pending = self._pending.get(parts[4])
        if pending is None or not secrets.compare_digest(signature, pending.token):
            return json_reply(403, {"Code": "SignatureDoesNotMatch", "Message": "the response URL is not valid"})
        with self._lock:
            fault = self._answer_faults.pop(0) if self._answer_faults else None
        if fault is not None:
            self.answers.append(
                Answer(parts[4], parts[0], dict(request.headers), request.body, False, [], at=self.clock.now())
            )
            return json_reply(fault, {"Code": "InjectedFault", "Message": f"injected HTTP {fault}"})
        problems = self._check_answer(request, pending.request)
        body = request.body
        with self._lock:
            closed = pending.closed
            previous = pending.answer
        parsed = _json_object(body)
        if previous is not None and parsed and parsed.get("Status") != previous.get("Status"):
            problems.append(f"contradictory answer: {parsed.get('Status')} after {previous.get('Status')}")
        accepted = not problems and not closed
        self.answers.append(
            Answer(parts[4], parts[0], dict(request.headers), body, accepted, problems, at=self.clock.now())
        )
        if problems:
            self.violations.extend(f"{pending.request.get('RequestType')} {parts[4]}: {p}" for p in problems)
            return json_reply(400, {"Code": "InvalidResponse", "Message": "; ".join(problems)})
        if closed:
            return json_reply(403, {"Code": "RequestClosed", "Message": "the request already finished or timed out"})
        with self._lock:
            pending.answer = parsed
            pending.closed = True
        pending.done.set()
        return Reply(200)

    def _check_answer(self, http: Request, sent: dict) -> list[str]:
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

    def _custom_resources(self, template: dict):
        for logical_id, spec in (template.get("Resources") or {}).items():
            kind = spec.get("Type", "")
            if not (kind.startswith("Custom::") or kind in CUSTOM_TYPES):
                raise TemplateError(f"{logical_id}: {kind} is not emulated (only custom resources are)")
            yield logical_id, spec

    def _parameter_values(self, template: dict, given: Mapping[str, object], stack: Stack) -> dict:
        values: dict[str, object] = {}
        declared = template.get("Parameters") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise TemplateError(f"unknown parameters: {', '.join(sorted(unknown))}")
        for name, spec in declared.items():
            if name in given:
                raw = given[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no value and no Default")
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(raw) not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}: {raw!r} is not one of {allowed}")
            kind = spec.get("Type", "String")
            if kind == "CommaDelimitedList":
                values[name] = raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
            elif kind == "Number":
                number = float(raw)
                if ("MinValue" in spec and number < float(spec["MinValue"])) or (
                    "MaxValue" in spec and number > float(spec["MaxValue"])
                ):
                    raise TemplateError(f"parameter {name}: {raw} is out of range")
                values[name] = int(number) if number.is_integer() else number
            else:
                values[name] = str(raw) if not isinstance(raw, bool) else str(raw).lower()
        values[PSEUDO_REGION] = self.region
        values[PSEUDO_ACCOUNT] = self.fc.account_id
        values["ALIYUN::StackId"] = stack.id
        values["ALIYUN::StackName"] = stack.name
        return values

    def _resolve(self, node: Any, values: dict, stack: Stack) -> Any:
        if isinstance(node, list):
            return [self._resolve(item, values, stack) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                if argument not in values:
                    raise TemplateError(f"Ref to unknown parameter {argument}")
                return values[argument]
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

    def _outputs(self, stack: Stack, values: dict) -> dict:
        outputs = {}
        for name, spec in (stack.template.get("Outputs") or {}).items():
            outputs[name] = self._resolve(spec.get("Value"), values, stack)
        return outputs


def _json_object(body: bytes) -> dict | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
