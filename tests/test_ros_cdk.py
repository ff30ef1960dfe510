"""The ROS CDK construct (cdk/ros_copy_image) through the real ROS CDK: the example app under examples/ros-cdk is
synthesized by ``ros-cdk-core`` (a jsii package: its JavaScript runs in Node.js), and the template it writes is
deployed to the local cloud through the ROS API with the real ``alibabacloud_ros20190910`` client, on the virtual
clock: create, read the output, update a tag, delete, nothing left."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ros20190910 import models as ros_models
from conftest import DESTINATION, ROOT, copies_in, settle_stack

APP = ROOT / "examples" / "ros-cdk"
STACK = "CopyImageExample"
HZ = "cn-hangzhou"

if shutil.which(os.environ.get("JSII_NODE") or "node") is None:
    if os.environ.get("CI"):  # CI installs Node.js: there the test must run, not skip
        raise RuntimeError("CI without Node.js: the ROS CDK test cannot run (install nodejs)")
    pytest.skip(
        "Node.js is not installed: the ROS CDK packages (jsii) run their JavaScript in node; install it to run this",
        allow_module_level=True,
    )


def synthesize(out: Path, tags: str) -> dict[str, Any]:
    """``python app.py`` in examples/ros-cdk, as ``ros-cdk synth`` runs it; the stack's template."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "cdk"),  # the construct, as `pip install ./cdk` would provide it
        "CDK_OUTDIR": str(out),
        "CDK_CONTEXT_JSON": json.dumps({"tags": tags}),
    }
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=APP, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / f"{STACK}.template.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, dict[str, Any]]:
    return {tags: synthesize(tmp_path_factory.mktemp("cdk.out"), tags) for tags in ("team=imaging", "team=web")}


def create(client: Any, template: dict[str, Any], image_id: str) -> str:
    given = {"SourceImageId": image_id, "Destination": DESTINATION}
    request = ros_models.CreateStackRequest(
        region_id=HZ,
        stack_name="cdk-copy-image",
        template_body=json.dumps(template),
        parameters=[
            ros_models.CreateStackRequestParameters(parameter_key=k, parameter_value=v) for k, v in given.items()
        ],
        timeout_in_minutes=60,
    )
    return client.create_stack(request).body.stack_id


def outputs(body: Any) -> dict[str, Any]:
    return {o["OutputKey"]: o["OutputValue"] for o in body.outputs or []}


def test_the_template_is_the_custom_resource_of_template_yml(templates):
    resource = templates["team=imaging"]["Resources"]["CopyImage"]
    assert resource["Type"] == "Custom::CopyImage"
    assert set(resource["Properties"]) == {"ServiceToken", "Timeout", "Parameters"}
    assert resource["Properties"]["Parameters"]["Tag"] == [{"Key": "team", "Value": "imaging"}]
    assert resource["Properties"]["Parameters"]["ImageId"] == {"Ref": "SourceImageId"}
    assert templates["team=imaging"]["Outputs"]["ImageId"]["Value"] == {"Fn::GetAtt": ["CopyImage", "ImageId"]}


def test_the_synthesized_stack_is_created_updated_and_deleted_through_the_ros_api(make_cloud, templates):
    cloud = make_cloud(copy_seconds=600)
    source = cloud.seed_image("cdk-source")
    client = cloud.ros_client()

    stack_id = create(client, templates["team=imaging"], source.image_id)
    body = settle_stack(cloud, client, stack_id)
    assert body.status == "CREATE_COMPLETE", body.status_reason
    image_id = outputs(body)["ImageId"]
    assert outputs(body)["DestinationRegionId"] == DESTINATION
    copy = cloud.ecs.image(image_id)
    assert copy is not None and copy.region == DESTINATION and copy.status == "Available"
    assert (copy.name, copy.tags.get("team")) == ("cdk-copy", "imaging")

    update = ros_models.UpdateStackRequest(
        region_id=HZ, stack_id=stack_id, template_body=json.dumps(templates["team=web"]), use_previous_parameters=True
    )
    client.update_stack(update)
    body = settle_stack(cloud, client, stack_id)
    assert body.status == "UPDATE_COMPLETE", body.status_reason
    assert outputs(body)["ImageId"] == image_id  # the tag changed in place: the same copy
    assert cloud.ecs.image(image_id).tags.get("team") == "web"

    client.delete_stack(ros_models.DeleteStackRequest(region_id=HZ, stack_id=stack_id))
    assert settle_stack(cloud, client, stack_id) is None
    assert cloud.ecs.image(image_id) is None and copies_in(cloud) == []
    assert cloud.ecs.image(source.image_id) is not None  # the source stays
    assert cloud.ros.violations == []


def test_a_failed_answer_from_the_provider_fails_the_stack(make_cloud, templates):
    cloud = make_cloud(copy_seconds=600)
    client = cloud.ros_client()
    stack_id = create(client, templates["team=imaging"], "m-00000000000000000000")  # no such image
    body = settle_stack(cloud, client, stack_id)
    assert body.status == "CREATE_ROLLBACK_COMPLETE"
    assert "InvalidImageId.NotFound" in body.status_reason  # the provider's FAILED answer, as ROS reports it
    assert [r["RequestType"] for r in cloud.ros.requests] == ["Create", "Delete"]
    assert copies_in(cloud) == []


def test_switching_from_the_native_construct_is_a_change_of_import(tmp_path):
    """The same props give ros_cdk_ecs.CopyImage's Properties as the provider's Parameters, and the same attributes."""
    import dataclasses
    import inspect

    import ros_cdk_core as core
    import ros_cdk_ecs
    import ros_copy_image

    native_fields = set(inspect.signature(ros_cdk_ecs.CopyImageProps).parameters)
    ours = {field.name for field in dataclasses.fields(ros_copy_image.CopyImageProps)}
    assert native_fields <= ours
    assert ours - native_fields == {
        "retain_on_delete", "force_delete", "delete_snapshots", "allow_relay", "service_token", "function_name",
        "timeout",
    }  # fmt: skip
    given = {
        "image_id": "m-bp1exampleimage",
        "destination_region_id": "cn-shanghai",
        "source_region_id": "cn-hangzhou",
        "destination_image_name": "golden-copy",
        "destination_description": "a copy",
        "encrypted": True,
        "kms_key_id": "key-1",
        "resource_group_id": "rg-acfm2example",
        "tag": [core.RosTag(key="team", value="imaging")],
        "allow_copy_in_same_region": False,
    }
    app = core.App(outdir=str(tmp_path))
    stack = core.Stack(app, "Both")
    constructs = {
        "Native": ros_cdk_ecs.CopyImage(stack, "Native", ros_cdk_ecs.CopyImageProps(**given)),
        "Custom": ros_copy_image.CopyImage(stack, "Custom", ros_copy_image.CopyImageProps(**given, force_delete=True)),
    }
    for name, construct in constructs.items():
        for attribute in ("attr_image_id", "attr_destination_region_id", "attr_source_region_id"):
            core.RosOutput(stack, f"{name}{attribute}", value=getattr(construct, attribute))
    app.synth()
    template = json.loads((tmp_path / "Both.template.json").read_text(encoding="utf-8"))
    native, custom = template["Resources"]["Native"], template["Resources"]["Custom"]
    assert native["Type"] == "ALIYUN::ECS::CopyImage" and custom["Type"] == "Custom::CopyImage"
    assert custom["Properties"]["Parameters"] == {**native["Properties"], "ForceDelete": True}
    assert custom["Properties"]["Timeout"] == 43200
    outputs = {name: spec["Value"]["Fn::GetAtt"] for name, spec in template["Outputs"].items()}
    for attribute, key in (("attr_image_id", "ImageId"), ("attr_source_region_id", "SourceRegionId")):
        assert outputs[f"Native{attribute}"] == ["Native", key] and outputs[f"Custom{attribute}"] == ["Custom", key]
