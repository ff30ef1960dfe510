"""The Function Compute stand-in, driven by the real FC 3.0 (alibabacloud_fc20230330) and FC 2.0 (fc2) SDKs.

Every run is an actor of a :class:`VirtualClock`; the test handler sleeps on that clock (installed through
``FunctionSpec.install_clock``), so delays, backoffs, billed time and overlaps are exact virtual seconds.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import fc2
import pytest
from alibabacloud_fc20230330.client import Client as Fc3Client
from alibabacloud_fc20230330.models import InvokeFunctionHeaders, InvokeFunctionRequest
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions
from fc2.fc_exceptions import FcError

from emulator.clock import VirtualClock
from emulator.credentials import AccessKey, CredentialStore
from emulator.fc import (
    ASYNC_PAYLOAD_LIMIT,
    FcApiError,
    FcStandIn,
    FunctionSpec,
    InvocationFailed,
)

SERVICE = "copy-svc"
ASYNC = {"x-fc-invocation-type": "Async"}

HANDLER = textwrap.dedent(
    """
    import json
    import os
    import threading

    import helperpkg  # a package of the function's own, found through code_dir on sys.path

    _lock = threading.Lock()


    def handler(event, context):
        data = json.loads(event) if event[:1] == b"{" else {}
        creds = context.credentials
        service = context.service
        record = {
            "event_type": type(event).__name__,
            "event": event[:200].decode("utf-8", "replace"),
            "request_id": context.request_id,
            "credentials": None if creds is None else [creds.access_key_id, creds.access_key_secret,
                                                       creds.security_token],
            "function": [context.function.name, context.function.handler, context.function.memory,
                         context.function.timeout],
            "service": None if service is None else [service.name, service.qualifier, service.log_project,
                                                     service.log_store, service.version_id],
            "region": context.region,
            "account_id": context.account_id,
            "tracing": context.tracing,
            "env": {k: v for k, v in os.environ.items() if k.startswith(("FC_", "ALIBABA_CLOUD_", "COPYIMAGE_",
                                                                            "MY_"))},
            "helper": helperpkg.MARK,
            "thread": threading.current_thread().name,
        }
        with _lock:
            with open(os.environ["RECORD_FILE"], "a") as out:
                out.write(json.dumps(record) + "\\n")
        if "spin" in data:
            sum(i * i for i in range(data["spin"]))  # CPU work: no virtual time passes meanwhile
        if "sleep" in data:
            helperpkg.CLOCK.sleep(data["sleep"])  # the function's clock: the virtual one, once installed
        if "raise" in data:
            raise ValueError(data["raise"])
        kind = data.get("return_kind")
        if kind == "bytes":
            return b"\\x00raw"
        if kind == "str":
            return "text"
        if kind == "none":
            return None
        return {"echo": data, "request_id": context.request_id}
    """
)


@pytest.fixture
def code_dir(tmp_path: Path) -> Iterator[Path]:
    code = tmp_path / "code"
    (code / "helperpkg").mkdir(parents=True)
    (code / "index.py").write_text(HANDLER)
    (code / "helperpkg" / "__init__.py").write_text("MARK = 'helper-loaded'\nCLOCK = None\n")
    sys.modules.pop("helperpkg", None)  # each test imports its own copy
    yield code
    sys.modules.pop("helperpkg", None)


def install_helper_clock(clock: VirtualClock) -> Callable[[], None]:
    """What a function does to run on the virtual clock: point its own clock (here ``helperpkg.CLOCK``) at it."""
    helper = importlib.import_module("helperpkg")  # code_dir is on sys.path while the stand-in runs
    helper.CLOCK = clock

    def undo() -> None:
        helper.CLOCK = None

    return undo


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


@pytest.fixture
def store() -> CredentialStore:
    return CredentialStore()


@pytest.fixture
def user_key(store: CredentialStore) -> AccessKey:
    return store.add_access_key()


@pytest.fixture
def clock() -> Iterator[VirtualClock]:
    clock = VirtualClock()
    yield clock
    clock.close()


@pytest.fixture
def make_fc(code_dir: Path, record_file: Path, store: CredentialStore, clock: VirtualClock):
    started: list[FcStandIn] = []

    def make(**spec_fields: object) -> FcStandIn:
        environment = {"RECORD_FILE": str(record_file), **spec_fields.pop("environment", {})}
        spec_fields.setdefault("install_clock", install_helper_clock)
        spec = FunctionSpec(code_dir=code_dir, environment=environment, **spec_fields)
        fc = FcStandIn(clock, store, spec).start()
        started.append(fc)
        return fc

    yield make
    for fc in reversed(started):
        fc.stop()


def records(record_file: Path) -> list[dict]:
    if not record_file.exists():
        return []
    return [json.loads(line) for line in record_file.read_text().splitlines()]


def fc3_client(fc: FcStandIn, key: AccessKey, secret: str | None = None, token: str | None = None) -> Fc3Client:
    return Fc3Client(
        Config(
            access_key_id=key.id,
            access_key_secret=secret or key.secret,
            security_token=token if token is not None else key.security_token,
            endpoint=fc.endpoint,
            protocol="http",
            region_id="cn-hangzhou",
        )
    )


def fc3_invoke(
    client: Fc3Client,
    name: str,
    payload: bytes,
    invocation_type: str | None = None,
    common_headers: dict[str, str] | None = None,
    qualifier: str | None = None,
):
    return client.invoke_function_with_options(
        name,
        InvokeFunctionRequest(body=payload, qualifier=qualifier),
        InvokeFunctionHeaders(x_fc_invocation_type=invocation_type, common_headers=common_headers),
        RuntimeOptions(),
    )


def fc3_async(fc: FcStandIn, key: AccessKey, payload: bytes, delay: str | None = None):
    headers = None if delay is None else {"x-fc-async-delay": delay}
    return fc3_invoke(fc3_client(fc, key), fc.spec.name, payload, invocation_type="Async", common_headers=headers)


def read_body(response) -> bytes:
    body = response.body
    if body is None:
        return b""
    return body if isinstance(body, bytes) else body.read()


def fc2_client(fc: FcStandIn, key: AccessKey, secret: str | None = None, token: str | None = None) -> fc2.Client:
    return fc2.Client(
        endpoint=fc.url,
        accessKeyID=key.id,
        accessKeySecret=secret or key.secret,
        securityToken=token if token is not None else (key.security_token or ""),
    )


def fc2_async(fc: FcStandIn, key: AccessKey, payload: bytes, delay: str | None = None):
    headers = dict(ASYNC) if delay is None else {**ASYNC, "x-fc-async-delay": delay}
    return fc2_client(fc, key).invoke_function(SERVICE, fc.spec.name, payload=payload, headers=headers)


def timeline(fc: FcStandIn, t0: float) -> list[tuple[int, float, float | None]]:
    """(attempt, start, end) of every run, in virtual seconds after ``t0``."""
    return [
        (run.attempt, run.started_at - t0, None if run.finished_at is None else run.finished_at - t0)
        for run in fc.invocations
    ]


# ---------------------------------------------------------------------------- sync, context, environment


def test_fc3_sync_runs_handler_with_fc_context_and_environment(make_fc, user_key, record_file, store, clock):
    fc = make_fc(environment={"MY_SETTING": "on"}, memory=512, timeout=120.0)
    t0 = clock.now()
    response = fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b'{"hello": "world"}')

    assert response.status_code == 200
    request_id = response.headers["x-fc-request-id"]
    assert json.loads(read_body(response)) == {"echo": {"hello": "world"}, "request_id": request_id}

    (seen,) = records(record_file)
    assert seen["event_type"] == "bytes" and seen["event"] == '{"hello": "world"}'
    assert seen["request_id"] == request_id
    role = fc.function_credentials
    assert role is not None and role.id.startswith("STS.")
    assert seen["credentials"] == [role.id, role.secret, role.security_token]
    assert store.lookup(role.id) == role  # the function's credentials are accepted by the other stand-ins
    assert seen["function"] == ["ros-copy-image", "index.handler", 512, 120.0]
    assert seen["service"] is None
    assert (seen["region"], seen["account_id"], seen["tracing"]) == ("cn-hangzhou", "1234567890123456", None)
    assert seen["helper"] == "helper-loaded"
    assert seen["thread"].startswith("fc-sync-")  # the run is an actor of the clock

    env = seen["env"]
    assert env["FC_FUNCTION_NAME"] == "ros-copy-image"
    assert env["FC_REGION"] == "cn-hangzhou"
    assert env["FC_ACCOUNT_ID"] == "1234567890123456"
    assert env["FC_FUNCTION_HANDLER"] == "index.handler"
    assert env["FC_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["FC_INSTANCE_ID"] and env["FC_INSTANCE_ID"] == fc.instance_id
    assert "FC_SERVICE_NAME" not in env and "FC_QUALIFIER" not in env
    assert env["MY_SETTING"] == "on"
    assert not any(name.startswith("COPYIMAGE_TIME") for name in env)  # the clock is installed, not configured
    assert not any(name.startswith("ALIBABA_CLOUD_") for name in env)
    assert {k: v for k, v in fc.function_environment().items() if k in env} == {
        k: v for k, v in env.items() if k in fc.function_environment()
    }
    assert fc.service_token == "acs:fc:cn-hangzhou:1234567890123456:functions/ros-copy-image"

    (run,) = fc.invocations
    assert (run.request_id, run.invocation_type, run.api, run.attempt) == (request_id, "Sync", "fc3", 1)
    assert run.error is None and run.result == {"echo": {"hello": "world"}, "request_id": request_id}
    assert (run.scheduled_at, run.started_at, run.finished_at) == (t0, t0, t0)  # no virtual time passed
    assert run.billed_seconds == 0.0 and not run.timed_out


def test_fc2_sync_sees_service_context(make_fc, user_key, record_file):
    fc = make_fc(service=SERVICE, qualifier="LATEST")
    response = fc2_client(fc, user_key).invoke_function(
        SERVICE, "ros-copy-image", payload=b'{"a": 1}', headers={"x-fc-invocation-type": "Sync"}, qualifier="LATEST"
    )
    request_id = response.headers["x-fc-request-id"]
    assert json.loads(response.data) == {"echo": {"a": 1}, "request_id": request_id}
    (seen,) = records(record_file)
    assert seen["service"] == [SERVICE, "LATEST", "", "", ""]
    assert seen["env"]["FC_SERVICE_NAME"] == SERVICE and seen["env"]["FC_QUALIFIER"] == "LATEST"
    assert fc.service_token == f"acs:fc:cn-hangzhou:1234567890123456:services/{SERVICE}/functions/ros-copy-image"
    assert [(run.api, run.invocation_type) for run in fc.invocations] == [("fc2", "Sync")]


def test_sync_result_encodings(make_fc, user_key):
    fc = make_fc(service=SERVICE)
    client = fc2_client(fc, user_key)

    def call(kind: str) -> bytes:
        payload = json.dumps({"return_kind": kind}).encode()
        return client.invoke_function(SERVICE, "ros-copy-image", payload=payload).data

    assert call("bytes") == b"\x00raw"
    assert call("str") == b"text"
    assert call("none") == b""
    assert json.loads(call("json"))["echo"] == {"return_kind": "json"}


def test_credentials_can_move_from_context_to_environment(make_fc, user_key, record_file):
    fc = make_fc(credentials_in_context=False, credentials_in_environment=True)
    fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b"{}")
    (seen,) = records(record_file)
    role = fc.function_credentials
    assert seen["credentials"] is None
    assert seen["env"]["ALIBABA_CLOUD_ACCESS_KEY_ID"] == role.id
    assert seen["env"]["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] == role.secret
    assert seen["env"]["ALIBABA_CLOUD_SECURITY_TOKEN"] == role.security_token


def test_reserved_environment_names_are_refused(code_dir, store, clock):
    with pytest.raises(ValueError, match="reserved"):
        FcStandIn(clock, store, FunctionSpec(code_dir=code_dir, environment={"FC_REGION": "x"}))
    spec = FunctionSpec(code_dir=code_dir)
    fc = FcStandIn(clock, store, spec)
    spec.environment["FC_INSTANCE_ID"] = "mine"  # added after construction, as a harness may do
    environ_before = dict(os.environ)
    with pytest.raises(ValueError, match="reserved"):
        fc.start()
    assert dict(os.environ) == environ_before


def test_max_async_retries_out_of_range_is_refused(code_dir, store, clock):
    with pytest.raises(ValueError, match="max_async_retries"):
        FcStandIn(clock, store, FunctionSpec(code_dir=code_dir, max_async_retries=9))


# ---------------------------------------------------------------------------- the clock, billing, CPU


def test_install_clock_is_called_on_start_and_undone_on_stop(make_fc, clock):
    calls: list[object] = []

    def install(given: VirtualClock) -> Callable[[], None]:
        calls.append(given)
        undo = install_helper_clock(given)

        def uninstall() -> None:
            calls.append("undone")
            undo()

        return uninstall

    fc = make_fc(install_clock=install)
    assert calls == [clock] and fc.clock is clock
    helper = sys.modules["helperpkg"]
    assert helper.CLOCK is clock
    fc.invoke(b'{"sleep": 7}')  # the handler's sleep is a sleep of the virtual clock
    assert fc.invocations[0].billed_seconds == 7.0
    fc.stop()
    assert calls == [clock, "undone"]
    assert helper.CLOCK is None
    fc.stop()  # stopping again undoes nothing twice
    assert calls == [clock, "undone"]


def test_a_failing_install_clock_fails_start_and_leaves_the_process_alone(code_dir, store, clock):
    def install(_: VirtualClock) -> Callable[[], None]:
        raise RuntimeError("no clock for you")

    environ_before, path_before = dict(os.environ), list(sys.path)
    fc = FcStandIn(clock, store, FunctionSpec(code_dir=code_dir, install_clock=install))
    with pytest.raises(RuntimeError, match="no clock for you"):
        fc.start()
    assert dict(os.environ) == environ_before and sys.path == path_before
    assert store.lookup(fc.function_credentials.id) is None


def test_billed_seconds_and_timeout_are_virtual(make_fc, clock):
    fc = make_fc(timeout=300.0)
    t0 = clock.now()
    fc.invoke(b'{"sleep": 5}')
    (run,) = fc.invocations
    assert run.billed_seconds == 5.0 and (run.started_at, run.finished_at) == (t0, t0 + 5)
    assert clock.now() == t0 + 5  # a Sync invoke from outside the simulation drives the clock through the run
    assert not run.timed_out and run.error is None
    fc.stop()

    slow = make_fc(timeout=2.0)
    with pytest.raises(InvocationFailed) as caught:
        slow.invoke(b'{"sleep": 5}')
    assert caught.value.error_type == "FunctionTimedOut"
    (run,) = slow.invocations
    assert run.timed_out and run.billed_seconds == 5.0 and "timed out" in run.error
    slow.invoke(b'{"sleep": 2}')  # exactly the timeout is fine
    assert slow.invocations[-1].error is None and not slow.invocations[-1].timed_out


def test_cpu_seconds_count_the_handler_work_not_the_virtual_time(make_fc):
    fc = make_fc()
    fc.invoke(b'{"spin": 200000}')
    fc.invoke(b'{"sleep": 200}')
    busy, sleeper = fc.invocations
    assert busy.cpu_seconds > 0 and busy.billed_seconds == 0.0  # work takes no virtual time
    assert sleeper.billed_seconds == 200.0
    assert sleeper.cpu_seconds < 200.0


def test_sync_runs_inline_when_the_caller_is_an_actor(make_fc, record_file, clock):
    fc = make_fc()
    t0 = clock.now()
    request_id, result = clock.call(lambda: fc.invoke(b'{"sleep": 4}'), "caller")
    assert result == {"echo": {"sleep": 4}, "request_id": request_id}
    assert records(record_file)[0]["thread"] == "caller"  # no actor of its own: the caller's
    assert clock.now() == t0 + 4


# ---------------------------------------------------------------------------- unhandled errors (sync)


def test_fc3_sync_unhandled_error_is_reported_like_fc(make_fc, user_key):
    fc = make_fc()
    response = fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b'{"raise": "boom"}')
    assert response.status_code == 200
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    body = json.loads(read_body(response))
    assert body["errorMessage"] == "boom" and body["errorType"] == "ValueError"
    assert any("index.py" in line for line in body["stackTrace"])
    (run,) = fc.invocations
    assert run.error == repr(ValueError("boom"))
    assert run.request_id == response.headers["x-fc-request-id"]


def test_fc2_sync_unhandled_error_raises_fc_error(make_fc, user_key):
    fc = make_fc(service=SERVICE)
    with pytest.raises(FcError) as caught:
        fc2_client(fc, user_key).invoke_function(SERVICE, "ros-copy-image", payload=b'{"raise": "bad"}')
    assert caught.value.status_code == 200
    assert json.loads(caught.value.message)["errorType"] == "ValueError"
    assert caught.value.request_id == fc.invocations[0].request_id


def test_direct_invoke_raises_invocation_failed(make_fc):
    fc = make_fc()
    request_id, result = fc.invoke(b'{"x": 1}')
    assert result == {"echo": {"x": 1}, "request_id": request_id}
    with pytest.raises(InvocationFailed) as caught:
        fc.invoke(b'{"raise": "direct"}')
    assert caught.value.body()["errorMessage"] == "direct"
    assert [run.api for run in fc.invocations] == ["direct", "direct"]
    with pytest.raises(FcApiError) as refused:
        fc.invoke(b"{}", "Eventually")
    assert (refused.value.status, refused.value.code) == (400, "InvalidArgument")
    with pytest.raises(FcApiError) as refused:
        fc.invoke(b"{}", "Sync", delay=5)  # a delay only applies to async invocations
    assert (refused.value.status, refused.value.code) == (400, "InvalidArgument")
    assert len(fc.invocations) == 2


# ---------------------------------------------------------------------------- async and delays


def test_fc3_async_delay_is_honoured_in_virtual_time(make_fc, user_key, record_file, clock):
    fc = make_fc()
    t0 = clock.now()
    response = fc3_async(fc, user_key, b'{"late": true}', delay="60")
    assert response.status_code == 202
    request_id = response.headers["x-fc-request-id"]
    assert fc.async_delays == [60]
    assert fc.pending_async() == 1

    clock.sleep(59.75)
    assert fc.invocations == [] and records(record_file) == [] and fc.pending_async() == 1

    assert fc.wait_idle()
    assert clock.now() == t0 + 60  # time stopped as soon as nothing was pending
    (run,) = fc.invocations
    assert (run.request_id, run.invocation_type, run.api, run.attempt) == (request_id, "Async", "fc3", 1)
    assert (run.scheduled_at, run.started_at) == (t0, t0 + 60)
    assert run.error is None and fc.pending_async() == 0
    assert records(record_file)[0]["request_id"] == request_id
    assert records(record_file)[0]["thread"].startswith("fc-async-")


def test_fc3_async_without_a_delay_runs_at_once(make_fc, user_key, clock):
    fc = make_fc()
    t0 = clock.now()
    response = fc3_async(fc, user_key, b"{}")  # no x-fc-async-delay header at all
    assert response.status_code == 202
    assert fc.wait_idle()
    assert [(run.api, run.started_at) for run in fc.invocations] == [("fc3", t0)]
    assert fc.async_delays == [0]


def test_a_task_id_fc_has_seen_is_refused_with_409_on_both_apis(make_fc, user_key, clock):
    fc = make_fc()
    headers = {"x-fc-async-delay": "30", "x-fc-async-task-id": "copyimage-w-1-3"}
    client = fc3_client(fc, user_key)
    first = fc3_invoke(client, fc.spec.name, b"{}", invocation_type="Async", common_headers=headers)
    assert first.status_code == 202 and fc.tasks == {"copyimage-w-1-3": "Enqueued"}
    with pytest.raises(ClientException) as refused:
        fc3_invoke(client, fc.spec.name, b"{}", invocation_type="Async", common_headers=headers)
    assert getattr(refused.value, "status_code", None) == 409
    with pytest.raises(FcApiError) as invalid:
        fc.invoke(b"{}", "Async", delay=1, task_id="1-starts-with-a-digit")
    assert invalid.value.status == 400
    assert fc.wait_idle()
    assert [run.task_id for run in fc.invocations] == ["copyimage-w-1-3"]  # the refused one never ran
    assert fc.tasks["copyimage-w-1-3"] == "Succeeded"

    fc2_fc = make_fc(service=SERVICE)
    task = {**ASYNC, "x-fc-async-delay": "5", "x-fc-stateful-async-invocation-id": "copyimage-w-2-1"}
    fc2_client(fc2_fc, user_key).invoke_function(SERVICE, fc2_fc.spec.name, payload=b"{}", headers=task)
    with pytest.raises(FcError) as again:
        fc2_client(fc2_fc, user_key).invoke_function(SERVICE, fc2_fc.spec.name, payload=b"{}", headers=task)
    assert again.value.status_code == 409


def test_a_stopped_task_never_runs_and_one_that_ran_cannot_be_stopped(make_fc, clock):
    fc = make_fc()
    fc.duplicate_every_async(0.0)  # its duplicate delivery is stopped with it
    fc.invoke(b"{}", "Async", delay=100, task_id="copyimage-receipt-1")
    assert fc.pending_async() == 2
    fc.stop_task("copyimage-receipt-1")
    assert fc.pending_async() == 0 and fc.tasks["copyimage-receipt-1"] == "Stopped"
    fc.invoke(b"{}", "Async", delay=1, task_id="copyimage-ran-1")
    assert fc.wait_idle()
    clock.sleep(200)
    assert [run.task_id for run in fc.invocations] == ["copyimage-ran-1", "copyimage-ran-1"]
    with pytest.raises(FcApiError) as late:
        fc.stop_task("copyimage-ran-1")
    assert late.value.status == 400
    with pytest.raises(FcApiError) as unknown:
        fc.stop_task("copyimage-never-1")
    assert unknown.value.status == 404


def test_fc2_async_with_delay(make_fc, user_key, clock):
    fc = make_fc(service=SERVICE)
    t0 = clock.now()
    response = fc2_async(fc, user_key, b"{}", delay="30")
    assert response.headers["x-fc-request-id"]
    assert fc.invocations == []
    assert fc.wait_idle()
    (run,) = fc.invocations
    assert run.api == "fc2" and run.request_id == response.headers["x-fc-request-id"]
    assert run.started_at == t0 + 30
    assert fc.async_delays == [30]


def test_wait_idle_gives_up_after_its_virtual_timeout(make_fc, clock):
    fc = make_fc()
    t0 = clock.now()
    fc.invoke(b"{}", "Async", delay=100)
    assert fc.wait_idle(timeout=50) is False
    assert clock.now() == t0 + 50 and fc.pending_async() == 1 and fc.invocations == []
    assert fc.wait_idle(timeout=50) is True
    assert clock.now() == t0 + 100


def test_async_runs_overlap_in_virtual_time(make_fc, clock):
    fc = make_fc()
    t0 = clock.now()
    fc.invoke(b'{"sleep": 30}', "Async", delay=10)
    fc.invoke(b'{"sleep": 30}', "Async", delay=20)
    fc.invoke(b'{"sleep": 5}', "Async")
    assert fc.wait_idle()
    # a second instance starts while the first still runs: no queue behind it
    assert sorted(timeline(fc, t0)) == [(1, 0, 5), (1, 10, 40), (1, 20, 50)]
    assert clock.now() == t0 + 50
    assert [run.billed_seconds for run in fc.invocations] == [5.0, 30.0, 30.0]


@pytest.mark.parametrize("delay", ["0", "3600", "-1", "3601", "1.5", "soon"])
def test_fc3_async_delay_outside_its_open_range_is_rejected(make_fc, user_key, delay):
    fc = make_fc()
    with pytest.raises(ClientException) as caught:
        fc3_async(fc, user_key, b"{}", delay=delay)
    assert (caught.value.status_code, caught.value.code) == (400, "InvalidArgument")
    assert fc.pending_async() == 0 and fc.async_delays == [] and fc.invocations == []


def test_fc3_async_delay_edges_inside_the_range(make_fc, user_key, clock):
    fc = make_fc()
    t0 = clock.now()
    for delay in ("1", "3599"):
        assert fc3_async(fc, user_key, b"{}", delay=delay).status_code == 202
    assert fc.wait_idle()
    assert [run.started_at - t0 for run in fc.invocations] == [1, 3599]


@pytest.mark.parametrize("delay", ["-1", "3601"])
def test_fc2_async_delay_outside_its_closed_range_is_rejected(make_fc, user_key, delay):
    fc = make_fc(service=SERVICE)
    with pytest.raises(FcError) as caught:
        fc2_async(fc, user_key, b"{}", delay=delay)
    assert (caught.value.status_code, caught.value.err_code) == (400, "InvalidArgument")
    assert caught.value.request_id not in ("", "unknown")
    assert fc.pending_async() == 0 and fc.async_delays == []


def test_fc2_async_delay_accepts_both_ends_of_its_range(make_fc, user_key, clock):
    fc = make_fc(service=SERVICE)
    t0 = clock.now()
    for delay in ("0", "3600"):
        assert fc2_async(fc, user_key, b"{}", delay=delay).headers["x-fc-request-id"]
    assert fc.async_delays == [0, 3600]
    assert fc.wait_idle()
    assert [(run.api, run.started_at - t0) for run in fc.invocations] == [("fc2", 0), ("fc2", 3600)]


def test_direct_async_delay_follows_the_closed_range(make_fc, clock):
    fc = make_fc()
    t0 = clock.now()
    for delay in (-1, 3601, 3600.5):
        with pytest.raises(FcApiError) as caught:
            fc.invoke(b"{}", "Async", delay=delay)
        assert (caught.value.status, caught.value.code) == (400, "InvalidArgument")
    for delay in (0, 3600):
        fc.invoke(b"{}", "Async", delay=delay)
    assert fc.wait_idle()
    assert [(run.api, run.started_at - t0) for run in fc.invocations] == [("direct", 0), ("direct", 3600)]


def test_oversized_async_payload_is_rejected_on_both_paths(make_fc, user_key):
    fc3 = make_fc()
    too_big, at_limit = b"x" * (ASYNC_PAYLOAD_LIMIT + 1), b"x" * ASYNC_PAYLOAD_LIMIT
    with pytest.raises(ClientException) as caught:
        fc3_async(fc3, user_key, too_big, delay="1")
    assert (caught.value.status_code, caught.value.code) == (413, "RequestEntityTooLarge")
    # exactly the limit is fine
    assert fc3_async(fc3, user_key, at_limit, delay="1").status_code == 202
    assert fc3.wait_idle()
    assert len(fc3.invocations) == 1 and len(fc3.invocations[0].payload) == ASYNC_PAYLOAD_LIMIT
    fc3.stop()

    fc_2 = make_fc(service=SERVICE)
    with pytest.raises(FcError) as caught2:
        fc2_async(fc_2, user_key, too_big)
    assert (caught2.value.status_code, caught2.value.err_code) == (413, "RequestEntityTooLarge")
    assert fc_2.invocations == []


def test_async_unhandled_error_is_retried_then_dropped(make_fc, user_key, record_file, clock):
    fc = make_fc(max_async_retries=2)
    t0 = clock.now()
    response = fc3_async(fc, user_key, b'{"raise": "always", "sleep": 3}', delay="10")
    request_id = response.headers["x-fc-request-id"]
    assert fc.wait_idle()
    clock.sleep(3600)  # nothing else may come
    runs = fc.invocations
    # backoff 1 s, then 2 s, from the end of the failed run; the retry is scheduled when the run failed
    assert timeline(fc, t0) == [(1, 10, 13), (2, 14, 17), (3, 19, 22)]
    assert [run.scheduled_at - t0 for run in runs] == [0, 13, 17]
    assert {run.request_id for run in runs} == {request_id}
    assert all(run.error == repr(ValueError("always")) for run in runs)
    assert [r["request_id"] for r in records(record_file)] == [request_id] * 3
    assert fc.pending_async() == 0


def test_retry_backoff_can_be_changed(make_fc, clock):
    fc = make_fc(max_async_retries=3)
    fc.retry_backoff_seconds = 60
    t0 = clock.now()
    fc.invoke(b'{"raise": "again"}', "Async")
    assert fc.wait_idle()
    assert timeline(fc, t0) == [(1, 0, 0), (2, 60, 60), (3, 180, 180), (4, 420, 420)]


def test_no_retries_when_max_async_retries_is_zero(make_fc, clock):
    fc = make_fc(max_async_retries=0)
    fc.invoke(b'{"raise": "once"}', "Async")
    assert fc.wait_idle()
    clock.sleep(3600)
    assert len(fc.invocations) == 1


# ---------------------------------------------------------------------------- faults


def test_fail_next_before_crashes_without_running_the_handler_then_retry_succeeds(make_fc, user_key, record_file):
    fc = make_fc()
    fc.fail_next(2, when="before")
    response = fc3_async(fc, user_key, b'{"n": 1}', delay="1")
    assert fc.wait_idle()
    runs = fc.invocations
    assert [run.attempt for run in runs] == [1, 2, 3]
    assert "InjectedFault" in runs[0].error and "InjectedFault" in runs[1].error and runs[2].error is None
    assert {run.request_id for run in runs} == {response.headers["x-fc-request-id"]}
    assert len(records(record_file)) == 1  # only the third attempt reached the handler


def test_fail_next_after_runs_the_handler_but_reports_failure(make_fc, user_key, record_file):
    fc = make_fc()
    fc.fail_next(1, when="after")
    response = fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b'{"n": 2}')
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(read_body(response))["errorType"] == "InjectedFault"
    assert len(records(record_file)) == 1  # the work was done
    assert fc.invocations[0].result is not None and "InjectedFault" in fc.invocations[0].error

    fc.fail_next(1, when="after")
    fc.invoke(b'{"n": 3}', "Async")
    assert fc.wait_idle()
    assert len(records(record_file)) == 3  # the async event ran twice: its work done twice
    assert [run.attempt for run in fc.invocations[1:]] == [1, 2]

    with pytest.raises(ValueError):
        fc.fail_next(1, when="during")


def test_duplicate_next_async_delivers_twice(make_fc, user_key, record_file, clock):
    fc = make_fc(service=SERVICE)
    fc.duplicate_next_async(1, gap=50)
    t0 = clock.now()
    first = fc2_async(fc, user_key, b'{"d": 1}', delay="5")
    second = fc2_async(fc, user_key, b'{"d": 2}', delay="5")
    assert fc.wait_idle()
    first_id, second_id = first.headers["x-fc-request-id"], second.headers["x-fc-request-id"]
    assert [(run.request_id, run.started_at - t0) for run in fc.invocations] == [
        (first_id, 5),
        (second_id, 5),
        (first_id, 55),  # the copy, the gap later
    ]
    assert all(run.attempt == 1 and run.error is None for run in fc.invocations)
    assert len(records(record_file)) == 3


def test_redeliver_after_delivers_every_first_delivery_once_more_late(make_fc, record_file, clock):
    fc = make_fc()
    fc.redeliver_after = 600
    t0 = clock.now()
    request_id, _ = fc.invoke(b'{"sleep": 5}', "Async", delay=10)
    fc.invoke(b"{}")  # a Sync run is never redelivered
    assert fc.wait_idle()
    assert clock.now() == t0 + 620
    clock.sleep(3600)  # and the late delivery is not delivered late again
    async_runs = [run for run in fc.invocations if run.invocation_type == "Async"]
    assert [(run.request_id, run.attempt) for run in async_runs] == [(request_id, 1), (request_id, 1)]
    assert timeline(fc, t0)[0] == (1, 0, 0)  # the Sync run
    assert [(run.scheduled_at - t0, run.started_at - t0) for run in async_runs] == [(0, 10), (15, 615)]
    assert len(fc.invocations) == 3 and len(records(record_file)) == 3


def test_redeliver_after_is_off_by_default(make_fc, clock):
    fc = make_fc()
    assert fc.redeliver_after is None
    fc.invoke(b"{}", "Async", delay=1)
    assert fc.wait_idle()
    clock.sleep(86400)
    assert len(fc.invocations) == 1


# ---------------------------------------------------------------------------- signatures and routes


def test_fc3_signature_rejections(make_fc, user_key, store):
    fc = make_fc()
    sts = store.issue_sts()
    unknown = AccessKey("LTAIunknown0000", "secret")
    cases = [
        (fc3_client(fc, user_key, secret="wrong-secret"), "SignatureDoesNotMatch"),
        (fc3_client(fc, sts, token="CAISwrong"), "InvalidSecurityToken.Mismatch"),
        (fc3_client(fc, unknown), "InvalidAccessKeyId.NotFound"),
    ]
    for client, code in cases:
        with pytest.raises(ClientException) as caught:
            fc3_invoke(client, "ros-copy-image", b"{}")
        assert caught.value.code == code
    assert fc.invocations == []
    # the STS key with its own token is accepted
    assert fc3_invoke(fc3_client(fc, sts), "ros-copy-image", b"{}").status_code == 200


def test_fc2_signature_rejections(make_fc, user_key, store):
    fc = make_fc(service=SERVICE)
    sts = store.issue_sts()
    unknown = AccessKey("LTAIunknown0000", "secret")
    cases = [
        (fc2_client(fc, user_key, secret="wrong-secret"), "SignatureNotMatch"),
        (fc2_client(fc, sts, token="CAISwrong"), "InvalidSecurityToken"),
        (fc2_client(fc, unknown), "InvalidAccessKeyID"),
    ]
    for client, code in cases:
        with pytest.raises(FcError) as caught:
            client.invoke_function(SERVICE, "ros-copy-image", payload=b"{}")
        assert (caught.value.status_code, caught.value.err_code) == (403, code)
    assert fc.invocations == []
    assert fc2_client(fc, sts).invoke_function(SERVICE, "ros-copy-image", payload=b"{}").data


def test_unknown_function_or_service_is_404(make_fc, user_key):
    fc3 = make_fc()
    for name in ("no-such-function",):
        with pytest.raises(ClientException) as caught:
            fc3_invoke(fc3_client(fc3, user_key), name, b"{}")
        assert (caught.value.status_code, caught.value.code) == (404, "FunctionNotFound")
    with pytest.raises(FcError) as caught2:  # an FC 3.0 function has no FC 2.0 service
        fc2_client(fc3, user_key).invoke_function(SERVICE, "ros-copy-image", payload=b"{}")
    assert (caught2.value.status_code, caught2.value.err_code) == (404, "ServiceNotFound")
    fc3.stop()

    fc_2 = make_fc(service=SERVICE)
    client = fc2_client(fc_2, user_key)
    for service, function, code in [
        ("other-svc", "ros-copy-image", "ServiceNotFound"),
        (SERVICE, "no-such-function", "FunctionNotFound"),
    ]:
        with pytest.raises(FcError) as caught2:
            client.invoke_function(service, function, payload=b"{}")
        assert (caught2.value.status_code, caught2.value.err_code) == (404, code)
    with pytest.raises(ClientException) as caught:  # a function in a service is not an FC 3.0 function
        fc3_invoke(fc3_client(fc_2, user_key), "ros-copy-image", b"{}")
    assert (caught.value.status_code, caught.value.code) == (404, "FunctionNotFound")
    assert fc_2.invocations == []


# ---------------------------------------------------------------------------- lifecycle


def test_stop_restores_environment_and_sys_path(code_dir, record_file, store, clock, monkeypatch):
    monkeypatch.setenv("MY_SETTING", "before")
    monkeypatch.delenv("FC_FUNCTION_NAME", raising=False)
    environ_before, path_before = dict(os.environ), list(sys.path)
    spec = FunctionSpec(
        code_dir=code_dir, service=SERVICE, environment={"RECORD_FILE": str(record_file), "MY_SETTING": "during"}
    )
    fc = FcStandIn(clock, store, spec).start()
    try:
        assert os.environ["MY_SETTING"] == "during" and os.environ["FC_SERVICE_NAME"] == SERVICE
        assert sys.path[0] == str(code_dir.resolve())
        role = fc.function_credentials
    finally:
        fc.stop()
    assert dict(os.environ) == environ_before
    assert sys.path == path_before
    assert store.lookup(role.id) is None  # the role's session ends with the function
    with pytest.raises(RuntimeError):
        fc.invoke(b"{}")


def test_async_events_still_scheduled_at_stop_never_run(make_fc, clock):
    fc = make_fc()
    fc.invoke(b"{}", "Async", delay=100)
    fc.stop()
    clock.sleep(200)
    assert fc.invocations == [] and fc.pending_async() == 0


def test_a_broken_handler_fails_start_and_leaves_the_process_alone(tmp_path, store, clock):
    code = tmp_path / "broken"
    code.mkdir()
    (code / "index.py").write_text("raise ImportError('missing dependency')\n")
    environ_before, path_before = dict(os.environ), list(sys.path)
    fc = FcStandIn(clock, store, FunctionSpec(code_dir=code))
    with pytest.raises(ImportError, match="missing dependency"):
        fc.start()
    assert dict(os.environ) == environ_before and sys.path == path_before
    assert store.lookup(fc.function_credentials.id) is None
    assert not any(name.startswith("_fc_handler_") for name in sys.modules)
