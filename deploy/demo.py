"""The one-command demo (``make demo``, ``python -m deploy.demo``): the provider installed from deploy/provider.yml
and the code package ``make package`` built, then a whole stack lifecycle from template.yml on the local cloud,
through the ROS API, then the provider uninstalled.

It runs deploy/smoke.py's lifecycle (CreateStack, GetStack with the copy's progress, a tag changed in place with
UpdateStack, DeleteStack, then checks in ECS that nothing is left) with the real ROS, ECS and FC SDKs against the
local stand-ins, exactly as a client would against Alibaba Cloud, and then shows what the function did and cost.
The function runs from its package, in FC's python3.10 (an interpreter of its own), not from the working tree.
Time is virtual: an hour-long copy takes as long as the work around it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from deploy import package, smoke
from emulator.cloud import LocalCloud


def run(copy_minutes: float, verbose: bool = False) -> int:
    if not verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    started = time.monotonic()
    code = package.ensure()
    with LocalCloud(copy_seconds=copy_minutes * 60, function_deployed=False) as cloud:
        print(f"Local cloud on 127.0.0.1 (virtual time): ECS {cloud.ecs.url}, FC {cloud.fc.url}, ROS {cloud.ros.url}")
        print(
            f"A {copy_minutes:g}-minute copy from {cloud.region}, driven through the ROS API as a user's client would"
        )
        print(f"The provider from deploy/provider.yml and {code.zip_path.name} ({code.size / 2**20:.1f} MiB)")
        try:
            report = smoke.run(smoke.local_target(cloud, code))
        except smoke.SmokeFailed as failure:
            print(f"\nFAILED: {failure}")
            return 1
        cloud.fc.wait_idle()
        calls = Counter(call.action for call in cloud.ecs.calls)
        api = Counter(call.action for call in cloud.ros.api.calls)
        invocations = cloud.fc.invocations
        # ROS invokes the function directly; the function invokes itself through the FC API.
        continuations = sum(1 for i in invocations if i.api != "direct" and i.delivery == "first")
        billed = sum(i.billed_seconds + i.cpu_seconds for i in invocations)
        print("\nWhat it took")
        print(f"  ROS API calls:   {sum(api.values())} ({', '.join(f'{a} {n}' for a, n in api.most_common())})")
        print(f"  ECS calls:       {sum(calls.values())} ({', '.join(f'{a} {n}' for a, n in calls.most_common())})")
        print(f"  FC invocations:  {len(invocations)} ({continuations} delayed self-invocations while copying)")
        print(
            f"  function time:   {billed:.1f} s (network waits and CPU here) for a {copy_minutes * 60:.0f} s copy; "
            "bench/compare.py prices it on FC"
        )
        print(f"  ROS checks:      {len(cloud.ros.answers)} answers, {len(cloud.ros.violations)} protocol violations")
        ran = sorted({i.code_checksum[:12] for i in invocations})
        print(f"  code that ran:   package {', '.join(ran)} (FC {cloud.fc.spec.runtime}, isolated)")
        if verbose:
            print("\nThe function's log", *cloud.fc.function_log, sep="\n  ")
        if cloud.ros.violations:
            print("\nFAILED:", *cloud.ros.violations, sep="\n  ")
            return 1
    print(f"  wall time:       {time.monotonic() - started:.1f} s")
    print(f"\nDemo complete: ImageId {report.image_id} was created, updated in place and deleted.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--copy-minutes", type=float, default=10.0, help="how long the copy takes (virtual minutes)")
    parser.add_argument("--verbose", action="store_true", help="show the function's JSON logs")
    args = parser.parse_args(argv)
    return run(args.copy_minutes, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
