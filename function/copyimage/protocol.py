"""The ROS custom resource protocol: what a request holds and what a correct answer looks like.

Pure functions only; sending the answer is outbound.py's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from copyimage.errors import InvalidRequest, Unanswerable

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID_BYTES = 255
REQUEST_TYPES = ("Create", "Update", "Delete")
# A failed Create still needs a PhysicalResourceId; the Delete that may follow recognises this prefix.
FAILED_CREATE_PREFIX = "copyimage-failed-"
_TRUNCATED = " [...]"

Properties = Mapping[str, object]


@dataclass(frozen=True, kw_only=True)
class _Request:
    response_url: str
    intranet_response_url: str | None
    stack_id: str
    stack_name: str
    request_id: str
    logical_resource_id: str
    region_id: str
    properties: Properties  # ResourceProperties: the template's Parameters map ({} when absent)
    raw: Mapping[str, object] = field(repr=False, compare=False)  # forwarded to later invocations

    @property
    def failed_create_id(self) -> str:
        """The PhysicalResourceId of a Create of this request that produced nothing."""
        return _fit(FAILED_CREATE_PREFIX + self.request_id, MAX_PHYSICAL_ID_BYTES)


@dataclass(frozen=True, kw_only=True)
class CreateRequest(_Request):
    request_type: Literal["Create"] = "Create"


@dataclass(frozen=True, kw_only=True)
class UpdateRequest(_Request):
    physical_resource_id: str  # ROS always sends it with an Update
    old_properties: Properties
    request_type: Literal["Update"] = "Update"


@dataclass(frozen=True, kw_only=True)
class DeleteRequest(_Request):
    physical_resource_id: str | None  # ROS documents it, but after a timed-out Create it may have none
    properties_problem: str | None = None  # why ResourceProperties is no object (then properties is {})
    request_type: Literal["Delete"] = "Delete"

    @property
    def answer_id(self) -> str:
        return self.physical_resource_id or self.failed_create_id

    @property
    def failed_create(self) -> bool:
        """The physical id is the marker of a Create this provider answered FAILED: nothing of it exists."""
        return (self.physical_resource_id or "").startswith(FAILED_CREATE_PREFIX)


RosRequest = CreateRequest | UpdateRequest | DeleteRequest


@dataclass(frozen=True)
class Answer:
    status: Literal["SUCCESS", "FAILED"]
    physical_resource_id: str
    reason: str | None = None
    data: Mapping[str, str] | None = None


def decode_event(event: object) -> dict[str, object]:
    """FC hands python handlers the event as bytes."""
    if isinstance(event, (bytes, bytearray)):
        try:
            event = event.decode("utf-8")
        except UnicodeDecodeError:
            raise Unanswerable("the event is not UTF-8 text") from None
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as error:
            raise Unanswerable(f"the event is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise Unanswerable("the event is not a JSON object")
    return event


def parse_request(event: Mapping[str, object]) -> RosRequest:
    """Read a ROS request; raises InvalidRequest naming the first missing or malformed field."""

    def text(name: str, required: bool = True) -> str:
        value = event.get(name)
        if value is None or value == "":
            if required:
                raise InvalidRequest(f"the request has no {name}")
            return ""
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise InvalidRequest(f"the request's {name} must be a string")
        return str(value)

    def properties(name: str) -> Properties:
        value = event.get(name)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise InvalidRequest(f"the request's {name} must be a JSON object of properties")
        return value

    request_type = text("RequestType")
    event, problem = _deletable(event) if request_type == "Delete" else (event, None)
    common: dict[str, Any] = {
        "response_url": text("ResponseURL"),
        "intranet_response_url": text("IntranetResponseURL", required=False) or None,
        "stack_id": text("StackId"),
        "stack_name": text("StackName", required=False),
        "request_id": text("RequestId"),
        "logical_resource_id": text("LogicalResourceId"),
        "region_id": text("RegionId", required=False),
        "properties": properties("ResourceProperties"),
        "raw": event,
    }
    if request_type == "Create":
        return CreateRequest(**common)
    if request_type == "Update":
        return UpdateRequest(
            physical_resource_id=text("PhysicalResourceId"),
            old_properties=properties("OldResourceProperties"),
            **common,
        )
    if request_type == "Delete":
        return DeleteRequest(
            physical_resource_id=text("PhysicalResourceId", required=False) or None,
            properties_problem=problem,
            **common,
        )
    raise InvalidRequest(f"RequestType must be one of {', '.join(REQUEST_TYPES)}, got {request_type[:40]!r}")


def _deletable(event: Mapping[str, object]) -> tuple[Mapping[str, object], str | None]:
    """A Delete must always be able to let go: ResourceProperties of a shape no Create could have used mean that
    nothing was made. They are read as none, and why is kept."""
    if isinstance(event.get("ResourceProperties"), (Mapping, type(None))):
        return event, None
    return {**event, "ResourceProperties": None}, "the request's ResourceProperties is not a JSON object of properties"


def partial_request(event: Mapping[str, object]) -> DeleteRequest:
    """What can be read of a malformed request, to send it a FAILED answer anyway."""

    def text(name: str) -> str:
        value = event.get(name)
        return value if isinstance(value, str) else ""

    return DeleteRequest(
        response_url=text("ResponseURL"),
        intranet_response_url=text("IntranetResponseURL") or None,
        stack_id=text("StackId"),
        stack_name=text("StackName"),
        request_id=text("RequestId"),
        logical_resource_id=text("LogicalResourceId"),
        region_id=text("RegionId"),
        properties={},
        physical_resource_id=text("PhysicalResourceId") or None,
        raw=event,
    )


def client_token(stack_id: str, logical_resource_id: str, request_id: str) -> str:
    """The same request always maps to the same CopyImage token: ASCII, 64 characters at most."""
    return hashlib.sha256(f"{stack_id}\n{logical_resource_id}\n{request_id}".encode()).hexdigest()


def response_body(request: RosRequest, answer: Answer) -> bytes:
    """The JSON body ROS expects, within its size limits; a long Reason is cut from its end."""
    body: dict[str, object] = {
        "Status": answer.status,
        "PhysicalResourceId": _fit(answer.physical_resource_id, MAX_PHYSICAL_ID_BYTES),
        "StackId": request.stack_id,
        "RequestId": request.request_id,
        "LogicalResourceId": request.logical_resource_id,
    }
    if answer.reason:
        body["Reason"] = answer.reason
    if answer.data:
        body["Data"] = dict(answer.data)
    encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES and answer.reason:
        # Keep the longest start of the reason that fits once JSON-escaped (binary search on its length).
        low, high = 0, min(len(answer.reason), MAX_BODY_BYTES)
        while low < high:
            middle = (low + high + 1) // 2
            body["Reason"] = answer.reason[:middle] + _TRUNCATED
            if len(_encode(body)) <= MAX_BODY_BYTES:
                low = middle
            else:
                high = middle - 1
        body["Reason"] = answer.reason[:low] + _TRUNCATED
        encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES:
        raise InvalidRequest("the request's ids are too long for a 4096-byte answer")
    return encoded


def _encode(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fit(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
