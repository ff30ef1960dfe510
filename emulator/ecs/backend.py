"""The ECS backend: images, snapshots and copies per region, with one typed method per action.

It knows nothing of HTTP (``emulator.ecs.responses`` parses requests and shapes replies) and raises the named
errors of :mod:`emulator.ecs.errors`. Copies move on the shared :class:`VirtualClock`, each along its
:class:`CopyPlan`, ``Creating`` with whole-percent ``Progress`` until it ends ``Available`` (or ``CreateFailed``).
At most five copies from one source region run at once (CopyImage's usage notes); further ones wait,
``Waiting`` at ``'0%'``, first in first out, and start the moment a slot frees. Status is derived lazily, replaying
the region's events, so a copy's progress never depends on when anybody looked.

Switches, for what the documentation leaves open (the suite runs the provider in the pessimistic setting too):

``tag_in_progress_refused``
    TagResources on an image not yet Available answers 403 ``InvalidStatus.ImageIsCreating`` (default: allowed).
``deleted_listing_seconds``
    how long a deleted image stays listed by DescribeImages (default 0).
``snapshot_release_seconds``
    how long DeleteSnapshot answers ``SnapshotCreatedImage`` after the image was deleted (default 0).
``missing_image_delete_ignored``
    DeleteImage of a missing image succeeds (the parameter text's "ignored") instead of the error table's 404.
``source_delete_fails_copies``
    DeleteImage of an image a copy in progress reads from (a relay) deletes it and fails those copies
    (``CreateFailed``) instead of refusing with 403 ``OperationDenied.ImageCopying`` (default: refused, as the image
    FAQ's "during the image copying process, the source image cannot be deleted" reads).

Seeding and inspection, for tests and demos: :meth:`seed_image`, :meth:`image`, :meth:`images`,
:meth:`snapshots`, :meth:`fail_copies`, ``copy_seconds``/``copy_plan`` (how new copies move), ``image_quota``,
``kms_keys``; :meth:`reset` goes back to an empty account with the documented behaviour. Every method that reads
or changes state takes :attr:`lock`.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable, Iterable

from emulator.clock import VirtualClock
from emulator.ecs import errors
from emulator.ecs.copies import CopyQueue
from emulator.ecs.models import (
    DEFAULT_IMAGE_QUOTA,
    DEFAULT_KMS_KEY_ID,
    DEFAULT_REGIONS,
    IN_PROGRESS,
    MAX_CLIENT_TOKEN_LENGTH,
    MAX_TAGS,
    CopyRequest,
    Image,
    Snapshot,
)
from emulator.ecs.rules import Tags, check_description, check_image_name, check_resource_group, check_tags
from emulator.progress import CopyPlan

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


class EcsBackend:
    def __init__(self, clock: VirtualClock, regions: Iterable[str] = DEFAULT_REGIONS, copy_seconds: float = 60.0):
        self.clock = clock
        self.regions = tuple(regions)
        self.copy_seconds = float(copy_seconds)  # duration of new copies (steady plan), in virtual seconds
        self.copy_plan: Callable[[], CopyPlan] | None = None  # when set, each new copy's plan
        self.image_quota: int = DEFAULT_IMAGE_QUOTA  # custom images per region, for QuotaExceed.Image
        self.tag_in_progress_refused = False
        self.deleted_listing_seconds = 0.0
        self.snapshot_release_seconds = 0.0
        self.missing_image_delete_ignored = False
        self.source_delete_fails_copies = False
        self.kms_keys: set[str] = {DEFAULT_KMS_KEY_ID}
        self.lock = threading.RLock()
        self._images: dict[str, dict[str, Image]] = {region: {} for region in self.regions}
        self._snapshots: dict[str, dict[str, Snapshot]] = {region: {} for region in self.regions}
        self._copies = CopyQueue(clock, self._images, self._snapshots)
        self._tokens: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {}  # token -> (parameters, image id)
        self._pending_failures: list[float] = []
        self._seed_counter = 0
        self._lingering: dict[str, dict[str, tuple[Image, float]]] = {region: {} for region in self.regions}
        self._linked_until: dict[str, float] = {}  # snapshot id -> when its deleted image lets go of it

    # ------------------------------------------------------------------ seeding and inspection

    def serves(self, region: str) -> bool:
        return region in self._images

    def seed_image(
        self,
        region: str,
        name: str | None = None,
        snapshot_count: int = 1,
        owner_alias: str = "self",
        status: str = "Available",
        **attrs: object,
    ) -> Image:
        """Put an image (and its snapshots) in a region. Names follow the API's rules and are unique per region."""
        with self.lock:
            if region not in self._images:
                raise ValueError(f"unknown region {region!r}")
            if name is None:
                self._seed_counter += 1
                name = f"seed-image-{self._seed_counter}"
            try:
                check_image_name(name)
            except errors.EcsError as error:
                raise ValueError(f"{error.code}: {name!r}") from None
            if self._name_taken(region, name):
                raise ValueError(f"an image named {name!r} already exists in {region}")
            attrs.setdefault("progress", "100%" if status == "Available" else "0%")
            image = Image(
                image_id=new_id("m-"),
                region=region,
                name=name,
                owner_alias=owner_alias,
                status=status,
                created_at=self.clock.now(),
                **attrs,  # type: ignore[arg-type]
            )
            for _ in range(snapshot_count):
                snapshot = Snapshot(new_id("s-"), region, image.size, image.image_id)
                self._snapshots[region][snapshot.snapshot_id] = snapshot
                image.snapshot_ids.append(snapshot.snapshot_id)
            self._images[region][image.image_id] = image
            return image

    def image(self, image_id: str) -> Image | None:
        """The image with that id in any region, its status brought up to date; None if there is none.

        This is the live record: a test may change fields such as ``in_use`` or ``status`` directly.
        """
        with self.lock:
            for images in self._images.values():
                if image_id in images:
                    return self._copies.refresh(images[image_id])
            return None

    def images(self, region: str) -> list[Image]:
        with self.lock:
            self._copies.refresh_all()
            return list(self._images.get(region, {}).values())

    def snapshots(self, region: str) -> list[str]:
        with self.lock:
            self._copies.refresh_all()
            return list(self._snapshots[region])

    def snapshot_exists(self, region: str, snapshot_id: str) -> bool:
        return snapshot_id in self._snapshots[region]

    def fail_copies(self, count: int = 1, at_fraction: float = 0.5) -> None:
        """The next ``count`` copies end ``CreateFailed`` once ``at_fraction`` of their duration has passed."""
        if not 0.0 <= at_fraction <= 1.0:
            raise ValueError("at_fraction must be within 0..1")
        with self.lock:
            self._pending_failures.extend([float(at_fraction)] * count)

    def reset(self) -> None:
        """Back to an empty account with the documented behaviour (between the scenarios of one test)."""
        with self.lock:
            for region in self.regions:
                self._images[region].clear()
                self._snapshots[region].clear()
                self._lingering[region].clear()
            self._tokens.clear()
            self._linked_until.clear()
            self._pending_failures.clear()
        self.copy_plan = None
        self.image_quota = DEFAULT_IMAGE_QUOTA
        self.tag_in_progress_refused = False
        self.deleted_listing_seconds = 0.0
        self.snapshot_release_seconds = 0.0
        self.missing_image_delete_ignored = False
        self.source_delete_fails_copies = False

    # ------------------------------------------------------------------ CopyImage

    def replayed_copy(self, token: str, fingerprint: tuple[tuple[str, str], ...]) -> str | None:
        """The image id a CopyImage with this ClientToken and these parameters answered before; None if none did."""
        if len(token) > MAX_CLIENT_TOKEN_LENGTH or not token.isascii():
            raise errors.ClientTokenMalformed()
        if token not in self._tokens:
            return None
        first_fingerprint, first_image_id = self._tokens[token]
        if first_fingerprint != fingerprint:
            raise errors.IdempotentParameterMismatch()
        return first_image_id

    def copy_image(self, request: CopyRequest) -> str:
        """Start (or queue) a copy; the new image's id. A ClientToken seen before returns the first copy's id."""
        token = request.client_token
        if token is not None and (first := self.replayed_copy(token, request.fingerprint)) is not None:
            return first
        self._check_copy_parameters(request)
        source = self._copyable_source(request)
        copy = self._new_copy(request, source)
        if token is not None:
            self._tokens[token] = (request.fingerprint, copy.image_id)
        return copy.image_id

    def _check_copy_parameters(self, request: CopyRequest) -> None:
        if request.name is not None:
            check_image_name(request.name)
        if request.description is not None:
            check_description(request.description)
        check_tags(request.tags)
        if request.resource_group is not None:
            check_resource_group(request.resource_group)
        if request.kms_key_id is not None and not request.encrypted:
            raise errors.EncryptedIllegal()

    def _copyable_source(self, request: CopyRequest) -> Image:
        """The source image, once everything CopyImage checks in the account holds."""
        destination, region, image_id = request.destination, request.source_region, request.image_id
        if destination not in self._images:
            raise errors.DestinationRegionNotFound(destination)
        source = self._images[region].get(image_id)
        if source is None or source.owner_alias != "self":
            raise errors.ImageNotFound(image_id, region)
        if self._copies.refresh(source).status != "Available":
            raise errors.IncorrectImageStatus("The image not available.")
        if self._copies.in_progress_of(region, image_id):
            raise errors.ImageCopyConflict()
        if request.kms_key_id is not None and request.kms_key_id not in self.kms_keys:
            raise errors.KmsKeyNotFound(request.kms_key_id)
        if request.name is not None and self._name_taken(destination, request.name):
            raise errors.ImageNameDuplicated(request.name, destination)
        if sum(1 for image in self._images[destination].values() if image.owner_alias == "self") >= self.image_quota:
            raise errors.ImageQuotaExceeded()
        if request.dry_run:
            raise errors.DryRunOperation()
        return source

    def _new_copy(self, request: CopyRequest, source: Image) -> Image:
        plan = self.copy_plan() if self.copy_plan is not None else CopyPlan.steady(self.copy_seconds)
        copy = Image(
            image_id=new_id("m-"),
            region=request.destination,
            name=request.name if request.name is not None else source.name,
            description=request.description if request.description is not None else source.description,
            progress="0%",
            created_at=self.clock.now(),
            tags={key: value or "" for key, value in request.tags},
            snapshot_ids=[new_id("s-") for _ in source.snapshot_ids],
            size=source.size,
            resource_group_id=request.resource_group or "",
            is_copied=True,
            source=(request.source_region, request.image_id),
            encrypted=request.encrypted or source.encrypted,
            kms_key_id=request.kms_key_id,
            plan=plan,
            fail_at_fraction=self._pending_failures.pop(0) if self._pending_failures else None,
        )
        self._copies.enqueue(copy)
        self._images[request.destination][copy.image_id] = copy
        return copy

    # ------------------------------------------------------------------ the other image actions

    def describe_images(self, region: str, matches: Callable[[Image], bool]) -> list[Image]:
        """The region's images that ``matches`` selects (those deleted a moment ago included), newest first."""
        self._copies.refresh_all()
        found = [image for image in self._listed(region) if matches(image)]
        found.sort(key=lambda image: image.created_at, reverse=True)
        return found

    def cancel_copy_image(self, region: str, image_id: str) -> None:
        image = self._images[region].get(image_id)
        if image is None:
            raise errors.ImageNotFound(image_id, region)
        if not image.is_copy:
            raise errors.ImageCreatedNotFromCopy()
        if self._copies.refresh(image).status not in IN_PROGRESS:
            failed = image.status == "CreateFailed"
            raise errors.IncorrectImageStatus(
                "The Image copy has been failed." if failed else "The image copy has completed."
            )
        del self._images[region][image_id]  # its snapshots were never completed
        self._copies.cancelled(image)

    def delete_image(self, region: str, image_id: str, force: bool) -> None:
        image = self._images[region].get(image_id)
        now = self.clock.now()
        if image is None:
            lingering = self._lingering[region].get(image_id)
            if self.missing_image_delete_ignored or (lingering is not None and lingering[1] > now):
                return
            raise errors.ImageNotFound(image_id)
        self._copies.refresh(image)
        if image.owner_alias != "self":
            raise errors.NotCustomImage(image_id)
        if image.status in IN_PROGRESS:
            raise errors.ImageCopying()
        if image.in_use and not force:
            raise errors.ImageUsingByInstance()
        readers = self._copies.readers_of(region, image_id)
        if readers and not self.source_delete_fails_copies:
            raise errors.ImageCopying()
        for reader in readers:
            self._copies.fail_now(reader)
        del self._images[region][image_id]  # its snapshots stay
        if self.deleted_listing_seconds > 0:
            self._lingering[region][image_id] = (image, now + self.deleted_listing_seconds)
        for snapshot_id in image.snapshot_ids:
            self._linked_until[snapshot_id] = now + self.snapshot_release_seconds

    def modify_image_attribute(
        self, region: str, image_id: str, name: str | None, description: str | None, status: str | None
    ) -> None:
        if name is not None:
            check_image_name(name)
        if description is not None:
            check_description(description)
        if status not in (None, "Deprecated", "Available"):
            raise errors.InvalidParameter('The specified parameter "Status" must be Deprecated or Available.')
        image = self._images[region].get(image_id)
        if image is None:
            raise errors.ImageNotFound(image_id, region)
        if image.owner_alias != "self":
            raise errors.NotCustomImage(image_id)
        if name is not None and self._name_taken(region, name, other_than=image_id):
            raise errors.ImageNameDuplicated(name, region)
        current = self._copies.refresh(image).status
        if status == "Deprecated" and current != "Available":
            raise errors.ImageNotAvailable()
        if status == "Available" and current not in ("Available", "Deprecated"):
            raise errors.ImageNotDeprecated()
        image.name = name if name is not None else image.name
        image.description = description if description is not None else image.description
        image.status = status if status is not None else image.status

    def tag_resources(self, region: str, resource_ids: list[str], tags: Tags) -> None:
        images = self._resources(region, resource_ids)
        check_tags(tags)
        for image in images:
            if self.tag_in_progress_refused and self._copies.refresh(image).status in IN_PROGRESS:
                raise errors.ImageIsCreating()
            if len({*image.tags, *(key for key, _ in tags)}) > MAX_TAGS:
                raise errors.TagCountExceeded(f"The resource {image.image_id} would carry over {MAX_TAGS} tags.")
        for image in images:
            for key, value in tags:
                image.tags[key] = value or ""

    def untag_resources(self, region: str, resource_ids: list[str], keys: list[str], remove_all: bool) -> None:
        for image in self._resources(region, resource_ids):
            if keys:
                for key in keys:
                    image.tags.pop(key, None)
            elif remove_all:
                image.tags.clear()

    def join_resource_group(self, region: str, resource_id: str, resource_group: str) -> None:
        check_resource_group(resource_group)
        image = self._images[region].get(resource_id)
        if image is None:
            raise errors.ResourceNotFound(resource_id)
        image.resource_group_id = resource_group

    def snapshot_region(self, snapshot_id: str) -> str:
        """The region a snapshot is in (DeleteSnapshot takes no RegionId)."""
        self._copies.refresh_all()
        region = next((r for r, snapshots in self._snapshots.items() if snapshot_id in snapshots), None)
        if region is None:
            raise errors.SnapshotNotFound(snapshot_id)
        return region

    def delete_snapshot(self, region: str, snapshot_id: str) -> None:
        user = next((i for i in self._images[region].values() if snapshot_id in i.snapshot_ids), None)
        if user is not None or self._linked_until.get(snapshot_id, 0.0) > self.clock.now():
            raise errors.SnapshotCreatedImage()
        del self._snapshots[region][snapshot_id]

    # ------------------------------------------------------------------ helpers (call with the lock held)

    def _listed(self, region: str) -> list[Image]:
        """The region's images, and those deleted so recently that ECS still lists them (a switch)."""
        now = self.clock.now()
        lingering = self._lingering[region]
        for image_id in [i for i, (_, until) in lingering.items() if until <= now]:
            del lingering[image_id]
        return [*self._images[region].values(), *(image for image, _ in lingering.values())]

    def _name_taken(self, region: str, name: str, other_than: str | None = None) -> bool:
        return any(i.name == name and i.image_id != other_than for i in self._images[region].values())

    def _resources(self, region: str, resource_ids: list[str]) -> list[Image]:
        images = []
        for resource_id in resource_ids:
            image = self._images[region].get(resource_id)
            if image is None:
                raise errors.ResourceNotFound(resource_id)
            images.append(image)
        return images
