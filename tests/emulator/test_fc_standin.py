"""The Function Compute stand-in, driven by the real FC 3.0 (alibabacloud_fc20230330) and FC 2.0 (fc2) SDKs."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import fc2
import pytest
from alibabacloud_fc20230330.client import Client as Fc3Client
from alibabacloud_fc20230330.models import InvokeFunctionHeaders, InvokeFunctionRequest
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions
from fc2.fc_exceptions import FcError

from emulator.clock import Clock
from emulator.credentials import AccessKey, CredentialStore
from emulator.fc import (
    ASYNC_PAYLOAD_LIMIT,
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
    import time

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
        }
        with _lock:
            with open(os.environ["RECORD_FILE"], "a") as out:
                out.write(json.dumps(record) + "\\n")
        if "sleep" in data:
            time.sleep(data["sleep"])
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
def code_dir(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    (code / "helperpkg").mkdir(parents=True)
    (code / "index.py").write_text(HANDLER)
    (code / "helperpkg" / "__init__.py").write_text("MARK = 'helper-loaded'\n")
    return code


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
def make_fc(code_dir: Path, record_file: Path, store: CredentialStore):
    started: list[FcStandIn] = []

    def make(scale: float = 1.0, **spec_fields: object) -> FcStandIn:
        environment = {"RECORD_FILE": str(record_file), **spec_fields.pop("environment", {})}
        spec = FunctionSpec(code_dir=code_dir, environment=environment, **spec_fields)
        fc = FcStandIn(Clock(scale=scale), store, spec).start()
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


# ---------------------------------------------------------------------------- sync, context, environment


def test_fc3_sync_runs_handler_with_fc_context_and_environment(make_fc, user_key, record_file, store):
    fc = make_fc(environment={"MY_SETTING": "on"}, memory=512, timeout=120.0)
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

    env = seen["env"]
    assert env["FC_FUNCTION_NAME"] == "ros-copy-image"
    assert env["FC_REGION"] == "cn-hangzhou"
    assert env["FC_ACCOUNT_ID"] == "1234567890123456"
    assert env["FC_FUNCTION_HANDLER"] == "index.handler"
    assert env["FC_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["FC_INSTANCE_ID"] and env["FC_INSTANCE_ID"] == fc.instance_id
    assert "FC_SERVICE_NAME" not in env and "FC_QUALIFIER" not in env
    assert env["MY_SETTING"] == "on"
    assert env["COPYIMAGE_TIME_SCALE"] == repr(fc.clock.scale)
    assert not any(name.startswith("ALIBABA_CLOUD_") for name in env)
    assert {k: v for k, v in fc.function_environment().items() if k in env} == {
        k: v for k, v in env.items() if k in fc.function_environment()
    }
    assert fc.service_token == "acs:fc:cn-hangzhou:1234567890123456:functions/ros-copy-image"

    (run,) = fc.invocations
    assert (run.request_id, run.invocation_type, run.api, run.attempt) == (request_id, "Sync", "fc3", 1)
    assert run.error is None and run.result == {"echo": {"hello": "world"}, "request_id": request_id}
    assert run.finished_at is not None and not run.timed_out


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


def test_reserved_environment_names_are_refused(code_dir, store):
    with pytest.raises(ValueError, match="reserved"):
        FcStandIn(Clock(), store, FunctionSpec(code_dir=code_dir, environment={"FC_REGION": "x"}))
    spec = FunctionSpec(code_dir=code_dir)
    fc = FcStandIn(Clock(), store, spec)
    spec.environment["FC_INSTANCE_ID"] = "mine"  # added after construction, as a harness may do
    environ_before = dict(os.environ)
    with pytest.raises(ValueError, match="reserved"):
        fc.start()
    assert dict(os.environ) == environ_before


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


# ---------------------------------------------------------------------------- async and delays


def test_fc3_async_delay_is_honoured_in_virtual_time(make_fc, user_key, record_file):
    fc = make_fc(scale=120.0)  # 60 virtual seconds pass in 0.5 s
    response = fc3_invoke(
        fc3_client(fc, user_key),
        "ros-copy-image",
        b'{"late": true}',
        invocation_type="Async",
        common_headers={"x-fc-async-delay": "60"},
    )
    assert response.status_code == 202
    request_id = response.headers["x-fc-request-id"]
    assert fc.async_delays == [60]
    assert fc.pending_async() == 1

    time.sleep(0.25)  # half the delay
    assert fc.invocations == [] and records(record_file) == []

    assert fc.wait_idle(timeout=5)
    (run,) = fc.invocations
    assert (run.request_id, run.invocation_type, run.api, run.attempt) == (request_id, "Async", "fc3", 1)
    assert 60.0 <= run.started_at - run.scheduled_at < 90.0  # not before the delay; late only by scheduling
    assert run.error is None and fc.pending_async() == 0
    assert records(record_file)[0]["request_id"] == request_id


def test_fc2_async_with_delay(make_fc, user_key, record_file):
    fc = make_fc(scale=120.0, service=SERVICE)
    response = fc2_client(fc, user_key).invoke_function(
        SERVICE,
        "ros-copy-image",
        payload=b"{}",
        headers={"x-fc-invocation-type": "Async", "x-fc-async-delay": "30"},
        qualifier="LATEST",
    )
    assert response.headers["x-fc-request-id"]
    assert fc.invocations == []
    assert fc.wait_idle(timeout=5)
    (run,) = fc.invocations
    assert run.api == "fc2" and run.request_id == response.headers["x-fc-request-id"]
    assert 30.0 <= run.started_at - run.scheduled_at < 60.0  # not before the delay; late only by scheduling
    assert fc.async_delays == [30]


def test_async_runs_overlap(make_fc, user_key):
    fc = make_fc()
    for _ in range(2):
        fc.invoke(b'{"sleep": 0.3}', "Async")
    assert fc.wait_idle(timeout=5)
    first, second = fc.invocations
    assert second.started_at < first.finished_at  # a second instance, not a queue behind the first


@pytest.mark.parametrize("delay", ["-1", "3601", "1.5", "soon"])
def test_fc3_invalid_async_delay_is_rejected(make_fc, user_key, delay):
    fc = make_fc()
    with pytest.raises(ClientException) as caught:
        fc3_invoke(
            fc3_client(fc, user_key),
            "ros-copy-image",
            b"{}",
            invocation_type="Async",
            common_headers={"x-fc-async-delay": delay},
        )
    assert (caught.value.status_code, caught.value.code) == (400, "InvalidArgument")
    assert fc.pending_async() == 0 and fc.async_delays == [] and fc.invocations == []


def test_fc2_invalid_async_delay_is_rejected(make_fc, user_key):
    fc = make_fc(service=SERVICE)
    with pytest.raises(FcError) as caught:
        fc2_client(fc, user_key).invoke_function(
            SERVICE, "ros-copy-image", payload=b"{}", headers={**ASYNC, "x-fc-async-delay": "3601"}
        )
    assert (caught.value.status_code, caught.value.err_code) == (400, "InvalidArgument")
    assert caught.value.request_id not in ("", "unknown")
    assert fc.pending_async() == 0


def test_oversized_async_payload_is_rejected_on_both_paths(make_fc, user_key, code_dir, store):
    fc3 = make_fc()
    too_big, at_limit = b"x" * (ASYNC_PAYLOAD_LIMIT + 1), b"x" * ASYNC_PAYLOAD_LIMIT
    with pytest.raises(ClientException) as caught:
        fc3_invoke(fc3_client(fc3, user_key), "ros-copy-image", too_big, invocation_type="Async")
    assert (caught.value.status_code, caught.value.code) == (413, "RequestEntityTooLarge")
    # exactly the limit is fine
    response = fc3_invoke(fc3_client(fc3, user_key), "ros-copy-image", at_limit, invocation_type="Async")
    assert response.status_code == 202
    assert fc3.wait_idle(timeout=5)
    assert len(fc3.invocations) == 1 and len(fc3.invocations[0].payload) == ASYNC_PAYLOAD_LIMIT
    fc3.stop()

    fc_2 = make_fc(service=SERVICE)
    with pytest.raises(FcError) as caught2:
        fc2_client(fc_2, user_key).invoke_function(SERVICE, "ros-copy-image", payload=too_big, headers=ASYNC)
    assert (caught2.value.status_code, caught2.value.err_code) == (413, "RequestEntityTooLarge")
    assert fc_2.invocations == []


def test_async_unhandled_error_is_retried_then_dropped(make_fc, user_key, record_file):
    fc = make_fc(scale=50.0, max_async_retries=2)
    response = fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b'{"raise": "always"}', invocation_type="Async")
    request_id = response.headers["x-fc-request-id"]
    assert fc.wait_idle(timeout=5)
    time.sleep(0.2)  # 10 virtual seconds more: nothing else may come
    runs = fc.invocations
    assert [run.attempt for run in runs] == [1, 2, 3]
    assert {run.request_id for run in runs} == {request_id}
    assert all(run.error == repr(ValueError("always")) for run in runs)
    assert [r["request_id"] for r in records(record_file)] == [request_id] * 3
    # backoff 1 s then 2 s (virtual) between a failure and the retry
    assert 1.0 <= runs[1].started_at - runs[0].finished_at < 3.0
    assert 2.0 <= runs[2].started_at - runs[1].finished_at < 4.0
    assert fc.pending_async() == 0


def test_no_retries_when_max_async_retries_is_zero(make_fc):
    fc = make_fc(scale=50.0, max_async_retries=0)
    fc.invoke(b'{"raise": "once"}', "Async")
    assert fc.wait_idle(timeout=5)
    time.sleep(0.1)
    assert len(fc.invocations) == 1


# ---------------------------------------------------------------------------- faults


def test_fail_next_before_crashes_without_running_the_handler_then_retry_succeeds(make_fc, user_key, record_file):
    fc = make_fc(scale=50.0)
    fc.fail_next(2, when="before")
    response = fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b'{"n": 1}', invocation_type="Async")
    assert fc.wait_idle(timeout=5)
    runs = fc.invocations
    assert [run.attempt for run in runs] == [1, 2, 3]
    assert "InjectedFault" in runs[0].error and "InjectedFault" in runs[1].error and runs[2].error is None
    assert {run.request_id for run in runs} == {response.headers["x-fc-request-id"]}
    assert len(records(record_file)) == 1  # only the third attempt reached the handler


def test_fail_next_after_runs_the_handler_but_reports_failure(make_fc, user_key, record_file):
    fc = make_fc(scale=50.0)
    fc.fail_next(1, when="after")
    response = fc3_invoke(fc3_client(fc, user_key), "ros-copy-image", b'{"n": 2}')
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(read_body(response))["errorType"] == "InjectedFault"
    assert len(records(record_file)) == 1  # the work was done
    assert fc.invocations[0].result is not None and "InjectedFault" in fc.invocations[0].error

    fc.fail_next(1, when="after")
    fc.invoke(b'{"n": 3}', "Async")
    assert fc.wait_idle(timeout=5)
    assert len(records(record_file)) == 3  # the async event ran twice: its work done twice
    assert [run.attempt for run in fc.invocations[1:]] == [1, 2]

    with pytest.raises(ValueError):
        fc.fail_next(1, when="during")


def test_duplicate_next_async_delivers_twice(make_fc, user_key, record_file):
    fc = make_fc(service=SERVICE)
    fc.duplicate_next_async(1)
    client = fc2_client(fc, user_key)
    first = client.invoke_function(
        SERVICE, "ros-copy-image", payload=b'{"d": 1}', headers={"x-fc-invocation-type": "Async"}
    )
    second = client.invoke_function(
        SERVICE, "ros-copy-image", payload=b'{"d": 2}', headers={"x-fc-invocation-type": "Async"}
    )
    assert fc.wait_idle(timeout=5)
    ids = [run.request_id for run in fc.invocations]
    assert sorted(ids) == sorted([first.headers["x-fc-request-id"]] * 2 + [second.headers["x-fc-request-id"]])
    assert all(run.attempt == 1 and run.error is None for run in fc.invocations)
    assert len(records(record_file)) == 3


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


# ---------------------------------------------------------------------------- billing, timeout, lifecycle


def test_billed_seconds_and_timeout_are_virtual(make_fc):
    fc = make_fc(scale=100.0, timeout=300.0)
    fc.invoke(b'{"sleep": 0.05}')  # 5 virtual seconds
    (run,) = fc.invocations
    assert 5.0 <= run.billed_seconds < 50.0  # at least the sleep; the rest is the machine's speed
    assert not run.timed_out and run.error is None
    fc.stop()

    slow = make_fc(scale=100.0, timeout=2.0)
    with pytest.raises(InvocationFailed) as caught:
        slow.invoke(b'{"sleep": 0.05}')
    assert caught.value.error_type == "FunctionTimedOut"
    (run,) = slow.invocations
    assert run.timed_out and run.billed_seconds > 2.0 and "timed out" in run.error


def test_stop_restores_environment_and_sys_path(code_dir, record_file, store, monkeypatch):
    monkeypatch.setenv("MY_SETTING", "before")
    monkeypatch.delenv("FC_FUNCTION_NAME", raising=False)
    environ_before, path_before = dict(os.environ), list(sys.path)
    spec = FunctionSpec(
        code_dir=code_dir, service=SERVICE, environment={"RECORD_FILE": str(record_file), "MY_SETTING": "during"}
    )
    fc = FcStandIn(Clock(), store, spec).start()
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


def test_a_broken_handler_fails_start_and_leaves_the_process_alone(tmp_path, store):
    code = tmp_path / "broken"
    code.mkdir()
    (code / "index.py").write_text("raise ImportError('missing dependency')\n")
    environ_before, path_before = dict(os.environ), list(sys.path)
    fc = FcStandIn(Clock(), store, FunctionSpec(code_dir=code))
    with pytest.raises(ImportError, match="missing dependency"):
        fc.start()
    assert dict(os.environ) == environ_before and sys.path == path_before
    assert store.lookup(fc.function_credentials.id) is None
    assert not any(name.startswith("_fc_handler_") for name in sys.modules)
