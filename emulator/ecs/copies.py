"""How copies run: at most five per source region at once (CopyImage usage notes), the rest ``Waiting`` first in,
first out; each moves along its :class:`~emulator.progress.CopyPlan` on the virtual clock. State is brought up to
date lazily, replaying the ends of copies in order, so progress never depends on when anybody looked."""

from __future__ import annotations

import math

from emulator.clock import VirtualClock
from emulator.ecs.models import IN_PROGRESS, MAX_COPIES_IN_PROGRESS, Image, Snapshot


class CopyQueue:
    """The copies in the backend's images, by source region (call every method with the backend's lock held)."""

    def __init__(
        self, clock: VirtualClock, images: dict[str, dict[str, Image]], snapshots: dict[str, dict[str, Snapshot]]
    ) -> None:
        self.clock = clock
        self._images = images
        self._snapshots = snapshots
        self._counter = 0

    def enqueue(self, copy: Image) -> None:
        """A copy CopyImage just accepted: running if a slot is free and nobody waits, else Waiting."""
        assert copy.source is not None
        region = copy.source[0]
        self.advance(region)
        runs_now = len(self._from(region, "Creating")) < MAX_COPIES_IN_PROGRESS and not self._from(region, "Waiting")
        now = self.clock.now()
        self._counter += 1
        copy.status = "Creating" if runs_now else "Waiting"
        copy.copy_started_at = now if runs_now else None
        copy.copy_order = self._counter

    def cancelled(self, image: Image) -> None:
        """A copy was removed: a running one frees its slot now; a Waiting one just left the queue."""
        if image.status == "Creating" and image.source is not None:
            self._start_waiting(image.source[0], self.clock.now())

    def in_progress_of(self, region: str, image_id: str) -> bool:
        """Whether a copy of that source image is running or waiting."""
        return bool(self.readers_of(region, image_id))

    def readers_of(self, region: str, image_id: str) -> list[Image]:
        """The copies running or waiting that read from that image (a copy of a copy reads from the first copy)."""
        self.refresh_all()
        return [
            image
            for images in self._images.values()
            for image in images.values()
            if image.source == (region, image_id) and image.status in IN_PROGRESS
        ]

    def fail_now(self, image: Image) -> None:
        """End a copy in progress ``CreateFailed`` at once (its source went away); a running one frees its slot."""
        running = image.status == "Creating"
        image.status = "CreateFailed"
        image.fail_at_fraction = image.fail_at_fraction if image.fail_at_fraction is not None else 0.0
        if running and image.source is not None:
            self._start_waiting(image.source[0], self.clock.now())

    def refresh(self, image: Image) -> Image:
        """Bring a copy in progress or waiting up to date with the clock (with every copy from its region)."""
        if image.source is not None and image.status in IN_PROGRESS:
            self.advance(image.source[0])
        return image

    def refresh_all(self) -> None:
        for source_region in {
            image.source[0]
            for images in self._images.values()
            for image in images.values()
            if image.source is not None and image.status in IN_PROGRESS
        }:
            self.advance(source_region)

    def advance(self, source_region: str) -> None:
        """Replay the ends of the region's running copies up to now, starting waiting copies as slots free."""
        now = self.clock.now()
        self._start_waiting(source_region, now)  # only if a slot was freed outside the API (a test's edit)
        while True:
            ended = [
                image
                for image in self._from(source_region, "Creating")
                if now - (image.copy_started_at or 0.0) >= image.copy_duration
            ]
            if not ended:
                break
            first = min(
                ended, key=lambda image: ((image.copy_started_at or 0.0) + image.copy_duration, image.copy_order)
            )
            self._finish(first)
            self._start_waiting(source_region, (first.copy_started_at or 0.0) + first.copy_duration)
        for image in self._from(source_region, "Creating"):
            elapsed = max(0.0, now - (image.copy_started_at or 0.0))
            image.progress = f"{min(99, math.floor(image.plan.percent(elapsed)))}%"

    def _from(self, source_region: str, status: str) -> list[Image]:
        """The copies from a source region with that status, in CopyImage acceptance order."""
        found = [
            image
            for images in self._images.values()
            for image in images.values()
            if image.source is not None and image.source[0] == source_region and image.status == status
        ]
        return sorted(found, key=lambda image: image.copy_order)

    def _start_waiting(self, source_region: str, at: float) -> None:
        """Start the oldest Waiting copies from the region, at virtual time ``at``, while a slot is free."""
        running = len(self._from(source_region, "Creating"))
        for image in self._from(source_region, "Waiting")[: max(0, MAX_COPIES_IN_PROGRESS - running)]:
            image.status, image.progress, image.copy_started_at = "Creating", "0%", at

    def _finish(self, image: Image) -> None:
        if image.fail_at_fraction is not None:
            image.status, image.progress = "CreateFailed", f"{math.floor(image.plan.percent(image.copy_duration))}%"
            return
        image.status, image.progress = "Available", "100%"
        region_snapshots = self._snapshots[image.region]
        for snapshot_id in image.snapshot_ids:
            region_snapshots[snapshot_id] = Snapshot(snapshot_id, image.region, image.size, image.image_id)
