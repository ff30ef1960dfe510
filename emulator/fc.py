"""Function Compute stand-in: runs the provider's Python handler in-process, as FC would run it.

It serves both invocation APIs the project may meet:

- FC 3.0: ``POST /2023-03-30/functions/{name}/invocations[?qualifier=]``, signed ACS3-HMAC-SHA256
  (``alibabacloud_fc20230330``); errors ``{"Code", "Message", "RequestId"}``;
- FC 2.0: ``POST /2016-08-15/services/{svc}[.{qualifier}]/functions/{fn}/invocations``, signed
  ``FC <id>:<signature>`` (``fc2``); errors ``{"ErrorCode", "ErrorMessage"}`` plus ``x-fc-request-id``.

A function is either an FC 3.0 function or lives in an FC 2.0 service (``FunctionSpec.service``); each path
only serves its own kind. Every run is an actor of the shared :class:`VirtualClock`: a Sync run happens at once
(inline when the caller is itself inside the simulation), async events wait for ``x-fc-async-delay`` virtual
seconds, may overlap one another as FC instances do, and are retried after an unhandled error up to
``max_async_retries`` more times, keeping the request id. The delay must be within FC 3.0's documented (0, 3600)
seconds on the FC 3.0 path, and within FC 2.0's [0, 3600] on the FC 2.0 path. Faults can be injected: crashes
before/after the handler, duplicate deliveries of async events (FC's delivery is at least once), and, as a
pessimistic switch, every async event delivered once more long after it first ran.

The handler runs in this process, so the stand-in sets the process environment the FC runtime would set
(``FC_*`` variables and the function's own) on ``start`` and restores ``os.environ`` and ``sys.path`` on
``stop``; ``FunctionSpec.install_clock`` points the function's own clock at the virtual one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, unquote

from emulator.clock import VirtualClock
from emulator.credentials import AccessKey, CredentialStore
from emulator.errors import ApiError
from emulator.http import Reply, Request, StandIn, json_reply
from emulator.signing import AuthError, NonceRegistry, verify_acs3, verify_fc2

REPO_ROOT = Path(__file__).resolve().parent.parent
ASYNC_PAYLOAD_LIMIT = 128 * 1024  # bytes, FC's limit for an asynchronous invocation
MAX_ASYNC_DELAY = 3600  # seconds: FC 3.0 documents (0, 3600) for x-fc-async-delay, FC 2.0 [0, 3600]
MAX_ASYNC_RETRIES = 8  # maxAsyncRetryAttempts is 0..8
UNHANDLED_ERROR_TYPE = "UnhandledInvocationError"

_FC3_PATH = re.compile(r"^/2023-03-30/functions/(?P<function>[^/]+)/invocations/?$")
_FC3_FUNCTION_PATH = re.compile(r"^/2023-03-30/functions/(?P<function>[^/]+)/?$")  # GetFunction
_FC3_STOP_TASK_PATH = re.compile(r"^/2023-03-30/functions/(?P<function>[^/]+)/async-tasks/(?P<task>[^/]+)/stop/?$")
# Task ids (FC's "asynchronous tasks"): a letter or _ first, then letters, digits, _ and -, at most 128 characters.
_TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
TASK_HEADERS = {"fc3": "x-fc-async-task-id", "fc2": "x-fc-stateful-async-invocation-id"}
_FC2_PATH = re.compile(r"^/2016-08-15/services/(?P<service>[^/]+)/functions/(?P<function>[^/]+)/invocations/?$")


@dataclass
class FunctionSpec:
    name: str = "ros-copy-image"
    code_dir: Path = REPO_ROOT / "function"  # holds index.py; the handler is imported from here
    handler: str = "index.handler"  # module.function
    timeout: float = 300.0  # seconds, virtual
    memory: int = 256
    environment: dict[str, str] = field(default_factory=dict)  # the function's own variables
    service: str | None = None  # set: the function lives in an FC 2.0 service of that name
    qualifier: str = "LATEST"
    max_async_retries: int = 3  # maxAsyncRetryAttempts
    credentials_in_context: bool = True  # python3.10 puts the role's STS credentials into context.credentials
    credentials_in_environment: bool = False  # also set ALIBABA_CLOUD_* from them, as FC does for a role
    # Points the function's own clock at the virtual one; returns what undoes it (called on stop).
    install_clock: Callable[[VirtualClock], Callable[[], None]] | None = None


@dataclass
class Invocation:
    """One run of the handler; every retry or duplicate delivery of an async event is its own Invocation."""

    request_id: str
    invocation_type: str  # 'Sync' | 'Async'
    api: str  # 'fc3' | 'fc2' | 'direct'
    attempt: int  # 1-based; a retry of an async event has attempt > 1
    payload: bytes
    scheduled_at: float  # virtual time the run was queued: the invoke (Sync, first delivery) or the failure (retry)
    started_at: float  # virtual
    billed_seconds: float = 0.0  # virtual duration of the handler call
    cpu_seconds: float = 0.0  # CPU time the handler's own thread used (the stand-ins' work is not in it)
    error: str | None = None  # repr of the unhandled exception (or of the injected fault / timeout)
    result: object = None
    timed_out: bool = False  # ran longer than spec.timeout
    finished_at: float | None = None  # virtual; None while the run is still going
    delivery: str = "first"  # first | duplicate (FC's at-least-once) | retry (after a failed run) | replay (late)
    task_id: str | None = None  # the asynchronous task it belongs to, when the invoker named one


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str


@dataclass(frozen=True)
class FunctionMeta:
    name: str
    handler: str
    memory: int
    timeout: float


@dataclass(frozen=True)
class ServiceMeta:
    name: str
    qualifier: str
    log_project: str = ""
    log_store: str = ""
    version_id: str = ""


@dataclass(frozen=True)
class Context:
    """What FC's python runtime passes as ``context``."""

    request_id: str
    credentials: Credentials | None
    function: FunctionMeta
    service: ServiceMeta | None
    region: str
    account_id: str
    tracing: object = None


class FcApiError(ApiError):
    """A request FC refuses before running anything (bad header, payload too large...)."""


class InvocationFailed(Exception):
    """A synchronous run ended with an unhandled error; ``body()`` is what FC answers with."""

    def __init__(self, request_id: str, error_type: str, error_message: str, stack_trace: list[str]) -> None:
        super().__init__(f"{error_type}: {error_message}")
        self.request_id = request_id
        self.error_type = error_type
        self.error_message = error_message
        self.stack_trace = stack_trace

    def body(self) -> dict[str, object]:
        return {"errorMessage": self.error_message, "errorType": self.error_type, "stackTrace": self.stack_trace}


class InjectedFault(RuntimeError):
    """Raised by ``fail_next``: the instance died."""


class FunctionTimedOut(Exception):
    """The run took longer than the function's timeout."""


@dataclass
class _Event:
    """One delivery of an invocation: what runs, and why (see Invocation.delivery)."""

    request_id: str
    payload: bytes
    api: str
    attempt: int
    scheduled_at: float  # virtual
    delivery: str = "first"  # see Invocation.delivery
    task_id: str | None = None
    generation: int = 0  # the stand-in's reset count when it was queued: a stopped task's leftover is dropped


def _check_environment(spec: FunctionSpec) -> None:
    reserved = sorted(name for name in spec.environment if name.upper().startswith("FC_"))
    if reserved:
        raise ValueError(f"the FC_ prefix is reserved for FC's own variables: {reserved}")


def _new_request_id() -> str:
    return str(uuid.uuid4())


def check_async_delay(delay: float, api: str) -> None:
    """FC 3.0 documents x-fc-async-delay as (0, 3600) seconds, FC 2.0 as [0, 3600]; what FC answers outside them
    is not documented: this stand-in refuses with 400 InvalidArgument."""
    if api == "fc2" or api == "direct":
        valid = 0 <= delay <= MAX_ASYNC_DELAY
        documented = "[0, 3600]"
    else:
        valid = 0 < delay < MAX_ASYNC_DELAY
        documented = "(0, 3600)"
    if not valid:
        raise FcApiError(400, "InvalidArgument", f"x-fc-async-delay must be within {documented} seconds, got {delay:g}")


class FcStandIn(StandIn):
    def __init__(
        self,
        clock: VirtualClock,
        credentials: CredentialStore,
        function: FunctionSpec,
        region: str = "cn-hangzhou",
        account_id: str = "1234567890123456",
        port: int = 0,
        listener: socket.socket | None = None,
    ) -> None:
        super().__init__(clock, port, listener)
        if not 0 <= function.max_async_retries <= MAX_ASYNC_RETRIES:
            raise ValueError(f"max_async_retries must be within 0..{MAX_ASYNC_RETRIES}")
        _check_environment(function)
        self.credentials = credentials
        self.spec = function
        self.region = region
        self.account_id = account_id
        self.nonces = NonceRegistry()
        self.invocations: list[Invocation] = []
        self.async_delays: list[float] = []
        self.instance_id = f"c-{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(6)}"
        self.function_credentials: AccessKey | None = None  # the role's STS key, issued on start
        self.retry_backoff_seconds = 1.0  # FC's interval between retries of a failed run is not documented
        self.redeliver_after: float | None = None  # pessimistic switch: deliver every async event again this late

        self._lock = threading.Lock()  # invocations, faults, counters
        self._pending = 0  # async events queued or running
        self._faults: list[str] = []
        self._duplicates: list[float] = []  # gap (virtual seconds) of each pending duplicate delivery
        self._duplicate_every: float | None = None  # gap: deliver every accepted async event twice
        # task id -> Enqueued | Running | Succeeded | Failed | Stopped: FC refuses a task id it has seen (409)
        self.tasks: dict[str, str] = {}
        self._queued: dict[str, int] = {}  # task id -> its deliveries still queued
        self._generation = 0  # counts resets
        self._handler: Any = None
        self._module_name: str | None = None
        self._saved_environ: dict[str, str] | None = None
        self._saved_path: list[str] | None = None
        self._uninstall_clock: Callable[[], None] | None = None
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def service_token(self) -> str:
        prefix = f"acs:fc:{self.region}:{self.account_id}"
        if self.spec.service:
            return f"{prefix}:services/{self.spec.service}/functions/{self.spec.name}"
        return f"{prefix}:functions/{self.spec.name}"

    def function_environment(self) -> dict[str, str]:
        spec = self.spec
        env = {
            "FC_FUNCTION_NAME": spec.name,
            "FC_REGION": self.region,
            "FC_ACCOUNT_ID": self.account_id,
            "FC_FUNCTION_HANDLER": spec.handler,
            "FC_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "FC_INSTANCE_ID": self.instance_id,
        }
        if spec.service:
            env["FC_SERVICE_NAME"] = spec.service
            env["FC_QUALIFIER"] = spec.qualifier
        key = self.function_credentials
        if spec.credentials_in_environment and key is not None:
            env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = key.id
            env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] = key.secret
            env["ALIBABA_CLOUD_SECURITY_TOKEN"] = key.security_token or ""
        env.update(spec.environment)
        return env

    def start(self) -> FcStandIn:
        if self._handler is not None:
            raise RuntimeError("FcStandIn is already started")
        _check_environment(self.spec)  # the spec's environment may have grown since __init__
        self.function_credentials = self.credentials.issue_sts()
        self._saved_environ = dict(os.environ)
        self._saved_path = list(sys.path)
        try:
            os.environ.update(self.function_environment())
            sys.path.insert(0, str(Path(self.spec.code_dir).resolve()))
            self._handler = self._load_handler()
            if self.spec.install_clock is not None:
                self._uninstall_clock = self.spec.install_clock(self.clock)
        except BaseException:
            self._restore_process()
            self.credentials.revoke(self.function_credentials.id)
            raise
        self._stopped = False
        try:
            super().start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self._stopped = True
        StandIn.stop(self)
        self._handler = None
        if self._uninstall_clock is not None:
            self._uninstall_clock()
            self._uninstall_clock = None
        self._restore_process()
        if self.function_credentials is not None:
            self.credentials.revoke(self.function_credentials.id)

    def _restore_process(self) -> None:
        if self._saved_environ is not None:
            for name in set(os.environ) - set(self._saved_environ):
                del os.environ[name]
            for name, value in self._saved_environ.items():
                if os.environ.get(name) != value:
                    os.environ[name] = value
            self._saved_environ = None
        if self._saved_path is not None:
            sys.path[:] = self._saved_path
            self._saved_path = None
        if self._module_name is not None:
            sys.modules.pop(self._module_name, None)
            self._module_name = None

    def _load_handler(self) -> Any:
        module_path, _, function_name = self.spec.handler.rpartition(".")
        if not module_path or not function_name:
            raise ValueError(f"handler must be 'module.function', got {self.spec.handler!r}")
        source = Path(self.spec.code_dir).resolve().joinpath(*module_path.split(".")).with_suffix(".py")
        # A private module name: the tests (or another stand-in) may hold a different ``index`` module.
        safe_name = re.sub(r"\W", "_", self.spec.name)
        name = f"_fc_handler_{safe_name}_{secrets.token_hex(4)}"
        module_spec = importlib.util.spec_from_file_location(name, source)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load the handler module from {source}")
        module: ModuleType = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        self._module_name = name
        module_spec.loader.exec_module(module)
        handler = getattr(module, function_name, None)
        if not callable(handler):
            raise AttributeError(f"{source} has no callable {function_name!r}")
        return handler

    # ------------------------------------------------------------------ faults

    def fail_next(self, count: int = 1, when: str = "before") -> None:
        """Fail the next ``count`` handler runs: 'before' the handler is called, or 'after' it did its work."""
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        with self._lock:
            self._faults.extend([when] * count)

    def duplicate_next_async(self, count: int = 1, gap: float = 0.0) -> None:
        """Deliver each of the next ``count`` accepted async events twice, the copy ``gap`` virtual seconds later."""
        with self._lock:
            self._duplicates.extend([float(gap)] * count)

    def duplicate_every_async(self, gap: float | None = 0.0) -> None:
        """Deliver every accepted async event twice, the copy ``gap`` virtual seconds later (None: stop doing so)."""
        with self._lock:
            self._duplicate_every = gap

    # ------------------------------------------------------------------ invoking

    def invoke(
        self,
        payload: bytes,
        invocation_type: str = "Sync",
        delay: float | None = 0.0,
        api: str = "direct",
        delivery: str = "first",
        task_id: str | None = None,
    ) -> tuple[str, object]:
        """Run the function: ``(request_id, result)``; the result is None for Async. ``delivery`` labels the run
        (a test harness delivering an event again says "replay").

        Raises :class:`FcApiError` for a request FC would refuse and, for Sync, :class:`InvocationFailed`
        when the run ended with an unhandled error.
        """
        if self._handler is None:
            raise RuntimeError("FcStandIn is not started")
        payload = bytes(payload or b"")
        kind = {"sync": "Sync", "async": "Async"}.get(str(invocation_type).lower())
        if kind is None:
            message = f"x-fc-invocation-type must be Sync or Async, got {invocation_type!r}"
            raise FcApiError(400, "InvalidArgument", message)
        request_id = _new_request_id()
        if kind == "Sync":
            if delay:
                raise FcApiError(400, "InvalidArgument", "x-fc-async-delay only applies to asynchronous invocations")
            now = self.clock.now()
            run, failure = self.clock.call(
                lambda: self._run(_Event(request_id, payload, api, 1, now, delivery), "Sync"),
                f"fc-sync-{request_id[:8]}",
            )
            if failure is not None:
                raise failure
            return request_id, run.result

        if delay is not None:  # None: no x-fc-async-delay header, so no delay, on either API
            check_async_delay(delay, api)
        delay = delay or 0
        if len(payload) > ASYNC_PAYLOAD_LIMIT:
            raise FcApiError(
                413,
                "RequestEntityTooLarge",
                f"payload size {len(payload)} exceeds the async invocation limit of {ASYNC_PAYLOAD_LIMIT} bytes",
            )
        now = self.clock.now()
        with self._lock:
            self._accept_task(task_id)
            self.async_delays.append(delay)
            gap = self._duplicates.pop(0) if self._duplicates else self._duplicate_every
        event = _Event(request_id, payload, api, 1, now, delivery, task_id, self._generation)
        self._enqueue(event, delay)
        if gap is not None:
            self._enqueue(replace(event, delivery="duplicate"), delay + gap)
        return request_id, None

    def _accept_task(self, task_id: str | None) -> None:
        """FC's task deduplication: "when the same ID enters the system, the request is considered a duplicate
        submission and rejected, and an error 409 is returned" (call with the lock held)."""
        if task_id is None:
            return
        if not _TASK_ID.match(task_id):
            raise FcApiError(400, "InvalidArgument", f"the task id {task_id!r} is not valid")
        if task_id in self.tasks:
            raise FcApiError(409, "AsyncTaskAlreadyExist", f"the async task {task_id} already exists")
        self.tasks[task_id] = "Enqueued"

    def stop_task(self, task_id: str) -> None:
        """StopAsyncTask: a task not yet started never runs; one that started or ended cannot be stopped."""
        with self._lock:
            status = self.tasks.get(task_id)
            if status is None:
                raise FcApiError(404, "AsyncTaskNotFound", f"the async task {task_id} does not exist")
            if status != "Enqueued":
                raise FcApiError(400, "InvalidArgument", f"the async task {task_id} is {status}: it cannot be stopped")
            self.tasks[task_id] = "Stopped"
            self._pending -= self._queued.pop(task_id, 0)  # its deliveries will not run

    def reset(self) -> None:
        """Forget the runs and faults so far (between the scenarios of one test); nothing may be pending."""
        with self._lock:
            if self._pending:
                raise RuntimeError(f"{self._pending} async events are still pending")
            self.invocations.clear()
            self.async_delays.clear()
            self._faults.clear()
            self._duplicates.clear()
            self._duplicate_every = None
            self.tasks.clear()
            self._queued.clear()
            self._generation += 1
        self.redeliver_after = None
        self.retry_backoff_seconds = 1.0

    def pending_async(self) -> int:
        """Async runs queued (including those waiting for their delay or a retry) or running."""
        with self._lock:
            return self._pending

    def wait_idle(self, timeout: float = 86400.0) -> bool:
        """Let virtual time pass until no async event is pending or running (at most ``timeout`` virtual seconds)."""
        return self.clock.run_until(lambda: self.pending_async() == 0, timeout=timeout)

    def _context(self, request_id: str) -> Context:
        spec, key = self.spec, self.function_credentials
        credentials = None
        if spec.credentials_in_context and key is not None:
            credentials = Credentials(key.id, key.secret, key.security_token or "")
        service = ServiceMeta(spec.service, spec.qualifier) if spec.service else None
        return Context(
            request_id=request_id,
            credentials=credentials,
            function=FunctionMeta(spec.name, spec.handler, spec.memory, spec.timeout),
            service=service,
            region=self.region,
            account_id=self.account_id,
        )

    def _run(self, event: _Event, invocation_type: str) -> tuple[Invocation, InvocationFailed | None]:
        handler = self._handler
        request_id, payload = event.request_id, event.payload
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            started = self.clock.now()
            run = Invocation(
                request_id, invocation_type, event.api, event.attempt, payload, event.scheduled_at, started
            )
            run.delivery = event.delivery
            run.task_id = event.task_id
            self.invocations.append(run)
        context = self._context(request_id)
        error: BaseException | None = None
        cpu_started = time.thread_time()
        try:
            if fault == "before":
                raise InjectedFault("injected fault: the instance crashed before the handler ran")
            run.result = handler(payload, context)
            if fault == "after":
                raise InjectedFault("injected fault: the instance died after the handler returned")
        except (Exception, SystemExit) as exc:
            error = exc
        run.cpu_seconds = time.thread_time() - cpu_started
        finished = self.clock.now()
        run.billed_seconds = finished - started
        run.timed_out = run.billed_seconds > self.spec.timeout
        if error is None and run.timed_out:
            error = FunctionTimedOut(f"Function timed out after {self.spec.timeout:g} seconds")
        failure = None
        if error is not None:
            run.error = repr(error)
            stack = traceback.format_list(traceback.extract_tb(error.__traceback__)) if error.__traceback__ else []
            failure = InvocationFailed(request_id, type(error).__name__, str(error), stack)
        run.finished_at = finished
        return run, failure

    # ------------------------------------------------------------------ the async queue

    def _enqueue(self, event: _Event, delay: float) -> None:
        if self._stopped:
            return
        with self._lock:
            self._pending += 1
            if event.task_id is not None:
                self._queued[event.task_id] = self._queued.get(event.task_id, 0) + 1
        self.clock.spawn(lambda: self._deliver(event), f"fc-async-{event.request_id[:8]}-{event.attempt}", delay)

    def _deliver(self, event: _Event) -> None:
        if not self._task_starts(event):
            return  # stopped: its pending count went with it
        try:
            if self._stopped or self._handler is None:
                return
            _, failure = self._run(event, "Async")
            now = self.clock.now()
            if event.task_id is not None:
                with self._lock:
                    self.tasks[event.task_id] = "Failed" if failure is not None else "Succeeded"
            if failure is not None and event.attempt <= self.spec.max_async_retries:
                backoff = self.retry_backoff_seconds * 2.0 ** (event.attempt - 1)
                self._enqueue(replace(event, attempt=event.attempt + 1, scheduled_at=now, delivery="retry"), backoff)
            elif self.redeliver_after is not None and event.delivery == "first" and event.attempt == 1:
                self._enqueue(replace(event, scheduled_at=now, delivery="replay"), self.redeliver_after)
        finally:
            with self._lock:
                self._pending -= 1

    def _task_starts(self, event: _Event) -> bool:
        """Whether a delivery runs: not when its task was stopped."""
        if event.task_id is None:
            return True
        with self._lock:
            if event.generation != self._generation or self.tasks.get(event.task_id) == "Stopped":
                return False
            self.tasks[event.task_id] = "Running"
            self._queued[event.task_id] = max(0, self._queued.get(event.task_id, 0) - 1)
            return True

    # ------------------------------------------------------------------ HTTP

    def handle(self, request: Request) -> Reply:
        match = _FC3_PATH.match(request.path)
        if match:
            return self._handle_fc3(request, unquote(match["function"]))
        match = _FC3_STOP_TASK_PATH.match(request.path)
        if match:
            return self._stop_task_http(request, unquote(match["function"]), unquote(match["task"]))
        match = _FC3_FUNCTION_PATH.match(request.path)
        if match:
            return self._get_function(request, unquote(match["function"]))
        match = _FC2_PATH.match(request.path)
        if match:
            service, _, qualifier = unquote(match["service"]).partition(".")
            return self._handle_fc2(request, service, qualifier or None, unquote(match["function"]))
        return json_reply(
            404, {"Code": "PathNotFound", "Message": f"no route for {request.path}", "RequestId": _new_request_id()}
        )

    def _handle_fc3(self, request: Request, function: str) -> Reply:
        request_id = _new_request_id()

        def error(status: int, code: str, message: str) -> Reply:
            return json_reply(
                status, {"Code": code, "Message": message, "RequestId": request_id}, {"x-fc-request-id": request_id}
            )

        try:
            verify_acs3(request.signed(), self.credentials, self.nonces)
        except AuthError as exc:
            return error(exc.status, exc.code, exc.message)
        if request.method != "POST":
            return error(405, "MethodNotAllowed", f"{request.method} is not allowed")
        if self.spec.service is not None or function != self.spec.name:
            return error(404, "FunctionNotFound", f"function '{function}' does not exist")
        qualifier = (parse_qs(request.query).get("qualifier") or [None])[0]
        if qualifier not in (None, "", "LATEST", self.spec.qualifier):
            return error(404, "AliasNotFound", f"alias '{qualifier}' of function '{function}' does not exist")
        return self._invoke_http(request, "fc3", error)

    def _stop_task_http(self, request: Request, function: str, task_id: str) -> Reply:
        """FC 3.0 StopAsyncTask (PUT /2023-03-30/functions/{functionName}/async-tasks/{taskId}/stop)."""
        request_id = _new_request_id()
        headers = {"x-fc-request-id": request_id}

        def error(status: int, code: str, message: str) -> Reply:
            return json_reply(status, {"Code": code, "Message": message, "RequestId": request_id}, headers)

        try:
            verify_acs3(request.signed(), self.credentials, self.nonces)
        except AuthError as exc:
            return error(exc.status, exc.code, exc.message)
        if request.method != "PUT":
            return error(405, "MethodNotAllowed", f"{request.method} is not allowed")
        if self.spec.service is not None or function != self.spec.name:
            return error(404, "FunctionNotFound", f"function '{function}' does not exist")
        try:
            self.stop_task(task_id)
        except FcApiError as exc:
            return error(exc.status, exc.code, exc.message)
        return Reply(200, b"", headers)

    def _get_function(self, request: Request, function: str) -> Reply:
        """FC 3.0 GetFunction (GET /2023-03-30/functions/{functionName}): what a deploy check needs of it."""
        request_id = _new_request_id()
        headers = {"x-fc-request-id": request_id}
        try:
            verify_acs3(request.signed(), self.credentials, self.nonces)
        except AuthError as exc:
            return json_reply(exc.status, {"Code": exc.code, "Message": exc.message, "RequestId": request_id}, headers)
        if request.method != "GET":
            return json_reply(405, {"Code": "MethodNotAllowed", "Message": f"{request.method} is not allowed"}, headers)
        if self.spec.service is not None or function != self.spec.name:
            body = {
                "Code": "FunctionNotFound",
                "Message": f"function '{function}' does not exist",
                "RequestId": request_id,
            }
            return json_reply(404, body, headers)
        spec = self.spec
        return json_reply(
            200,
            {
                "functionName": spec.name,
                "functionArn": self.service_token,
                "runtime": "python3.10",
                "handler": spec.handler,
                "memorySize": spec.memory,
                "timeout": int(spec.timeout),
                "state": "Active",
            },
            headers,
        )

    def _handle_fc2(self, request: Request, service: str, qualifier: str | None, function: str) -> Reply:
        request_id = _new_request_id()

        def error(status: int, code: str, message: str) -> Reply:
            return json_reply(status, {"ErrorCode": code, "ErrorMessage": message}, {"x-fc-request-id": request_id})

        try:
            verify_fc2(request.signed(), self.credentials)
        except AuthError as exc:
            return error(exc.status, exc.code, exc.message)
        if request.method != "POST":
            return error(405, "MethodNotAllowed", f"{request.method} is not allowed")
        if self.spec.service is None or service != self.spec.service:
            return error(404, "ServiceNotFound", f"service '{service}' does not exist")
        if function != self.spec.name:
            return error(404, "FunctionNotFound", f"function '{function}' does not exist in service '{service}'")
        if qualifier not in (None, "LATEST", self.spec.qualifier):
            return error(404, "AliasNotFound", f"alias '{qualifier}' of service '{service}' does not exist")
        return self._invoke_http(request, "fc2", error)

    def _invoke_http(self, request: Request, api: str, error: Any) -> Reply:
        invocation_type = request.headers.get("x-fc-invocation-type", "Sync").strip() or "Sync"
        delay = None
        raw_delay = request.headers.get("x-fc-async-delay")
        if raw_delay is not None:
            text = raw_delay.strip()
            if not re.fullmatch(r"[0-9]+", text):
                return error(400, "InvalidArgument", f"x-fc-async-delay must be an integer, got {raw_delay!r}")
            delay = int(text)
        task_id = request.headers.get(TASK_HEADERS[api])
        try:
            request_id, result = self.invoke(request.body, invocation_type, delay, api, task_id=task_id)
        except FcApiError as exc:
            return error(exc.status, exc.code, exc.message)
        except InvocationFailed as failure:
            return Reply(
                200,
                json.dumps(failure.body()).encode(),
                {
                    "Content-Type": "application/json",
                    "x-fc-request-id": failure.request_id,
                    "x-fc-error-type": UNHANDLED_ERROR_TYPE,
                },
            )
        if invocation_type.lower() == "async":
            return Reply(202, b"", {"x-fc-request-id": request_id})
        return Reply(
            200, _encode_result(result), {"Content-Type": "application/octet-stream", "x-fc-request-id": request_id}
        )


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
