"""Benchmark: one image into N regions at once, with relay copies and without, on the local cloud's virtual clock.

A stack of N ``Custom::CopyImage`` resources of one source image, one per destination region (the native
resource's shape), created in parallel by the local ROS; every copy takes T virtual seconds. For N = 3, 7 and 15,
with ``AllowRelay: true`` (the default) and ``false`` (strict: copy only from ImageId), it reports:
- copy_times: the stack's completion time in units of T (relays: at most ceil(log2(N + 1)) + 1; strict: about N);
- copy_calls: CopyImage calls, refused ones included;
- conflicts: the calls ECS refused with OperationDenied.ImageCopyConflict;
- max_running_per_region: the most copies running at once from one region (ECS runs at most five per region).
Then a fan-out of 15 regions with 60-minute copies, with relays, which must finish inside ROS's 12-hour Timeout.
The last line printed is one JSON object: ``{"relay": {"3": {...}, ...}, "strict": {...}, "hours_15": {...}}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from emulator.cloud import LocalCloud
from emulator.ecs import WORLD_REGIONS, Image

SOURCE_REGION = "cn-hangzhou"
SIZES = (3, 7, 15)
COPY_SECONDS = 1800.0  # T for the table: short enough that the strict 15-region stack fits ROS's 12 hours
ROS_TIMEOUT_SECONDS = 43200  # ALIYUN::ROS::CustomResource's longest Timeout


@dataclass(frozen=True)
class FanOut:
    """One stack's figures."""

    copy_times: float
    copy_calls: int
    conflicts: int
    max_running_per_region: int
    seconds: float
    status: str
    left: int  # images of the stack still in ECS after its Delete


def fan_out_template(cloud: LocalCloud, destinations: list[str], allow_relay: bool) -> dict[str, Any]:
    """template.yml's resource once per destination region, each with its own output."""
    template = cloud.template()
    resource = template["Resources"].pop("CopyImage")
    del template["Outputs"]["ImageId"]
    for index, region in enumerate(destinations):
        name = f"CopyTo{index:02d}"
        twin = copy.deepcopy(resource)
        twin["Properties"]["Parameters"]["DestinationRegionId"] = region
        twin["Properties"]["Parameters"]["AllowRelay"] = allow_relay
        template["Resources"][name] = twin
        template["Outputs"][name] = {"Value": {"Fn::GetAtt": [name, "ImageId"]}}
    return template


def most_running(copies: list[Image]) -> int:
    """The most copies running at once from one source region (from their start and end times)."""
    best = 0
    for region in {image.source[0] for image in copies if image.source is not None}:
        edges = sorted(
            edge
            for image in copies
            if image.source is not None and image.source[0] == region and image.copy_started_at is not None
            for edge in ((image.copy_started_at + image.copy_duration, -1), (image.copy_started_at, 1))
        )
        running = 0
        for _, step in edges:
            running += step
            best = max(best, running)
    return best


def run(size: int, allow_relay: bool, copy_seconds: float) -> FanOut:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    destinations = [region for region in WORLD_REGIONS if region != SOURCE_REGION][:size]
    with LocalCloud(copy_seconds=copy_seconds, regions=WORLD_REGIONS) as cloud:
        from copyimage.logs import logger  # importable once the local FC has loaded the function

        level = logger.log_level
        logger.setLevel("ERROR")  # each resource that finds the source busy warns: hundreds of lines, no news
        source = cloud.seed_image("fan-out-source", region=SOURCE_REGION)
        started = cloud.clock.now()
        stack = cloud.ros.create_stack(
            fan_out_template(cloud, destinations, allow_relay),
            {"ImageId": source.image_id, "DestinationRegionId": destinations[0], "Timeout": ROS_TIMEOUT_SECONDS},
            name=f"fan-out-{size}",
            timeout_minutes=24 * 60,
        )
        seconds = cloud.clock.now() - started
        calls = cloud.ecs.calls_to("CopyImage")
        copies = [image for region in WORLD_REGIONS for image in cloud.ecs.images(region) if image.is_copy]
        status = stack.status
        if status == "CREATE_COMPLETE":
            cloud.ros.delete_stack(stack)
            cloud.fc.wait_idle()
        left = sum(1 for image in copies if cloud.ecs.image(image.image_id) is not None)
        logger.setLevel(level)
    return FanOut(
        copy_times=round(seconds / copy_seconds, 2),
        copy_calls=len(calls),
        conflicts=sum(1 for call in calls if call.error_code == "OperationDenied.ImageCopyConflict"),
        max_running_per_region=most_running(copies),
        seconds=round(seconds, 1),
        status=status,
        left=left,
    )


def relay_bound(size: int) -> int:
    """The issue's target with relays: ceil(log2(N + 1)) + 1 copy times."""
    return math.ceil(math.log2(size + 1)) + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fan_out", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="destination counts N")
    parser.add_argument("--minutes", type=float, default=COPY_SECONDS / 60, help="T, each copy's virtual minutes")
    parser.add_argument("--no-hours", action="store_true", help="skip the 15 regions x 60-minute run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    copy_seconds = args.minutes * 60
    figures: dict[str, dict[str, FanOut]] = {"relay": {}, "strict": {}}
    ok = True
    for size in args.sizes:
        for mode, allow_relay in (("relay", True), ("strict", False)):
            result = figures[mode][str(size)] = run(size, allow_relay, copy_seconds)
            bound = relay_bound(size) if allow_relay else None
            fits = result.status == "CREATE_COMPLETE" and (bound is None or result.copy_times <= bound)
            ok = ok and fits and result.max_running_per_region <= 5 and result.left == 0
            target = f"(target <= {bound})" if bound else f"(about N = {size})"
            print(
                f"N={size:2d} {mode:6s} {result.copy_times:5.2f} T {target:14s} {result.copy_calls:3d} CopyImage, "
                f"{result.conflicts:3d} conflicts, at most {result.max_running_per_region} running per region  "
                f"{result.status}, {result.left} left after its Delete{'' if fits else '  MISSED'}"
            )
    report: dict[str, Any] = {mode: {n: _short(f) for n, f in by_size.items()} for mode, by_size in figures.items()}
    if not args.no_hours:
        hours = run(15, True, 3600.0)
        within = hours.status == "CREATE_COMPLETE" and hours.seconds <= ROS_TIMEOUT_SECONDS
        ok = ok and within
        print(
            f"15 regions x 60-minute copies, relays: {hours.seconds / 3600:.2f} h (ROS's Timeout: 12 h)", hours.status
        )
        report["hours_15"] = {"seconds": hours.seconds, "within_ros_timeout": within}
    print(json.dumps(report))
    return 0 if ok else 1


def _short(figures: FanOut) -> dict[str, Any]:
    keys = ("copy_times", "copy_calls", "conflicts", "max_running_per_region")
    return {key: value for key, value in asdict(figures).items() if key in keys}


if __name__ == "__main__":
    sys.exit(main())
