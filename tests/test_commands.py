"""The README's commands, run as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from conftest import ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_demo_runs_the_whole_lifecycle_and_prints_the_image_id():
    done = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--copy-minutes", "45"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    image_id = re.search(r"CREATE_COMPLETE, ImageId (m-\w+)", out).group(1)
    assert "UPDATE_COMPLETE, same ImageId, tag smoke-step=updated on the copy" in out
    assert re.search(r"ok  leftovers .* no image of run", out)
    # Through the ROS API, as a client would: the provider's stack (deploy/provider.yml) and the user's.
    assert re.search(r"ROS API calls: +\d+ \(.*CreateStack 2", out)
    assert re.search(r"code that ran: +package [0-9a-f]{12} \(FC python3.10, isolated\)", out)
    assert re.search(r"ok  uninstall .* the provider stack \(role and function\) deleted", out)
    assert "0 protocol violations" in out
    assert f"Demo complete: ImageId {image_id}" in out
    assert "copy at 100% (Available)" in out  # progress lines
    assert '"level"' not in out  # the function's logs stay out of the demo's output


def test_demo_exits_non_zero_when_a_step_fails(monkeypatch, capsys):
    from deploy import demo, smoke

    original = smoke.local_target

    def failing_copy(cloud, package=None):
        cloud.ecs.fail_copies(1, at_fraction=0.5)  # the copy ends CreateFailed: the stack rolls back
        return original(cloud, package)

    monkeypatch.setattr(smoke, "local_target", failing_copy)
    assert demo.run(copy_minutes=1) == 1
    out = capsys.readouterr().out
    assert "CREATE_ROLLBACK_COMPLETE" in out and "FAILED" in out


def test_serve_prints_endpoints_an_sdk_can_use():
    from alibabacloud_ecs20140526 import models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    server = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve"], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if line.startswith("  export POWERTOOLS_SERVICE_NAME"):
                break
        out = "".join(lines)
        key_id, secret = re.search(r"accept: (\S+) / (\S+)", out).groups()
        image_id, region = re.search(r"source image: (m-\w+) in (\S+)", out).groups()
        endpoint = re.search(r"endpoint='([^']+)'", out).group(1)
        assert re.search(r"export COPYIMAGE_ECS_ENDPOINT=\"http://127\.0\.0\.1:\d+\"", out)
        client = Client(
            Config(access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http", region_id=region)
        )
        body = client.describe_images(models.DescribeImagesRequest(region_id=region, image_id=image_id)).body
        assert [image.image_id for image in body.images.image] == [image_id]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_prints_a_ros_api_the_ros_sdk_can_use_on_a_clock_that_starts_now():
    from alibabacloud_ros20190910 import models as ros_models
    from alibabacloud_ros20190910.client import Client as RosClient
    from alibabacloud_tea_openapi.models import Config
    from Tea.exceptions import TeaException

    started = time.time()
    server = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve"], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if line.startswith("Ready."):
                break
        out = "".join(lines)
        assert re.search(r"ROS API \(2019-09-10, RPC\): +http://127\.0\.0\.1:\d+", out)
        assert "aliyun configure set --profile" in out and "--insecure" in out and "iact3" in out
        sdk = re.search(
            r"ROS SDK.*\n  Config\(access_key_id='(\S+)', access_key_secret='(\S+)', endpoint='([^']+)'", out
        )
        key_id, secret, endpoint = sdk.groups()
        region = re.search(r"source image: m-\w+ in (\S+)", out).group(1)
        client = RosClient(
            Config(access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http", region_id=region)
        )
        missing = "0f0e0d0c-0b0a-4908-8706-050403020100"
        with pytest.raises(TeaException) as refused:  # signed and routed: the stand-in looked for the stack
            client.get_stack(ros_models.GetStackRequest(region_id=region, stack_id=missing))
        assert refused.value.code == "StackNotFound"
        image_id = re.search(r"source image: (m-\w+)", out).group(1)
        ecs_endpoint = re.search(r"endpoint='([^']+)'", out).group(1)
        created = _creation_time(key_id, secret, ecs_endpoint, region, image_id)
        assert started - 5 <= created <= time.time() + 5  # outside clients see today's times, not a fixed date
    finally:
        server.terminate()
        server.wait(timeout=10)


def _creation_time(key_id: str, secret: str, endpoint: str, region: str, image_id: str) -> float:
    from alibabacloud_ecs20140526 import models
    from alibabacloud_ecs20140526.client import Client
    from alibabacloud_tea_openapi.models import Config

    config = Config(
        access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http", region_id=region
    )
    body = Client(config).describe_images(models.DescribeImagesRequest(region_id=region, image_id=image_id)).body
    stamp = body.images.image[0].creation_time
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
