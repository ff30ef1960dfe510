"""Benchmark: what an hour-long copy costs the provider, on the local cloud's virtual clock.

Creates one Custom::CopyImage stack from template.yml whose copy takes --minutes of virtual time and reports:
- billed_fraction: the function's billed time for the Create divided by the copy's duration. Billed time is the
  virtual time each invocation spent (its inline waits) plus the CPU time its own thread used. A function that
  sleeps while it polls bills 1.0. (bench/compare.py prices it properly: cold starts, vCPU share, network.)
- detection_seconds: from the copy becoming Available in ECS to SUCCESS arriving at ROS.
- describe_calls: DescribeImages calls made while waiting.
Time is virtual, so the figures do not depend on how busy the machine is. The last line printed is a JSON
object with the three figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass

from emulator.cloud import LocalCloud

TARGETS = {"billed_fraction": 0.03, "describe_calls": 40}


def detection_target(copy_seconds: float) -> float:
    return max(30.0, 0.02 * copy_seconds)


@dataclass(frozen=True)
class LongCopy:
    """One copy's figures."""

    copy_seconds: float
    invocations: int
    billed_seconds: float
    billed_fraction: float
    detection_seconds: float
    describe_calls: int
    violations: list[str]


def run(minutes: float) -> LongCopy:
    copy_seconds = minutes * 60
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with LocalCloud(copy_seconds=copy_seconds) as cloud:
        source = cloud.seed_image("bench-source")
        stack = cloud.ros.create_stack(
            cloud.template(),
            {"ImageId": source.image_id, "DestinationRegionId": "cn-shanghai", "DestinationImageName": "bench-copy"},
            name="bench",
            timeout_minutes=24 * 60,  # CreateStack's TimeoutInMinutes (ROS: 60 by default, at most 1440)
        )
        if stack.status != "CREATE_COMPLETE":
            raise SystemExit(f"the stack failed: {stack.status}: {stack.reason}")
        image = cloud.ecs.image(stack.outputs["ImageId"])
        available_at = image.available_at if image is not None else None
        if available_at is None:
            raise SystemExit(f"the copy {stack.outputs['ImageId']} did not end Available")
        success = next(a for a in cloud.ros.answers if a.accepted and a.json.get("Status") == "SUCCESS")
        create_invocations = list(cloud.fc.invocations)
        describe_calls = len(cloud.ecs.calls_to("DescribeImages"))
        violations = list(cloud.ros.violations)
        cloud.ros.delete_stack(stack)
    billed = sum(i.billed_seconds + i.cpu_seconds for i in create_invocations)
    return LongCopy(
        copy_seconds=copy_seconds,
        invocations=len(create_invocations),
        billed_seconds=round(billed, 1),
        billed_fraction=round(billed / copy_seconds, 4),
        detection_seconds=round(success.at - available_at, 1),
        describe_calls=describe_calls,
        violations=violations,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.long_copy", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long the copy takes (virtual minutes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    figures = run(args.minutes)
    copy_seconds = figures.copy_seconds
    checks = {
        "billed_fraction": figures.billed_fraction <= TARGETS["billed_fraction"],
        "detection_seconds": figures.detection_seconds <= detection_target(copy_seconds),
        "describe_calls": figures.describe_calls <= TARGETS["describe_calls"],
    }
    print(f"copy of {copy_seconds / 60:.0f} min: {figures.invocations} invocations")
    print(
        f"billed time      {figures.billed_seconds:8.1f} s = {100 * figures.billed_fraction:.2f}% "
        f"of the copy (target <= 3%)  {'ok' if checks['billed_fraction'] else 'MISSED'}"
    )
    print(
        f"detection        {figures.detection_seconds:8.1f} s (target <= {detection_target(copy_seconds):.0f} s)"
        f"  {'ok' if checks['detection_seconds'] else 'MISSED'}"
    )
    verdict = "ok" if checks["describe_calls"] else "MISSED"
    print(f"DescribeImages   {figures.describe_calls:8d}   (target <= 40)  {verdict}")
    if figures.violations:
        print("ROS saw protocol violations:", *figures.violations, sep="\n  ")
    keys = ("billed_fraction", "detection_seconds", "describe_calls")
    print(json.dumps({key: value for key, value in asdict(figures).items() if key in keys}))
    return 0 if all(checks.values()) and not figures.violations else 1


if __name__ == "__main__":
    sys.exit(main())
