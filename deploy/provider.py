"""Installing the provider with deploy/provider.yml, as the README's three steps do: the code package (``make
package``) in an OSS bucket, then one stack (CreateStack through the ROS API) that creates the function's RAM role
and the FC 3.0 function from it; an update with a new package replaces the code in place; deleting the stack
removes both.

The smoke (deploy/smoke.py) runs these steps on the local cloud around the user's lifecycle: ``upload`` puts the
zip into the local object store (on a real account it is ``ossutil cp``), the rest is the ROS API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from deploy.package import Package

TEMPLATE = Path(__file__).resolve().parent / "provider.yml"
CODE_BUCKET = "ros-copy-image-code"


class InstallFailed(Exception):
    """The provider stack did not reach the status it was driven to."""


@dataclass
class Installed:
    stack_id: str
    service_token: str
    function_name: str
    package: Package


def upload(cloud: Any, package: Package, bucket: str = CODE_BUCKET) -> None:
    """The local cloud's "upload to OSS": the zip into the object store, under its own (hashed) name."""
    cloud.oss.create_bucket(bucket)
    cloud.oss.put_object(bucket, package.object_name, package.zip_path.read_bytes())


def install(target: Any, package: Package, out: TextIO, bucket: str = CODE_BUCKET) -> Installed:
    """CreateStack with deploy/provider.yml and the package's object; waits for CREATE_COMPLETE."""
    from alibabacloud_ros20190910 import models as ros

    given = {"CodeBucket": bucket, "CodeObject": package.object_name, "FunctionName": target.function_name}
    request = ros.CreateStackRequest(
        region_id=target.region,
        stack_name=f"{target.function_name}-provider",
        template_body=TEMPLATE.read_text(encoding="utf-8"),
        parameters=[ros.CreateStackRequestParameters(parameter_key=k, parameter_value=v) for k, v in given.items()],
        timeout_in_minutes=30,
    )
    stack_id = target.ros.create_stack(request).body.stack_id
    outputs = _outputs(_wait(target, stack_id, "CREATE", out))
    return Installed(stack_id, outputs["ServiceToken"], outputs["FunctionName"], package)


def update_stack(target: Any, stack_id: str, template: Path, changed: Mapping[str, str]) -> None:
    """UpdateStack with ``template``: the ``changed`` parameters given, every other one kept as it was."""
    from alibabacloud_ros20190910 import models as ros

    given = [ros.UpdateStackRequestParameters(parameter_key=k, parameter_value=v) for k, v in changed.items()]
    request = ros.UpdateStackRequest(
        region_id=target.region,
        stack_id=stack_id,
        template_body=template.read_text(encoding="utf-8"),
        use_previous_parameters=True,
        parameters=given,
    )
    target.ros.update_stack(request)


def update(target: Any, installed: Installed, package: Package, out: TextIO, bucket: str = CODE_BUCKET) -> None:
    """UpdateStack with the new package's object (the other parameters kept): the function's code is replaced."""
    update_stack(target, installed.stack_id, TEMPLATE, {"CodeBucket": bucket, "CodeObject": package.object_name})
    _wait(target, installed.stack_id, "UPDATE", out)
    installed.package = package


def uninstall(target: Any, installed: Installed, out: TextIO) -> None:
    from alibabacloud_ros20190910 import models as ros

    target.ros.delete_stack(ros.DeleteStackRequest(region_id=target.region, stack_id=installed.stack_id))
    _wait(target, installed.stack_id, "DELETE", out)


def get_stack(target: Any, stack_id: str, gone_ok: bool) -> Any:
    """GetStack's body; None when the stack is gone and ``gone_ok`` (a Delete that finished)."""
    from alibabacloud_ros20190910 import models as ros
    from alibabacloud_tea_openapi.exceptions import ClientException

    try:
        return target.ros.get_stack(ros.GetStackRequest(region_id=target.region, stack_id=stack_id)).body
    except ClientException as error:
        if gone_ok and error.code == "StackNotFound":
            return None
        raise


def _wait(target: Any, stack_id: str, action: str, out: TextIO) -> Any:
    """Poll GetStack until the operation ends; the stack, which must have reached ``<action>_COMPLETE``."""
    while True:
        stack = get_stack(target, stack_id, gone_ok=action == "DELETE")
        if stack is None:
            return None
        if not stack.status.endswith("_IN_PROGRESS"):
            break
        target.sleep(5.0)
    print(f"      provider stack {stack.status}", file=out)
    if stack.status != f"{action}_COMPLETE":
        raise InstallFailed(f"the provider stack ended {stack.status}: {stack.status_reason}")
    return stack


def _outputs(stack: Any) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.outputs or []}
