"""The ROS stand-in's side of one custom resource request: the complete request ROS documents, an unguessable
ResponseURL (public and intranet), and the answers taken there, each checked against ROS's documented rules
("Custom resource response objects"). Faults on the response endpoint are switches for tests."""

from __future__ import annotations

import secrets
import socket
import threading
import uuid
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

from emulator.clock import VirtualClock
from emulator.http import Reply, Request, json_reply
from emulator.ros.models import MAX_BODY_BYTES, MAX_PHYSICAL_ID_BYTES, Answer, Pending, json_object


class FunctionService(Protocol):
    """What ROS needs of FC: the account, the ServiceToken it serves, and invoking the function."""

    @property
    def account_id(self) -> str: ...

    @property
    def service_token(self) -> str: ...

    def invoke(self, payload: bytes, invocation_type: str = ...) -> tuple[str, object]: ...


class ResponseUrls:
    """Requests sent and answers taken (a part of :class:`~emulator.ros.standin.RosStandIn`)."""

    clock: VirtualClock
    fc: FunctionService
    region: str
    caller_id: str
    accept_late_answers: bool
    public_url_reachable: bool

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.violations: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._closed_port: int | None = None
        self._answer_faults: list[int] = []  # HTTP statuses to answer the next POSTs with
        self._answers_down_until: tuple[float, int] | None = None  # (virtual time, status): an outage

    def response_base(self) -> str:  # pragma: no cover - the stand-in's own URL
        raise NotImplementedError

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

    def _response_url(self, kind: str, stack_id: str, request_id: str, token: str) -> str:
        base = self.response_base()
        if kind == "public" and not self.public_url_reachable:
            base = f"http://127.0.0.1:{self._unreachable_port()}"
        return f"{base}/{kind}/stacks/{stack_id}/requests/{request_id}?Expires=43200&Signature={token}"

    def _unreachable_port(self) -> int:
        if self._closed_port is None:
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
        parsed = json_object(request.body)
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
        answer = json_object(http.body)
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


def _differs(answer: Mapping[str, Any], previous: Mapping[str, Any]) -> bool:
    """Two answers to one request contradict each other when status, physical id or data differ."""
    return any(answer.get(key) != previous.get(key) for key in ("Status", "PhysicalResourceId", "Data"))
