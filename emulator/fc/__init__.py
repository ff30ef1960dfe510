"""The Function Compute stand-in: runs the provider's Python handler in-process, as FC would run it.

Laid out as :mod:`emulator.ecs` is: :mod:`~emulator.fc.model` (the spec, runs, context, errors and documented
limits), :mod:`~emulator.fc.process` (the function loaded into this process: environment, ``sys.path``, handler,
context), :mod:`~emulator.fc.backend` (invoking, the async queue, the task registry, faults),
:mod:`~emulator.fc.api` (the FC 3.0 and FC 2.0 HTTP handlers) and :mod:`~emulator.fc.standin` (the backend served
over HTTP).
"""

from emulator.fc.backend import FcBackend
from emulator.fc.model import (
    ASYNC_PAYLOAD_LIMIT,
    MAX_ASYNC_DELAY,
    MAX_ASYNC_RETRIES,
    REPO_ROOT,
    TASK_HEADERS,
    UNHANDLED_ERROR_TYPE,
    Context,
    Credentials,
    FcApiError,
    FunctionMeta,
    FunctionSpec,
    FunctionTimedOut,
    InjectedFault,
    Invocation,
    InvocationFailed,
    ServiceMeta,
    check_async_delay,
)
from emulator.fc.standin import FcStandIn

__all__ = [
    "ASYNC_PAYLOAD_LIMIT",
    "MAX_ASYNC_DELAY",
    "MAX_ASYNC_RETRIES",
    "REPO_ROOT",
    "TASK_HEADERS",
    "UNHANDLED_ERROR_TYPE",
    "Context",
    "Credentials",
    "FcApiError",
    "FcBackend",
    "FcStandIn",
    "FunctionMeta",
    "FunctionSpec",
    "FunctionTimedOut",
    "InjectedFault",
    "Invocation",
    "InvocationFailed",
    "ServiceMeta",
    "check_async_delay",
]
