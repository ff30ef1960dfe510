"""The Function Compute stand-in's wire: the HTTP APIs over :class:`~emulator.fc.backend.FcBackend`.

- FC 3.0: ``POST /2023-03-30/functions/{name}/invocations[?qualifier=]`` (InvokeFunction),
  ``PUT /2023-03-30/functions/{name}/async-tasks/{task}/stop`` (StopAsyncTask) and
  ``GET /2023-03-30/functions/{name}`` (GetFunction), signed ACS3-HMAC-SHA256 (``alibabacloud_fc20230330``);
  errors ``{"Code", "Message", "RequestId"}``;
- FC 2.0: ``POST /2016-08-15/services/{svc}[.{qualifier}]/functions/{fn}/invocations``, signed
  ``FC <id>:<signature>`` (``fc2``); errors ``{"ErrorCode", "ErrorMessage"}`` plus ``x-fc-request-id``.

Each handler checks the signature, the method and the names, then calls the backend; a refusal is raised as an
:class:`~emulator.errors.ApiError` and shaped by the API's one error-reply builder.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, unquote

from emulator.credentials import CredentialStore
from emulator.errors import ApiError
from emulator.fc.backend import FcBackend
from emulator.fc.model import TASK_HEADERS, UNHANDLED_ERROR_TYPE, FcApiError, InvocationFailed, new_request_id
from emulator.http import Reply, Request, json_reply
from emulator.signing import NonceRegistry, verify_acs3, verify_fc2

_FC3_PATH = re.compile(r"^/2023-03-30/functions/(?P<function>[^/]+)/invocations/?$")
_FC3_FUNCTION_PATH = re.compile(r"^/2023-03-30/functions/(?P<function>[^/]+)/?$")  # GetFunction
_FC3_STOP_TASK_PATH = re.compile(r"^/2023-03-30/functions/(?P<function>[^/]+)/async-tasks/(?P<task>[^/]+)/stop/?$")
_FC2_PATH = re.compile(r"^/2016-08-15/services/(?P<service>[^/]+)/functions/(?P<function>[^/]+)/invocations/?$")


def fc3_error(error: ApiError, request_id: str) -> Reply:
    """FC 3.0's error reply."""
    body = {"Code": error.code, "Message": error.message, "RequestId": request_id}
    return json_reply(error.status, body, {"x-fc-request-id": request_id})


def fc2_error(error: ApiError, request_id: str) -> Reply:
    """FC 2.0's error reply."""
    body = {"ErrorCode": error.code, "ErrorMessage": error.message}
    return json_reply(error.status, body, {"x-fc-request-id": request_id})


def _check_method(request: Request, method: str) -> None:
    if request.method != method:
        raise FcApiError(405, "MethodNotAllowed", f"{request.method} is not allowed")


class FcApi:
    """Routes a request to its handler; ``nonces`` remembers the FC 3.0 signatures' nonces."""

    def __init__(self, fc: FcBackend, credentials: CredentialStore) -> None:
        self.fc = fc
        self.credentials = credentials
        self.nonces = NonceRegistry()

    def handle(self, request: Request) -> Reply:
        match = _FC3_PATH.match(request.path)
        if match:
            return self.invoke_fc3(request, unquote(match["function"]))
        match = _FC3_STOP_TASK_PATH.match(request.path)
        if match:
            return self.stop_async_task(request, unquote(match["function"]), unquote(match["task"]))
        match = _FC3_FUNCTION_PATH.match(request.path)
        if match:
            return self.get_function(request, unquote(match["function"]))
        match = _FC2_PATH.match(request.path)
        if match:
            service, _, qualifier = unquote(match["service"]).partition(".")
            return self.invoke_fc2(request, service, qualifier or None, unquote(match["function"]))
        return json_reply(
            404, {"Code": "PathNotFound", "Message": f"no route for {request.path}", "RequestId": new_request_id()}
        )

    # ------------------------------------------------------------------ FC 3.0

    def invoke_fc3(self, request: Request, function: str) -> Reply:
        """FC 3.0 InvokeFunction."""
        request_id = new_request_id()
        try:
            self._check_fc3(request, "POST", function)
            qualifiers = parse_qs(request.query).get("qualifier")
            qualifier = qualifiers[0] if qualifiers else None
            if qualifier not in (None, "", "LATEST", self.fc.spec.qualifier):
                raise FcApiError(404, "AliasNotFound", f"alias '{qualifier}' of function '{function}' does not exist")
            return self._invoke(request, "fc3")
        except ApiError as error:
            return fc3_error(error, request_id)

    def stop_async_task(self, request: Request, function: str, task_id: str) -> Reply:
        """FC 3.0 StopAsyncTask (PUT /2023-03-30/functions/{functionName}/async-tasks/{taskId}/stop)."""
        request_id = new_request_id()
        try:
            self._check_fc3(request, "PUT", function)
            self.fc.stop_task(task_id)
        except ApiError as error:
            return fc3_error(error, request_id)
        return Reply(200, b"", {"x-fc-request-id": request_id})

    def get_function(self, request: Request, function: str) -> Reply:
        """FC 3.0 GetFunction (GET /2023-03-30/functions/{functionName}): what a deploy check needs of it."""
        request_id = new_request_id()
        try:
            self._check_fc3(request, "GET", function)
        except ApiError as error:
            return fc3_error(error, request_id)
        spec = self.fc.spec
        body = {
            "functionName": spec.name,
            "functionArn": self.fc.service_token,
            "runtime": spec.runtime,
            "codeChecksum": spec.code_checksum,
            "handler": spec.handler,
            "memorySize": spec.memory,
            "timeout": int(spec.timeout),
            "state": "Active",
        }
        return json_reply(200, body, {"x-fc-request-id": request_id})

    def _check_fc3(self, request: Request, method: str, function: str) -> None:
        """The signature, the method, and that the function is this FC 3.0 function."""
        verify_acs3(request.signed(), self.credentials, self.nonces)
        _check_method(request, method)
        if not self.fc.deployed or self.fc.spec.service is not None or function != self.fc.spec.name:
            raise FcApiError(404, "FunctionNotFound", f"function '{function}' does not exist")

    # ------------------------------------------------------------------ FC 2.0

    def invoke_fc2(self, request: Request, service: str, qualifier: str | None, function: str) -> Reply:
        """FC 2.0 InvokeFunction."""
        request_id = new_request_id()
        try:
            verify_fc2(request.signed(), self.credentials)
            _check_method(request, "POST")
            if self.fc.spec.service is None or service != self.fc.spec.service:
                raise FcApiError(404, "ServiceNotFound", f"service '{service}' does not exist")
            if function != self.fc.spec.name:
                raise FcApiError(
                    404, "FunctionNotFound", f"function '{function}' does not exist in service '{service}'"
                )
            if qualifier not in (None, "LATEST", self.fc.spec.qualifier):
                raise FcApiError(404, "AliasNotFound", f"alias '{qualifier}' of service '{service}' does not exist")
            return self._invoke(request, "fc2")
        except ApiError as error:
            return fc2_error(error, request_id)

    # ------------------------------------------------------------------ both

    def _invoke(self, request: Request, api: str) -> Reply:
        """Invoke with the request's headers; raises :class:`FcApiError` for what FC refuses."""
        invocation_type = request.headers.get("x-fc-invocation-type", "Sync").strip() or "Sync"
        try:
            request_id, result = self.fc.invoke(
                request.body,
                invocation_type,
                _async_delay(request),
                api,
                task_id=request.headers.get(TASK_HEADERS[api]),
            )
        except InvocationFailed as failure:
            headers = {"x-fc-request-id": failure.request_id, "x-fc-error-type": UNHANDLED_ERROR_TYPE}
            return Reply(200, json.dumps(failure.body()).encode(), {"Content-Type": "application/json", **headers})
        if invocation_type.lower() == "async":
            return Reply(202, b"", {"x-fc-request-id": request_id})
        headers = {"Content-Type": "application/octet-stream", "x-fc-request-id": request_id}
        return Reply(200, _encode_result(result), headers)


def _async_delay(request: Request) -> int | None:
    """The ``x-fc-async-delay`` header's whole seconds; None without the header."""
    raw_delay = request.headers.get("x-fc-async-delay")
    if raw_delay is None:
        return None
    text = raw_delay.strip()
    if not re.fullmatch(r"[0-9]+", text):
        raise FcApiError(400, "InvalidArgument", f"x-fc-async-delay must be an integer, got {raw_delay!r}")
    return int(text)


def _encode_result(result: object) -> bytes:
    if result is None:
        return b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    if isinstance(result, str):
        return result.encode()
    try:
        return json.dumps(result).encode()
    except (TypeError, ValueError):
        return str(result).encode()
