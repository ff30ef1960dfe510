"""Relay copies: when ECS refuses a second concurrent copy of the source image, copy a finished copy of it instead.

ECS refuses a concurrent copy of one image (``OperationDenied.ImageCopyConflict``), so a stack copying one image into
N regions would take N copy times. A copy, once ``Available``, is an ordinary custom image and can be copied too: if
each resource that finds the source busy copies from a finished copy of the same source made by the same stack, the
finished copies double every round, and N regions take about log2(N + 1) copy times.

Every copy carries its lineage (``copyimage:source-image-id``, ``copyimage:source-region-id``, and
``copyimage:copied-from`` naming ``<image id>@<region>`` of the image it was read from), so the stack's copies of one
source are found with one tagged DescribeImages per region, and a copy being read from is known by the copies in
progress that name it. ECS is regional: the regions looked in are those DescribeRegions lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from copyimage.images import EcsImages, ImageView
from copyimage.properties import COPIED_FROM_TAG, SOURCE_IMAGE_TAG, SOURCE_REGION_TAG, STACK_TAG, WAITER_TAG

RELAY_TRIES = 3  # CopyImage calls on relays per look: a relay found busy (a conflict) gives way to the next
RETAINED = "retained:"  # the mark of a copy RetainOnDelete kept: no longer the stack's, never a relay
# The mark a relay's Delete puts on it once copies read from it: never a relay again, and a reader whose copy is
# then cancelled (or failed) knows its relay was taken away, so that it copies again (see resource.look).
RELEASING = "releasing:"


def lineage_tags(stack_id: str, source_image_id: str, source_region: str) -> dict[str, str]:
    """The tags every copy of this stack from this original source carries (and relays are found by)."""
    return {STACK_TAG: stack_id, SOURCE_IMAGE_TAG: source_image_id, SOURCE_REGION_TAG: source_region}


def continent(region: str) -> str:
    """The region id's prefix (cn, ap, eu, us, me, ...): copies within one are usually the fastest."""
    return region.split("-", 1)[0]


def lineage(images: EcsImages, regions: Iterable[str], tags: Mapping[str, str]) -> list[ImageView]:
    """Every image carrying ``tags`` (a lineage) in the regions, in any status: one DescribeImages per region."""
    return [view for region in sorted(regions) for view in images.find_tagged(region, tags)]


def readers(views: Iterable[ImageView], image: ImageView) -> list[ImageView]:
    """The copies in progress that read from ``image``."""
    return [view for view in views if view.in_progress and view.tags.get(COPIED_FROM_TAG) == image.origin]


def candidates(views: list[ImageView], destination: str) -> list[ImageView]:
    """The relays to try, best first: ``Available``, unencrypted, still the stack's, not being deleted, and not being
    read from.

    Preferred: a relay in the destination region itself, then on the destination's continent, then any; ties go to
    the region id, then the image id, so that every resource ranks the same relays the same way.
    """
    busy = {view.tags.get(COPIED_FROM_TAG) for view in views if view.in_progress}
    free = [
        view
        for view in views
        if view.status == "Available"
        and not view.encrypted
        and view.origin not in busy
        and not str(view.tags.get(WAITER_TAG, "")).startswith((RETAINED, RELEASING))
    ]
    return sorted(
        free,
        key=lambda v: (v.region != destination, continent(v.region) != continent(destination), v.region, v.image_id),
    )


def inherits_alike(relay: ImageView, original: ImageView, name: str | None, description: str | None) -> bool:
    """Whether a copy read from ``relay`` gets the name and description a copy of ``original`` would: those the
    resource sets (DestinationImageName, DestinationDescription), else the image's, so the relay's must match."""
    return (name is not None or relay.name == original.name) and (
        description is not None or relay.description == original.description
    )
