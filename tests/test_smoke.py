"""The smoke command (deploy/smoke.py) against the local cloud: the path a user takes, through the ROS API."""

from __future__ import annotations

import io

import pytest

from deploy import smoke


def test_the_whole_lifecycle_passes_and_is_reported(make_cloud, code_package):
    """As `make smoke` runs it: the provider installed from deploy/provider.yml and the package, then removed."""
    cloud = make_cloud(copy_seconds=600, function_deployed=False)
    target = smoke.local_target(cloud, code_package)
    report = smoke.run(target, out=io.StringIO())
    steps = ["install", "preflight", "create", "check", "update", "delete", "leftovers", "uninstall"]
    assert [step["step"] for step in report.steps] == steps
    assert report.package == code_package.sha256 and code_package.short_hash in report.steps[0]["detail"]
    assert {run.code_checksum for run in cloud.fc.invocations} == {code_package.sha256}
    assert not cloud.fc.deployed  # uninstalled with the provider stack
    assert report.steps[2]["seconds"] >= 600  # the copy's own time, on the virtual clock
    assert report.image_id is not None and cloud.ecs.image(report.image_id) is None  # deleted with the stack
    # It went through the ROS API, with the real SDK: every stack operation is a call there.
    actions = [call.action for call in cloud.ros.api.calls]
    assert {"CreateStack", "GetStack", "UpdateStack", "DeleteStack"} <= set(actions)
    assert cloud.ros.violations == []


def test_it_only_reads_ecs_and_only_changes_its_own_stack(make_cloud):
    cloud = make_cloud(copy_seconds=120)
    other = cloud.seed_image("someone-elses")
    target = smoke.local_target(cloud)
    smoke.run(target, out=io.StringIO())
    smoke_key = cloud.ros.api.calls[0].access_key_id
    writes = [c.action for c in cloud.ecs.calls if c.access_key_id == smoke_key and not c.action.startswith("Describe")]
    assert writes == []  # the copy was made and removed by the function, through the stack
    stacks = {c.params.get("StackId") for c in cloud.ros.api.calls if c.action in ("UpdateStack", "DeleteStack")}
    assert len(stacks) == 1
    assert cloud.ecs.image(other.image_id) is not None


@pytest.mark.parametrize(
    ("setting", "value", "refusal"),
    [
        ("function_name", "not-deployed", "not-deployed is not deployed"),
        ("destination", "xx-nowhere-1", "xx-nowhere-1 is not an ECS region"),
    ],
)
def test_it_refuses_to_start_before_creating_any_stack(make_cloud, setting, value, refusal):
    cloud = make_cloud()
    target = smoke.local_target(cloud)
    setattr(target, setting, value)
    with pytest.raises(smoke.SmokeFailed, match=refusal):
        smoke.run(target, out=io.StringIO())
    assert [c for c in cloud.ros.api.calls if c.action == "CreateStack"] == []


def test_a_failed_copy_fails_the_smoke_and_its_stack_is_removed(make_cloud):
    cloud = make_cloud(copy_seconds=300)
    cloud.ecs.fail_copies(1, at_fraction=0.5)
    target = smoke.local_target(cloud)
    with pytest.raises(smoke.SmokeFailed, match=r"CREATE_ROLLBACK_COMPLETE|CREATE_FAILED"):
        smoke.run(target, out=io.StringIO())
    assert [image for image in cloud.ecs.images("cn-shanghai") if image.is_copy] == []


def test_a_half_configured_real_account_is_refused_before_any_call(monkeypatch, capsys):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-example")
    for name in smoke.REAL_SETTINGS[1:]:
        monkeypatch.delenv(name, raising=False)
    assert smoke.main([]) == 2
    assert "COPYIMAGE_SMOKE_IMAGE_ID" in capsys.readouterr().out
