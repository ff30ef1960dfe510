"""The Function Compute stand-in's state: the function's runs, the async queue, the task registry and the faults.

Every run is an actor of the shared :class:`VirtualClock`: a Sync run happens at once (inline when the caller is
itself inside the simulation), async events wait for their delay in virtual seconds, may overlap one another as FC
instances do, and are retried after an unhandled error up to ``max_async_retries`` more times, keeping the request
id. Faults can be injected: crashes before/after the handler, duplicate deliveries of async events (FC's delivery is
at least once), and, as a pessimistic switch, every async event delivered once more long after it first ran.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from dataclasses import replace

from emulator.clock import VirtualClock
from emulator.credentials import AccessKey, CredentialStore
from emulator.fc.model import (
    ASYNC_PAYLOAD_LIMIT,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    MAX_ASYNC_RETRIES,
    TASK_ID,
    Context,
    Event,
    FcApiError,
    FunctionSpec,
    FunctionTimedOut,
    InjectedFault,
    Invocation,
    InvocationFailed,
    check_async_delay,
    new_request_id,
)
from emulator.fc.process import FunctionProcess, build_context, check_environment, function_environment
from emulator.fc.sandbox import PackageProcess


class FcBackend:
    def __init__(
        self,
        clock: VirtualClock,
        credentials: CredentialStore,
        function: FunctionSpec,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        deployed: bool = True,
    ) -> None:
        if not 0 <= function.max_async_retries <= MAX_ASYNC_RETRIES:
            raise ValueError(f"max_async_retries must be within 0..{MAX_ASYNC_RETRIES}")
        check_environment(function)
        self.clock = clock
        self.credentials = credentials
        self.spec = function
        self.region = region
        self.account_id = account_id
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
        self.function_log: list[str] = []  # what isolated functions wrote (request id first), FC's function log
        # The variables that point a function at this local cloud instead of Alibaba Cloud's endpoints (its
        # "network"): every function created through deploy() gets them after its own.
        self.network_environment: dict[str, str] = {}
        self._deployed = deployed  # False: no function until deploy() (ROS's ALIYUN::FC3::Function creates it)
        self._process = self._new_process(function)
        self._stopped = False

    # ------------------------------------------------------------------ the function in this process

    @property
    def service_token(self) -> str:
        prefix = f"acs:fc:{self.region}:{self.account_id}"
        if self.spec.service:
            return f"{prefix}:services/{self.spec.service}/functions/{self.spec.name}"
        return f"{prefix}:functions/{self.spec.name}"

    @property
    def deployed(self) -> bool:
        return self._deployed

    def _new_process(self, spec: FunctionSpec) -> FunctionProcess | PackageProcess:
        return PackageProcess(spec, self._log) if spec.isolated else FunctionProcess(spec)

    def _log(self, line: str) -> None:
        with self._lock:
            self.function_log.append(line)

    def deploy(self, spec: FunctionSpec) -> None:
        """CreateFunction, or UpdateFunction with new code or settings: runs from now on use ``spec``; a run in
        progress ends on the code it started with (see :mod:`emulator.fc.sandbox`)."""
        if not 0 <= spec.max_async_retries <= MAX_ASYNC_RETRIES:
            raise ValueError(f"max_async_retries must be within 0..{MAX_ASYNC_RETRIES}")
        check_environment(spec)
        if not self._deployed or self.function_credentials is None:
            self.spec, self._process, self._deployed = spec, self._new_process(spec), True
            try:
                self.load_function()
            except BaseException:  # e.g. no interpreter of its runtime here: no function after all
                self._deployed, self.function_credentials = False, None
                raise
            return
        old_spec, old, process = self.spec, self._process, self._new_process(spec)
        self.spec = spec  # the environment below is the new spec's
        try:
            process.load(self.function_environment(), self.clock)
        except BaseException:  # the function stays as it was
            self.spec = old_spec
            raise
        self._process = process
        old.unload()

    def remove_function(self) -> None:
        """DeleteFunction: no run starts from now on; the role's key is revoked."""
        self._deployed = False
        self.unload_function()
        self.function_credentials = None

    def function_environment(self) -> dict[str, str]:
        return function_environment(
            self.spec, self.region, self.account_id, self.instance_id, self.function_credentials
        )

    def load_function(self) -> None:
        """Issue the role's key and load the function into this process (see :mod:`emulator.fc.process`)."""
        if self._process.handler is not None:
            raise RuntimeError("FcStandIn is already started")
        check_environment(self.spec)  # the spec's environment may have grown since __init__
        self.function_credentials = self.credentials.issue_sts()
        try:
            self._process.load(self.function_environment(), self.clock)
        except BaseException:
            self.credentials.revoke(self.function_credentials.id)
            raise
        self._stopped = False

    def close_queue(self) -> None:
        """No async event is queued or delivered from now on."""
        self._stopped = True

    def unload_function(self) -> None:
        """Put the process back as it was and revoke the role's key."""
        self._process.unload()
        if self.function_credentials is not None:
            self.credentials.revoke(self.function_credentials.id)

    def _context(self, request_id: str) -> Context:
        return build_context(self.spec, self.region, self.account_id, self.function_credentials, request_id)

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
        if self._process.handler is None:
            raise RuntimeError("FcStandIn is not started")
        payload = bytes(payload or b"")
        kind = {"sync": "Sync", "async": "Async"}.get(str(invocation_type).lower())
        if kind is None:
            message = f"x-fc-invocation-type must be Sync or Async, got {invocation_type!r}"
            raise FcApiError(400, "InvalidArgument", message)
        request_id = new_request_id()
        if kind == "Sync":
            return request_id, self._invoke_sync(Event(request_id, payload, api, 1, self.clock.now(), delivery), delay)
        self._invoke_async(Event(request_id, payload, api, 1, 0.0, delivery, task_id), delay)
        return request_id, None

    def _invoke_sync(self, event: Event, delay: float | None) -> object:
        if delay:
            raise FcApiError(400, "InvalidArgument", "x-fc-async-delay only applies to asynchronous invocations")
        run, failure = self.clock.call(lambda: self._run(event, "Sync"), f"fc-sync-{event.request_id[:8]}")
        if failure is not None:
            raise failure
        return run.result

    def _invoke_async(self, event: Event, delay: float | None) -> None:
        """Accept an async event (``scheduled_at`` and ``generation`` are set here) and queue its deliveries."""
        if delay is not None:  # None: no x-fc-async-delay header, so no delay, on either API
            check_async_delay(delay, event.api)
        delay = delay or 0
        if len(event.payload) > ASYNC_PAYLOAD_LIMIT:
            raise FcApiError(
                413,
                "RequestEntityTooLarge",
                f"payload size {len(event.payload)} exceeds the async invocation limit of {ASYNC_PAYLOAD_LIMIT} bytes",
            )
        now = self.clock.now()
        with self._lock:
            self._accept_task(event.task_id)
            self.async_delays.append(delay)
            gap = self._duplicates.pop(0) if self._duplicates else self._duplicate_every
        event = replace(event, scheduled_at=now, generation=self._generation)
        self._enqueue(event, delay)
        if gap is not None:
            self._enqueue(replace(event, delivery="duplicate"), delay + gap)

    def _accept_task(self, task_id: str | None) -> None:
        """FC's task deduplication: "when the same ID enters the system, the request is considered a duplicate
        submission and rejected, and an error 409 is returned" (call with the lock held)."""
        if task_id is None:
            return
        if not TASK_ID.match(task_id):
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

    def _run(self, event: Event, invocation_type: str) -> tuple[Invocation, InvocationFailed | None]:
        process = self._process  # the code this run starts with, kept if the function is updated meanwhile
        handler = process.handler
        request_id, payload = event.request_id, event.payload
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            started = self.clock.now()
            run = Invocation(
                request_id, invocation_type, event.api, event.attempt, payload, event.scheduled_at, started
            )
            run.delivery = event.delivery
            run.task_id = event.task_id
            run.code_checksum = self.spec.code_checksum
            self.invocations.append(run)
        context = self._context(request_id)
        error: BaseException | None = None
        cpu_started = time.thread_time()
        try:
            if handler is None:  # stopped while the run was on its way
                raise RuntimeError("the function is not loaded")
            if fault == "before":
                raise InjectedFault("injected fault: the instance crashed before the handler ran")
            run.result = handler(payload, context)
            if fault == "after":
                raise InjectedFault("injected fault: the instance died after the handler returned")
        except (Exception, SystemExit) as exc:
            error = exc
        run.cpu_seconds = time.thread_time() - cpu_started + process.take_cpu(request_id)
        finished = self.clock.now()
        run.billed_seconds = finished - started
        run.timed_out = run.billed_seconds > self.spec.timeout
        if error is None and run.timed_out:
            error = FunctionTimedOut(f"Function timed out after {self.spec.timeout:g} seconds")
        failure = None
        if error is not None:
            error_type = getattr(error, "error_type", type(error).__name__)  # an isolated run's, as it reported it
            run.error = f"{error_type}({str(error)!r})" if hasattr(error, "error_type") else repr(error)
            stack = getattr(error, "trace", None) or (
                traceback.format_list(traceback.extract_tb(error.__traceback__)) if error.__traceback__ else []
            )
            failure = InvocationFailed(request_id, error_type, str(error), stack)
        run.finished_at = finished
        return run, failure

    # ------------------------------------------------------------------ the async queue

    def _enqueue(self, event: Event, delay: float) -> None:
        if self._stopped:
            return
        with self._lock:
            self._pending += 1
            if event.task_id is not None:
                self._queued[event.task_id] = self._queued.get(event.task_id, 0) + 1
        self.clock.spawn(lambda: self._deliver(event), f"fc-async-{event.request_id[:8]}-{event.attempt}", delay)

    def _deliver(self, event: Event) -> None:
        if not self._task_starts(event):
            return  # stopped: its pending count went with it
        try:
            if self._stopped or self._process.handler is None:
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

    def _task_starts(self, event: Event) -> bool:
        """Whether a delivery runs: not when its task was stopped."""
        if event.task_id is None:
            return True
        with self._lock:
            if event.generation != self._generation or self.tasks.get(event.task_id) == "Stopped":
                return False
            self.tasks[event.task_id] = "Running"
            self._queued[event.task_id] = max(0, self._queued.get(event.task_id, 0) - 1)
            return True
