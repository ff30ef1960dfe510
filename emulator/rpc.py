"""The RPC envelope the ECS and ROS API stand-ins share, as Alibaba Cloud's RPC-style APIs answer.

An SDK sends ``POST /`` with the action in the ``x-acs-action`` header (older RPC clients: ``Action=`` in the
query), the version in ``x-acs-version`` (or ``Version=``) and the parameters in the query string and the
form-encoded body together (a name in both: the body's). Booleans arrive as Python spells them (``True``): any
case is accepted.

:class:`RpcEnvelope` does what every action shares, in this order: refuse a request no endpoint would serve (the
connection closes unanswered), verify the ``ACS3-HMAC-SHA256`` signature (:mod:`emulator.signing`), run the
service's pre-action hook (injected faults), check the version, find the action (404 ``InvalidAction.NotFound``),
run it, and shape the reply: ``{"RequestId", ...result}`` or the error JSON ``{"RequestId", "HostId", "Code",
"Message"}`` (with ``Recommend`` for a product that gives one). Every request is recorded as a :class:`Call`.
:class:`Params` holds the parsing rules both services share; each service words its own parameter errors.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from emulator.clock import VirtualClock
from emulator.credentials import CredentialStore
from emulator.errors import ApiError
from emulator.http import DROP, Reply, Request, json_reply
from emulator.signing import AuthError, NonceRegistry, verify_acs3, verify_rpc_v1

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Call:
    """One API request as a stand-in saw it (tests look at these)."""

    action: str
    params: dict[str, str]
    region: str | None
    at: float  # virtual time the request arrived
    status: int  # 0: the connection was closed without an answer
    error_code: str | None
    access_key_id: str | None
    body_params: tuple[str, ...] = ()  # the names that came in the form body rather than the query


class EmptyReply(Exception):
    """Raised before an action runs (an injected fault): answer 200 with nothing but a RequestId."""


class Params:
    """The decoded parameters of one request, with the parsing rules every action shares.

    A service words its own errors by overriding :meth:`missing`, :meth:`bad_boolean` and :meth:`bad_integer`.
    """

    def __init__(self, values: dict[str, str], body_names: tuple[str, ...] = ()) -> None:
        self.values = values
        self.body_names = body_names
        self.region: str | None = values.get("RegionId") or None  # recorded with the call; an action may set it

    # ------------------------------------------------------------------ errors, worded per service

    def missing(self, name: str) -> ApiError:
        return ApiError(400, "MissingParameter", f"The input parameter {name} should be specified.")

    def bad_boolean(self, name: str, value: str) -> ApiError:
        return ApiError(400, "InvalidParameter", f"The specified parameter {name} is invalid: {value!r}.")

    def bad_integer(self, name: str, value: str, low: int, high: int | None) -> ApiError:
        return ApiError(400, "InvalidParameter", f"The specified parameter {name} is invalid: {value!r}.")

    # ------------------------------------------------------------------ parsing

    def get(self, name: str) -> str | None:
        """The value, or None when absent or empty."""
        value = self.values.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise self.missing(name)
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise self.bad_boolean(name, value)
        return value.lower() == "true"

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        value = self.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.bad_integer(name, value, low, high) from None
        if number < low or (high is not None and number > high):
            raise self.bad_integer(name, value, low, high)
        return number

    def listed(self, prefix: str, keep_empty: bool = False) -> list[str]:
        """``Prefix.1``, ``Prefix.2``, … in index order (empty values dropped unless ``keep_empty``)."""
        pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)")
        found = {
            int(m.group(1)): v for k, v in self.values.items() if (m := pattern.fullmatch(k)) and (v or keep_empty)
        }
        return [found[index] for index in sorted(found)]

    def indexed(self, prefix: str, fields: tuple[str, ...]) -> dict[int, dict[str, str]]:
        """``Prefix.N.Field`` entries by index N, each a dict of the fields given."""
        pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.({'|'.join(map(re.escape, fields))})")
        entries: dict[int, dict[str, str]] = {}
        for key, value in self.values.items():
            if match := pattern.fullmatch(key):
                entries.setdefault(int(match.group(1)), {})[match.group(2)] = value
        return entries


P = TypeVar("P", bound=Params)
Handler = Callable[[P], Mapping[str, object]]


def decode_params(request: Request) -> tuple[dict[str, str], tuple[str, ...]]:
    """Query and form-body parameters together (a name in both: the body's), and the names from the body."""
    from urllib.parse import parse_qsl

    values = dict(parse_qsl(request.query, keep_blank_values=True))
    body: list[tuple[str, str]] = []
    if request.body and request.headers.get("content-type", "").startswith(FORM_CONTENT_TYPE):
        body = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        values.update(body)
    return values, tuple(name for name, _ in body)


def claimed_key_id(headers: Mapping[str, str], values: Mapping[str, str]) -> str | None:
    """The AccessKey id a request claims to be signed with (recorded even when the signature is refused)."""
    match = re.search(r"Credential=([^,\s]+)", headers.get("authorization", ""))
    return match.group(1) if match else values.get("AccessKeyId")


class RpcEnvelope(Generic[P]):
    """Signature, version, dispatch, error JSON and call record for one RPC-style service.

    ``actions`` maps an action name to a handler taking the service's :class:`Params`; ``params`` builds them;
    ``served`` says whether an endpoint serves a region (False: the connection closes unanswered);
    ``before_action`` runs after the signature check (fault injection); ``lock`` is held while a handler runs
    (None: the handlers lock what they need).
    """

    def __init__(
        self,
        clock: VirtualClock,
        credentials: CredentialStore,
        *,
        version: str,
        host_id: str,
        actions: Mapping[str, Handler[P]],
        params: Callable[[dict[str, str], tuple[str, ...]], P],
        recommend_product: str | None = None,
        served: Callable[[str], bool] | None = None,
        before_action: Callable[[str], None] | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self.clock = clock
        self.credentials = credentials
        self.version = version
        self.host_id = host_id
        self.actions = dict(actions)
        self.recommend_product = recommend_product
        self.calls: list[Call] = []
        self._params = params
        self._served = served
        self._before_action = before_action
        self._handler_lock = lock
        self._nonces = NonceRegistry()
        self._calls_lock = threading.Lock()

    def handle(self, request: Request) -> Reply:
        values, body_names = decode_params(request)
        params = self._params(values, body_names)
        action = request.headers.get("x-acs-action") or values.get("Action", "")
        arrived = self.clock.now()
        request_id = str(uuid.uuid4()).upper()
        key_id = claimed_key_id(request.headers, values)
        if params.region is not None and self._served is not None and not self._served(params.region):
            # No endpoint serves it: as for a <product>.<region>.aliyuncs.com that does not resolve, no answer.
            self._record(Call(action, dict(values), params.region, arrived, 0, "ConnectionDropped", key_id))
            return DROP
        status, payload, code = self._answer(request, params, action, request_id)
        self._record(Call(action, dict(values), params.region, arrived, status, code, key_id, body_names))
        return json_reply(status, payload, {"x-acs-request-id": request_id})

    def _answer(
        self, request: Request, params: P, action: str, request_id: str
    ) -> tuple[int, dict[str, object], str | None]:
        try:
            if "authorization" not in request.headers and "Signature" in params.values:
                verify_rpc_v1(request.method, params.values, self.credentials, self._nonces)
            else:
                verify_acs3(request.signed(), self.credentials, self._nonces)
            if self._before_action is not None:
                self._before_action(action)
            version = request.headers.get("x-acs-version") or params.values.get("Version") or self.version
            if version != self.version:
                raise ApiError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            handler = self.actions.get(action)
            if handler is None:
                message = "Specified api is not found, please check your url and method."
                raise ApiError(404, "InvalidAction.NotFound", message)
            with self._handler_lock if self._handler_lock is not None else contextlib.nullcontext():
                result = handler(params)
            return 200, {"RequestId": request_id, **result}, None
        except (AuthError, ApiError) as error:
            return error.status, self.error_payload(error, request_id), error.code
        except EmptyReply:
            return 200, {"RequestId": request_id}, None

    def error_payload(self, error: ApiError, request_id: str) -> dict[str, object]:
        payload: dict[str, object] = {
            "RequestId": request_id,
            "HostId": self.host_id,
            "Code": error.code,
            "Message": error.message,
        }
        if self.recommend_product is not None:
            payload["Recommend"] = (
                f"https://api.aliyun.com/troubleshoot?q={error.code}&product={self.recommend_product}"
            )
        return payload

    def _record(self, call: Call) -> None:
        with self._calls_lock:
            self.calls.append(call)

    def calls_to(self, action: str) -> list[Call]:
        with self._calls_lock:
            return [call for call in self.calls if call.action == action]

    def reset_calls(self) -> None:
        with self._calls_lock:
            self.calls.clear()
