"""Fixtures: a whole local cloud (ECS, FC and ROS stand-ins) running the real function on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json

import pytest

from emulator.cloud import KEY_PARAMETER, ROOT, LocalCloud

__all__ = ["ROOT"]

DESTINATION = "cn-shanghai"


@pytest.fixture
def make_cloud():
    """Start a LocalCloud with the given options; stopped after the test."""
    started: list[LocalCloud] = []

    def start(**options) -> LocalCloud:
        options.setdefault("copy_seconds", 30.0)
        cloud = LocalCloud(**options).start()
        started.append(cloud)
        return cloud

    yield start
    for cloud in started:
        cloud.stop()  # continuations still scheduled are dropped, as tests that need them wait for them


@pytest.fixture
def cloud(make_cloud) -> LocalCloud:
    return make_cloud()


@pytest.fixture
def source(cloud):
    return cloud.seed_image("golden-source", snapshot_count=2)


def properties(source_image, **extra) -> dict:
    return {"ImageId": source_image.image_id, "DestinationRegionId": DESTINATION, **extra}


def send(
    cloud: LocalCloud, request: dict, invocation_type: str = "Sync", timeout: float = 86400.0, settle: bool = True
) -> dict | None:
    """Invoke the function with a ROS request and return the answer ROS accepted (None if none came), waiting at
    most ``timeout`` virtual seconds.

    ``settle`` lets virtual time run until no invocation is running or scheduled, so calls made after the answer
    (such as marking the copy answered) are over before the test looks at ECS.
    """
    with contextlib.suppress(Exception):  # a failed Sync run: the answer (if any) is what counts
        cloud.fc.invoke(json.dumps(request).encode(), invocation_type=invocation_type)
    answer = cloud.ros.wait_answer(request["RequestId"], timeout=timeout)
    if settle:
        cloud.fc.wait_idle()
    return answer


def request_and_answer(
    cloud: LocalCloud, request_type: str, props: dict, settle: bool = True, timeout: float = 86400.0, **fields
) -> tuple[dict, dict | None]:
    request = cloud.ros.new_request(request_type, props, **fields)
    return request, send(cloud, request, settle=settle, timeout=timeout)


def copies_in(cloud: LocalCloud, region: str = DESTINATION) -> list:
    return [image for image in cloud.ecs.images(region) if image.is_copy]


def seal(cloud: LocalCloud, body: dict, version: int = 1) -> dict:
    """A continuation event sealed as the function seals one (HMAC-SHA256 over the canonical JSON of the body and
    its key version), with version ``version`` of the cloud's key: what only a holder of the key can write."""
    key = cloud.oos.parameters[(cloud.region, KEY_PARAMETER)].values[version - 1][0]
    body = {**body, "KeyVersion": version}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return {"Continuation": body, "Mac": hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()}


def settle_stack(cloud: LocalCloud, client, stack_id: str, step: float = 30.0, polls: int = 2000):
    """Poll GetStack through ``client`` (the ROS SDK), letting ``step`` virtual seconds pass between polls, until
    the stack's operation ends: its last body, or None once the stack is gone."""
    from alibabacloud_ros20190910 import models as ros_models
    from alibabacloud_tea_openapi.exceptions import ClientException

    for _ in range(polls):
        try:
            body = client.get_stack(ros_models.GetStackRequest(region_id=cloud.region, stack_id=stack_id)).body
        except ClientException as error:
            assert error.code == "StackNotFound"
            return None
        if not body.status.endswith("_IN_PROGRESS"):
            return body
        cloud.clock.sleep(step)
    raise AssertionError(f"stack {stack_id} still {body.status} after {polls} polls")


def actions(cloud: LocalCloud) -> list[str]:
    return [call.action for call in cloud.ecs.calls]


def pytest_terminal_summary(terminalreporter) -> None:
    """The model-based test's counts, added up over its parts (and pytest-xdist workers): how many schedules ran,
    and what each invariant saw."""
    from collections import Counter

    totals: Counter[str] = Counter()
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == "model_stats" and getattr(report, "when", "call") == "call":
                    for key, count in json.loads(value).items():
                        totals[key] = max(totals[key], count) if key.endswith("(max)") else totals[key] + count
    if totals:
        terminalreporter.section("model-based test")
        for name in sorted(totals):
            terminalreporter.write_line(f"{name}: {totals[name]}")


@pytest.fixture(scope="session")
def code_package():
    """The code package `make package` builds (built now if it is missing or older than the function)."""
    from deploy import package

    return package.ensure()
