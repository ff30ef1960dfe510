"""The ROS stand-in's plain state: stacks, their resources and events, requests sent and answers taken."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from emulator.clock import Signal, Task

MAX_BODY_BYTES = 4096  # "Custom resource response objects": at most 4096 bytes
MAX_PHYSICAL_ID_BYTES = 255  # the same page: PhysicalResourceId at most 255 bytes
CUSTOM_TYPES = ("ALIYUN::ROS::CustomResource",)
PSEUDO_REGION, PSEUDO_ACCOUNT = "ALIYUN::Region", "ALIYUN::AccountId"
DEFAULT_RESOURCE_TIMEOUT = 60.0  # seconds: the custom resource Timeout's documented default
UPDATABLE_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_FAILED")
# What GetStackResource shows for a custom resource while its provider runs is not documented: switches.
RESOURCE_TYPES_SHOWN = ("declared", "generic")  # the template's Custom::X, or ALIYUN::ROS::CustomResource
RESOURCE_STATUSES_SHOWN = ("in_progress", "previous")  # <OPERATION>_IN_PROGRESS, or the status before it
Template = dict[str, Any]  # a parsed template: JSON or YAML data, checked by emulator.ros.templates


class TemplateError(Exception):
    """The template cannot be run by this stand-in."""


class ResourceFailed(Exception):
    """A resource ROS creates itself could not be created, updated or deleted; the message is the event's reason."""


class ParameterError(TemplateError):
    """The stack's parameter values do not fit the template's Parameters."""


class StackStateError(Exception):
    """The stack's status does not allow the operation (``busy``: another operation is still running)."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


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
        parsed = json_object(self.body)
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
    previous_status: str = "INIT_COMPLETE"  # before the operation in progress (resource_status_shown="previous")


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
    operation: Task | None = None  # the running operation
    region: str = ""
    played: bool = False  # a test plays ROS for it: made by new_request, not by a stack operation

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")


def json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
