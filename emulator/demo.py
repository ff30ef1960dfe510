"""The one-command demo: a whole stack lifecycle from template.yml on the local cloud.

Create copies a sample image into another region (showing the copy's progress), Update changes a tag
and the description in place, Delete removes the copy; then a summary of what it cost. Time is virtual: an
hour-long copy takes as long as the work around it.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter

from emulator.clock import Task
from emulator.cloud import TEMPLATE, LocalCloud

DESTINATION = "cn-shanghai"
STEP_SECONDS = 30.0  # how often (virtual) the progress is shown


class Progress:
    """A bar on a terminal, a line per 10% elsewhere (CI logs, pipes)."""

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_step = -1

    def show(self, percent: int, status: str, elapsed_virtual: float) -> None:
        if self.tty:
            filled = percent // 5
            bar = "#" * filled + "-" * (20 - filled)
            self.stream.write(f"\r  [{bar}] {percent:3d}%  {status:<10} {elapsed_virtual / 60:5.1f} min of copy time")
            self.stream.flush()
        elif percent // 10 > self.last_step:
            self.last_step = percent // 10
            print(f"  copy progress: {percent}% ({status}, {elapsed_virtual / 60:.1f} min)", file=self.stream)

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _drive(cloud: LocalCloud, task: Task, progress: Progress) -> None:
    """Let virtual time run until the stack operation ends, showing the copy's progress on the way."""
    while not task.done:
        cloud.clock.run_until(lambda: task.done, timeout=STEP_SECONDS)
        copies = [image for image in cloud.ecs.images(DESTINATION) if image.is_copy]
        if copies and copies[-1].copy_started_at is not None:
            image = copies[-1]
            elapsed = min(cloud.clock.now(), image.copy_started_at + image.plan.duration) - image.copy_started_at
            progress.show(int(str(image.progress).rstrip("%") or 0), image.status, elapsed)
    progress.done()
    task.outcome()


def run(copy_minutes: float, verbose: bool = False) -> int:
    if not verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    started = time.monotonic()
    problems: list[str] = []
    with LocalCloud(copy_seconds=copy_minutes * 60) as cloud:
        print(f"Local cloud on 127.0.0.1 (virtual time): ECS {cloud.ecs.url}, FC {cloud.fc.url}, ROS {cloud.ros.url}")
        source = cloud.seed_image("golden-image", snapshot_count=2)
        print(f"Source image {source.image_id} ({source.name}) in {cloud.region}")

        template = cloud.template()
        parameters = {
            "ImageId": source.image_id,
            "DestinationRegionId": DESTINATION,
            "DestinationImageName": "golden-image-copy",
            "DestinationDescription": "Copied by the ros-copy-image demo",
            "Tag": "team=platform,env=demo",
        }
        print(f"\nCreate: stack from {TEMPLATE.name}, copying to {DESTINATION} ({copy_minutes:g} min copy)")
        stack = cloud.ros.begin_create(template, parameters, name="copy-image-demo")
        _drive(cloud, stack.operation, Progress())
        if stack.status != "CREATE_COMPLETE":
            print(f"  {stack.status}: {stack.reason}")
            return 1
        image_id = stack.outputs["ImageId"]
        print(f"  {stack.status}: ImageId = {image_id}")
        print(f"  outputs: {stack.outputs}")
        cloud.fc.wait_idle()

        print("\nUpdate: tag env=staging and a new description, in place")
        before = len(cloud.ecs.calls)
        stack = cloud.ros.update_stack(
            stack, {"Tag": "team=platform,env=staging", "DestinationDescription": "Updated in place by the demo"}
        )
        image = cloud.ecs.image(image_id)
        changed = [call.action for call in cloud.ecs.calls[before:] if call.action != "DescribeImages"]
        print(
            f"  {stack.status}: {', '.join(changed) or 'no change'}; same ImageId: "
            f"{stack.resources['CopyImage'].physical_id == image_id}"
        )
        if stack.status != "UPDATE_COMPLETE" or image.tags.get("env") != "staging":
            problems.append(f"update: {stack.status} {stack.reason}")
        else:
            print(f"  the copy now says: {image.description!r}, env={image.tags['env']}")

        print("\nDelete:")
        stack = cloud.ros.delete_stack(stack)
        gone = cloud.ecs.image(image_id) is None
        print(f"  {stack.status}: the copy is {'gone' if gone else 'STILL THERE'}")
        if stack.status != "DELETE_COMPLETE" or not gone:
            problems.append(f"delete: {stack.status} {stack.reason}")
        cloud.fc.wait_idle()

        calls = Counter(call.action for call in cloud.ecs.calls)
        invocations = cloud.fc.invocations
        continuations = sum(1 for i in invocations if b'"Continuation"' in i.payload)
        billed = cloud.billed_seconds()
        print("\nSummary")
        print(f"  ECS calls:       {sum(calls.values())} ({', '.join(f'{a} {n}' for a, n in calls.most_common())})")
        print(f"  FC invocations:  {len(invocations)} ({continuations} delayed self-invocations while copying)")
        print(
            f"  billed time:     {billed:.1f} s of function time for a {copy_minutes * 60:.0f} s copy "
            f"({100 * billed / (copy_minutes * 60):.1f}%)"
        )
        print(f"  ROS checks:      {len(cloud.ros.answers)} answers, {len(cloud.ros.violations)} protocol violations")
        problems.extend(cloud.ros.violations)
    print(f"  wall time:       {time.monotonic() - started:.1f} s")
    if problems:
        print("\nFAILED:", *problems, sep="\n  ")
        return 1
    print(f"\nDemo complete: ImageId {image_id} was created, updated and deleted.")
    return 0
