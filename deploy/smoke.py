"""Smoke test for both clouds: one stack's whole life from template.yml, through the ROS API, checked in ECS.

Creates a stack (the ROS 2019-09-10 API, the path the console, the aliyun CLI and iact3 take), waits for it with
the copy's progress shown, checks the ``ImageId`` output and the copy in the destination region through ECS,
changes a tag in place, deletes the stack, checks that nothing it made is left, and prints a report with timings.

- With no settings it runs against the local cloud (``emulator/``), on its virtual clock: ``make smoke``.
- Against a real account, set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (and
  ALIBABA_CLOUD_SECURITY_TOKEN for STS credentials), COPYIMAGE_SMOKE_REGION (where the
  function is deployed and the source image lives), COPYIMAGE_SMOKE_IMAGE_ID (a small custom image there) and
  COPYIMAGE_SMOKE_DESTINATION (the region to copy into); COPYIMAGE_SMOKE_FUNCTION if the function is not named
  ros-copy-image. It refuses to start when the function is not deployed or the image is not there, and it only
  ever changes the stack it created (the copy goes with the stack's Delete; on a failure it deletes that stack).

The last line printed is a JSON object with the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from emulator.ecs.models import IMAGE_STATUSES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yml"
TAG_KEY = "copyimage-smoke"  # every copy the smoke makes carries it, with the run's id as value
ALL_STATUSES = ",".join(IMAGE_STATUSES)  # DescribeImages lists only Available images unless asked for more
REAL_SETTINGS = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "COPYIMAGE_SMOKE_REGION",
    "COPYIMAGE_SMOKE_IMAGE_ID",
    "COPYIMAGE_SMOKE_DESTINATION",
)


class SmokeFailed(Exception):
    """A check did not hold; the message says which and what was seen."""


@dataclass
class Target:
    """Where the smoke runs: clients for ROS, ECS (per region) and FC, and how time passes there."""

    label: str
    region: str
    destination: str
    image_id: str
    function_name: str
    ros: Any  # alibabacloud_ros20190910 Client
    ecs: Callable[[str], Any]  # region -> alibabacloud_ecs20140526 Client
    fc: Any  # alibabacloud_fc20230330 Client
    sleep: Callable[[float], None]
    now: Callable[[], float]
    poll_seconds: float
    timeout_minutes: int  # CreateStack's TimeoutInMinutes
    package: Any = None  # a deploy.package.Package: installed first with deploy/provider.yml, uninstalled last


@dataclass
class Report:
    run_id: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    image_id: str | None = None
    package: str | None = None  # the SHA-256 of the code package the provider ran, when the smoke installed it

    def add(self, name: str, seconds: float, detail: str) -> None:
        self.steps.append({"step": name, "seconds": round(seconds, 1), "detail": detail})
        print(f"  ok  {name:<9} {seconds:8.1f} s  {detail}")


# --- the lifecycle --------------------------------------------------------------------------------------------


def run(target: Target, out: TextIO = sys.stdout) -> Report:
    """The whole lifecycle (installing the provider first when the target has a package, and uninstalling it
    last); raises SmokeFailed (after deleting the stacks it made) when a check fails."""
    from deploy import provider

    report = Report(run_id=uuid.uuid4().hex[:10], package=target.package.sha256 if target.package else None)
    package = f", package {target.package.short_hash}" if target.package else ""
    print(f"Smoke test on {target.label}: run {report.run_id}{package}", file=out)
    if target.package is None:
        _lifecycle(target, report, out)
        return report
    try:
        with _step(target, report, "install") as note:
            installed = provider.install(target, target.package, out)
            note(f"deploy/provider.yml: {installed.function_name} from package {target.package.short_hash}")
        try:
            _lifecycle(target, report, out)
        finally:
            with _step(target, report, "uninstall") as note:
                provider.uninstall(target, installed, out)
                note("the provider stack (role and function) deleted")
    except provider.InstallFailed as failure:
        raise SmokeFailed(str(failure)) from None
    return report


def _lifecycle(target: Target, report: Report, out: TextIO) -> None:
    with _step(target, report, "preflight") as note:
        note(_preflight(target))
    run = _Run(target, report, out)
    try:
        with _step(target, report, "create") as note:
            note(run.create())
        with _step(target, report, "check") as note:
            note(run.check())
        with _step(target, report, "update") as note:
            note(run.update())
        with _step(target, report, "delete") as note:
            note(run.delete())
        with _step(target, report, "leftovers") as note:
            note(run.leftovers())
    except BaseException:
        run.clean_up()
        raise


@dataclass
class _Run:
    """One lifecycle's steps, each returning what it notes; ``stack_id`` is the stack to delete on a failure."""

    target: Target
    report: Report
    out: TextIO
    stack_id: str | None = None

    @property
    def name(self) -> str:
        return f"copyimage-smoke-{self.report.run_id}"

    @property
    def tag(self) -> str:
        return f"{TAG_KEY}={self.report.run_id}"

    @property
    def image_id(self) -> str:
        """The copy the create step reported."""
        assert self.report.image_id is not None
        return self.report.image_id

    def create(self) -> str:
        from alibabacloud_ros20190910 import models as ros

        target = self.target
        parameters = {
            "FunctionName": target.function_name,
            "ImageId": target.image_id,
            "DestinationRegionId": target.destination,
            "DestinationImageName": self.name,
            "DestinationDescription": "ros-copy-image smoke test",
            "Tag": self.tag,
        }
        request = ros.CreateStackRequest(
            region_id=target.region,
            stack_name=self.name,
            template_body=TEMPLATE.read_text(encoding="utf-8"),
            parameters=[
                ros.CreateStackRequestParameters(parameter_key=k, parameter_value=v) for k, v in parameters.items()
            ],
            timeout_in_minutes=target.timeout_minutes,
            disable_rollback=False,
            client_token=self.report.run_id,
            tags=[ros.CreateStackRequestTags(key=TAG_KEY, value=self.report.run_id)],
        )
        stack_id = self.stack_id = target.ros.create_stack(request).body.stack_id
        stack = _wait(target, stack_id, "CREATE", self.report.run_id, self.out)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.outputs or []}
        image_id = outputs.get("ImageId")
        if stack.status != "CREATE_COMPLETE" or not image_id:
            raise SmokeFailed(f"the stack ended {stack.status}: {stack.status_reason}; outputs {outputs}")
        self.report.image_id = image_id
        return f"{stack.status}, ImageId {image_id}"

    def check(self) -> str:
        target, image_id = self.target, self.image_id
        image = _image(target, target.destination, image_id)
        if image is None or image.get("Status") != "Available":
            raise SmokeFailed(f"{image_id} in {target.destination}: {image and image.get('Status')}, not Available")
        if _tags(image).get(TAG_KEY) != self.report.run_id:
            raise SmokeFailed(f"{image_id} does not carry the tag {self.tag}: {_tags(image)}")
        return f"{image_id} is Available in {target.destination}, tagged {self.tag}"

    def update(self) -> str:
        from deploy.provider import update_stack

        target, image_id = self.target, self.image_id
        update_stack(target, str(self.stack_id), TEMPLATE, {"Tag": f"{self.tag},smoke-step=updated"})
        stack = _wait(target, str(self.stack_id), "UPDATE", self.report.run_id, self.out)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.outputs or []}
        image = _image(target, target.destination, image_id)
        if stack.status != "UPDATE_COMPLETE" or outputs.get("ImageId") != image_id:
            raise SmokeFailed(f"the update ended {stack.status}: {stack.status_reason}; outputs {outputs}")
        if image is None or _tags(image).get("smoke-step") != "updated":
            raise SmokeFailed(f"the tag did not change in place: {image and _tags(image)}")
        return f"{stack.status}, same ImageId, tag smoke-step=updated on the copy"

    def delete(self) -> str:
        from alibabacloud_ros20190910 import models as ros

        target, stack_id = self.target, str(self.stack_id)
        target.ros.delete_stack(ros.DeleteStackRequest(region_id=target.region, stack_id=stack_id))
        stack = _wait(target, stack_id, "DELETE", self.report.run_id, self.out)
        if stack is not None and stack.status != "DELETE_COMPLETE":
            raise SmokeFailed(f"the delete ended {stack.status}: {stack.status_reason}")
        self.stack_id = None
        return "DELETE_COMPLETE"

    def leftovers(self) -> str:
        target, run_id = self.target, self.report.run_id
        left = _tagged(target, target.destination, run_id)
        if _image(target, target.destination, self.image_id) is not None or left:
            raise SmokeFailed(f"left in {target.destination}: {[i['ImageId'] for i in left] or [self.image_id]}")
        return f"no image of run {run_id} in {target.destination}"

    def clean_up(self) -> None:
        """After a failed step: delete the stack this run made, if there is one."""
        from alibabacloud_ros20190910 import models as ros

        if self.stack_id is None:
            return
        target, stack_id = self.target, self.stack_id
        print(f"  cleaning up: deleting stack {stack_id}", file=self.out)
        try:
            target.ros.delete_stack(ros.DeleteStackRequest(region_id=target.region, stack_id=stack_id))
            _wait(target, stack_id, "DELETE", self.report.run_id, self.out)
        except Exception as error:  # report the first failure, not the clean-up's
            print(f"  clean-up failed too: {error}; delete stack {stack_id} yourself", file=self.out)


def _preflight(target: Target) -> str:
    from alibabacloud_fc20230330 import models as fc
    from alibabacloud_tea_openapi.exceptions import ClientException

    try:
        function = target.fc.get_function(target.function_name, fc.GetFunctionRequest()).body
    except ClientException as error:
        if error.code == "FunctionNotFound":
            raise SmokeFailed(
                f"the function {target.function_name} is not deployed in {target.region}: deploy it first (s deploy)"
            ) from None
        raise
    from alibabacloud_ecs20140526 import models as ecs

    regions = target.ecs(target.region).describe_regions(ecs.DescribeRegionsRequest()).body.to_map()
    known = {r.get("RegionId") for r in (regions.get("Regions") or {}).get("Region") or []}
    if target.destination not in known:
        raise SmokeFailed(f"{target.destination} is not an ECS region this account can use: {sorted(known)}")
    image = _image(target, target.region, target.image_id)
    if image is None or image.get("Status") != "Available":
        raise SmokeFailed(f"the source image {target.image_id} is not Available in {target.region}: {image}")
    return f"function {function.function_name} ({function.runtime}), source {target.image_id} ({image.get('Size')} GiB)"


def _wait(target: Target, stack_id: str, action: str, run_id: str, out: TextIO) -> Any:
    """Poll GetStack until the operation ends, printing the stack's status and the copy's progress as they
    change; the last GetStack body, or None once the stack is gone."""
    from deploy.provider import get_stack

    began, shown = target.now(), ""
    while True:
        stack = get_stack(target, stack_id, gone_ok=action == "DELETE")
        if stack is None:
            return None
        copies = _tagged(target, target.destination, run_id) if action == "CREATE" else []
        percent = str(copies[0].get("Progress") or "0%").rstrip("%") if copies else ""
        tenth = f"{int(percent) // 10 * 10}%" if percent.isdigit() and percent != "100" else f"{percent}%"
        progress = f", copy at {tenth} ({copies[0].get('Status')})" if copies else ""  # a line per 10%
        line = f"{stack.status}{progress}"
        if line != shown:
            print(f"      {target.now() - began:7.0f} s  {line}", file=out)
            shown = line
        if not stack.status.endswith("_IN_PROGRESS"):
            return stack
        target.sleep(target.poll_seconds)


def _image(target: Target, region: str, image_id: str) -> dict[str, Any] | None:
    from alibabacloud_ecs20140526 import models as ecs

    request = ecs.DescribeImagesRequest(region_id=region, image_id=image_id, status=ALL_STATUSES)
    images = target.ecs(region).describe_images(request).body.to_map().get("Images", {}).get("Image", [])
    return next((image for image in images if image.get("ImageId") == image_id), None)


def _tagged(target: Target, region: str, run_id: str) -> list[dict[str, Any]]:
    from alibabacloud_ecs20140526 import models as ecs

    request = ecs.DescribeImagesRequest(
        region_id=region,
        status=ALL_STATUSES,
        image_owner_alias="self",
        tag=[ecs.DescribeImagesRequestTag(key=TAG_KEY, value=run_id)],
        page_size=100,
    )
    images: list[dict[str, Any]] = (
        target.ecs(region).describe_images(request).body.to_map().get("Images", {}).get("Image", [])
    )
    return images


def _tags(image: Mapping[str, Any]) -> dict[str, str]:
    return {t.get("TagKey", ""): t.get("TagValue", "") for t in (image.get("Tags") or {}).get("Tag") or []}


@contextmanager
def _step(target: Target, report: Report, name: str) -> Iterator[Callable[[str], None]]:
    began = target.now()
    details: list[str] = []
    yield details.append
    report.add(name, target.now() - began, "; ".join(details))


# --- the two clouds ------------------------------------------------------------------------------------------


def real_target(env: Mapping[str, str]) -> Target:
    from alibabacloud_ecs20140526.client import Client as EcsClient
    from alibabacloud_fc20230330.client import Client as FcClient
    from alibabacloud_ros20190910.client import Client as RosClient
    from alibabacloud_tea_openapi.utils_models import Config

    region = env["COPYIMAGE_SMOKE_REGION"]

    def config(region_id: str, endpoint: str | None = None) -> Config:
        return Config(
            access_key_id=env["ALIBABA_CLOUD_ACCESS_KEY_ID"],
            access_key_secret=env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
            security_token=env.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None,
            region_id=region_id,
            endpoint=endpoint,
        )

    clients: dict[str, Any] = {}
    return Target(
        label=f"your account, in {region}",
        region=region,
        destination=env["COPYIMAGE_SMOKE_DESTINATION"],
        image_id=env["COPYIMAGE_SMOKE_IMAGE_ID"],
        function_name=env.get("COPYIMAGE_SMOKE_FUNCTION") or "ros-copy-image",
        ros=RosClient(config(region)),
        ecs=lambda r: clients.setdefault(r, EcsClient(config(r))),
        fc=FcClient(config(region)),  # the SDK's regional endpoint, fcv3.<region>.aliyuncs.com
        sleep=time.sleep,
        now=time.monotonic,
        poll_seconds=15.0,
        timeout_minutes=180,
    )


def local_target(cloud: Any, package: Any = None) -> Target:
    """The smoke's clients for a running ``emulator.cloud.LocalCloud``, with a new access key and source image;
    with a ``package`` (deploy.package.Package), the zip is put into the cloud's object store for the install."""
    from alibabacloud_ecs20140526.client import Client as EcsClient
    from alibabacloud_fc20230330.client import Client as FcClient
    from alibabacloud_tea_openapi.utils_models import Config

    key = cloud.credentials.add_access_key()
    source = cloud.seed_image("smoke-source")
    if package is not None:
        from deploy import provider

        provider.upload(cloud, package)

    def config(region: str, endpoint: str) -> Config:
        return Config(
            access_key_id=key.id, access_key_secret=key.secret, region_id=region, endpoint=endpoint, protocol="http"
        )

    return Target(
        label="the local cloud (virtual time)",
        region=cloud.region,
        destination="cn-shanghai",
        image_id=source.image_id,
        function_name=cloud.function.name,
        ros=cloud.ros_client(key),
        ecs=lambda region: EcsClient(config(region, cloud.ecs.endpoint)),
        fc=FcClient(config(cloud.region, cloud.fc.endpoint)),
        sleep=cloud.clock.sleep,
        now=cloud.clock.now,
        poll_seconds=30.0,
        timeout_minutes=60,
        package=package,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copy-minutes", type=float, default=10.0, help="the local copy's length (virtual)")
    args = parser.parse_args(argv)
    given = [name for name in REAL_SETTINGS if os.environ.get(name)]
    started = time.monotonic()
    try:
        if given:
            missing = [name for name in REAL_SETTINGS if not os.environ.get(name)]
            if missing:
                print(f"Refusing to start: for a real account also set {', '.join(missing)} (see deploy/smoke.py)")
                return 2
            report = run(real_target(os.environ))
        else:
            sys.path.insert(0, str(ROOT))
            from deploy import package
            from emulator.cloud import LocalCloud

            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            code = package.ensure()  # `make package`'s zip, installed with deploy/provider.yml
            with LocalCloud(copy_seconds=args.copy_minutes * 60, function_deployed=False) as cloud:
                report = run(local_target(cloud, code))
    except SmokeFailed as failure:
        print(f"\nSMOKE FAILED: {failure}")
        return 1
    total = sum(step["seconds"] for step in report.steps)
    print(f"\nSmoke passed: {len(report.steps)} steps in {total:.0f} s ({time.monotonic() - started:.1f} s wall time)")
    summary = {"run_id": report.run_id, "image_id": report.image_id, "package": report.package, "steps": report.steps}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
