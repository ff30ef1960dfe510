"""The Function Compute stand-in's plain parts: the function's spec, its runs, the context it is given, the errors
and limits FC documents."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emulator.clock import VirtualClock
from emulator.errors import ApiError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_REGION = "cn-hangzhou"
DEFAULT_ACCOUNT_ID = "1234567890123456"
ASYNC_PAYLOAD_LIMIT = 128 * 1024  # bytes, FC's limit for an asynchronous invocation
MAX_ASYNC_DELAY = 3600  # seconds: FC 3.0 documents (0, 3600) for x-fc-async-delay, FC 2.0 [0, 3600]
MAX_ASYNC_RETRIES = 8  # maxAsyncRetryAttempts is 0..8
UNHANDLED_ERROR_TYPE = "UnhandledInvocationError"
# Task ids (FC's "asynchronous tasks"): a letter or _ first, then letters, digits, _ and -, at most 128 characters.
TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
TASK_HEADERS = {"fc3": "x-fc-async-task-id", "fc2": "x-fc-stateful-async-invocation-id"}


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
    runtime: str = "python3.10"  # FC's runtime; with ``isolated``, the interpreter that runs the code
    # True: the code runs in its own interpreter of ``runtime``, isolated from this one (emulator.fc.sandbox): a
    # code package, with nothing on its path but its code root, what PYTHONPATH names in it, and the standard
    # library. False: imported into this process (the working tree, with this environment's packages).
    isolated: bool = False
    clock_module: str = "copyimage.clock"  # isolated: the module of the code whose install() takes the clock
    code_checksum: str = ""  # the code package's SHA-256 (GetFunction's codeChecksum; FC's own is a CRC-64)
    role: str = ""  # the role's ARN


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
    code_checksum: str = ""  # the code that ran it (FunctionSpec.code_checksum at the time)


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


@dataclass
class Event:
    """One delivery of an invocation: what runs, and why (see Invocation.delivery)."""

    request_id: str
    payload: bytes
    api: str
    attempt: int
    scheduled_at: float  # virtual
    delivery: str = "first"  # see Invocation.delivery
    task_id: str | None = None
    generation: int = 0  # the stand-in's reset count when it was queued: a stopped task's leftover is dropped


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


def new_request_id() -> str:
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
