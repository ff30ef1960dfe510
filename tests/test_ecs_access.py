"""How the function reaches ECS: the role's credentials, signed requests, and retries on transient errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, copies_in, properties, request_and_answer


@pytest.mark.parametrize("kind", ["throttle", "server_error", "unavailable"])
def test_transient_ecs_errors_are_retried(cloud, source, kind):
    cloud.ecs.faults.add("DescribeImages", kind, count=2)
    cloud.ecs.faults.add("CopyImage", kind, count=1)
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "SUCCESS", answer
    codes = [c.error_code for c in cloud.ecs.calls_to("CopyImage")]
    assert codes[0] is not None and codes[-1] is None
    assert len(copies_in(cloud)) == 1  # the retried CopyImage started no second copy


def test_ecs_errors_that_outlast_the_retries_fail_with_the_code(make_cloud):
    cloud = make_cloud(environment={"COPYIMAGE_DEFER": "false"})
    source = cloud.seed_image("src")
    cloud.ecs.faults.add("CopyImage", "server_error", count=None)
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    assert "kept refusing: ECS CopyImage failed: InternalError" in answer["Reason"]
    assert len(cloud.ecs.calls_to("CopyImage")) == 4  # COPYIMAGE_ECS_ATTEMPTS, bounded


def test_every_ecs_call_is_signed_with_the_functions_role(cloud, source):
    request_and_answer(cloud, "Create", properties(source))
    role = cloud.fc.function_credentials
    assert cloud.ecs.calls and {c.access_key_id for c in cloud.ecs.calls} == {role.id}
    assert all(c.status == 200 for c in cloud.ecs.calls)


@pytest.mark.parametrize("verify", [True, False])
def test_rejected_signature_fails_the_create_with_the_services_code(make_cloud, verify):
    cloud = make_cloud(environment={} if verify else {"COPYIMAGE_VERIFY_WITH_ROS": "false"})
    source = cloud.seed_image("golden-source")
    cloud.credentials.revoke(cloud.fc.function_credentials.id)  # the role's STS key no longer exists
    _, answer = request_and_answer(cloud, "Create", properties(source))
    assert answer["Status"] == "FAILED"
    if verify:  # ROS is asked first; the reason says what to grant, or how to turn verification off
        assert "ROS GetStack failed: InvalidAccessKeyId.NotFound" in answer["Reason"]
        assert "ros:GetStack" in answer["Reason"] and "COPYIMAGE_VERIFY_WITH_ROS=false" in answer["Reason"]
        assert cloud.ecs.calls == []
    else:
        # DescribeRegions is a courtesy (its failure lets the Create go on): the next ECS call's refusal is the reason.
        assert "ECS DescribeImages failed: InvalidAccessKeyId.NotFound" in answer["Reason"]
        assert [c.action for c in cloud.ros.api.calls] == []
    assert copies_in(cloud) == []


def test_python312_runtime_uses_the_credentials_from_the_environment():
    """On python3.12 FC passes no context.credentials; the default chain reads ALIBABA_CLOUD_* once, at
    import, so this runs in a fresh process where the FC stand-in sets them before the function needs them."""
    script = textwrap.dedent(
        """
        import json, os
        os.environ.pop("ALIBABA_CLOUD_ACCESS_KEY_ID", None)
        from emulator.cloud import LocalCloud
        with LocalCloud(copy_seconds=10, credentials_in_context=False,
                        credentials_in_environment=True) as cloud:
            source = cloud.seed_image("src")
            props = {"ImageId": source.image_id, "DestinationRegionId": "cn-shanghai"}
            request = cloud.ros.new_request("Create", props)
            cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
            answer = cloud.ros.wait_answer(request["RequestId"], timeout=600)
            print(json.dumps({"status": answer["Status"], "keys": sorted({c.access_key_id for c in cloud.ecs.calls}),
                              "role": cloud.fc.function_credentials.id}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{ROOT / 'function'}", "HOME": "/nonexistent"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "SUCCESS"
    assert result["keys"] == [result["role"]]
