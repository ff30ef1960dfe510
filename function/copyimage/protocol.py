"""The ROS custom resource protocol: what a request holds and what a correct answer looks like.

Pure functions only; sending the answer is outbound.py's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from copyimage.errors import InvalidRequest

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID_BYTES = 255
REQUEST_TYPES = ("Create", "Update", "Delete")
# A failed Create still needs a PhysicalResourceId; the Delete that may follow recognises this prefix.
FAILED_CREATE_PREFIX = "copyimage-failed-"
_TRUNCATED = " [...]"


@dataclass(frozen=True)
class RosRequest:
    request_type: str
    response_url: str
    intranet_response_url: str | None
    stack_id: str
    stack_name: str
    request_id: str
    logical_resource_id: str
    region_id: str
    resource_properties: object
    old_resource_properties: object = None
    physical_resource_id: str | None = None
    raw: Mapping = field(default_factory=dict, repr=False, compare=False)  # forwarded to later invocations


@dataclass(frozen=True)
class Answer:
    status: str  # SUCCESS | FAILED
    physical_resource_id: str
    reason: str | None = None
    data: Mapping[str, str] | None = None


def decode_event(event: object) -> dict:
    """FC hands python handlers the event as bytes."""
    if isinstance(event, (bytes, bytearray)):
        event = event.decode("utf-8")
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except json.JSONDecodeError as error:
            raise InvalidRequest(f"the event is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise InvalidRequest("the event is not a JSON object")
    return event


def response_url_of(event: Mapping) -> str:
    """The one field without which no answer is possible."""
    url = event.get("ResponseURL")
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest("the request has no ResponseURL, so no answer can be sent")
    return url


def parse_request(event: Mapping) -> RosRequest:
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

    request_type = text("RequestType")
    if request_type not in REQUEST_TYPES:
        raise InvalidRequest(f"RequestType must be one of {', '.join(REQUEST_TYPES)}, got {request_type!r}")
    physical_id = text("PhysicalResourceId", required=False) or None
    return RosRequest(
        request_type=request_type,
        response_url=response_url_of(event),
        intranet_response_url=text("IntranetResponseURL", required=False) or None,
        stack_id=text("StackId"),
        stack_name=text("StackName", required=False),
        request_id=text("RequestId"),
        logical_resource_id=text("LogicalResourceId"),
        region_id=text("RegionId", required=False),
        resource_properties=event.get("ResourceProperties"),
        old_resource_properties=event.get("OldResourceProperties"),
        physical_resource_id=physical_id,
        raw=event,
    )


def failed_create_id(request_id: str) -> str:
    """The PhysicalResourceId of a Create that produced no image."""
    return _fit(FAILED_CREATE_PREFIX + request_id, MAX_PHYSICAL_ID_BYTES)


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
        low, high = 0, len(answer.reason)
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


def _encode(body: Mapping) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fit(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")
