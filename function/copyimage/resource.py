"""What Custom::CopyImage does in ECS: start a copy, look at it, change it, remove it.

No protocol and no waiting here: each method does its ECS work and returns a value or raises.
"""

from __future__ import annotations

from collections.abc import Callable

from copyimage.errors import CopyFailed, CopyVanished, EcsError, ProviderError
from copyimage.images import FAILED, EcsImages, ImageView
from copyimage.logs import logger
from copyimage.properties import (
    LOGICAL_ID_TAG,
    STACK_TAG,
    WAITER_TAG,
    CopyImageProperties,
    DeleteOptions,
    is_image_id,
)
from copyimage.protocol import RosRequest, client_token

GONE_CHECKS = 10  # looks, a second apart, for a deleted image to disappear
REFUSAL_GRACE_SECONDS = 15.0  # time for a twin whose answer ROS took to clear the waiter tag


class CopyImageResource:
    def __init__(self, images: EcsImages, request: RosRequest, sleep: Callable[[float], None]) -> None:
        self._images = images
        self._request = request
        self._sleep = sleep

    @property
    def owner_tags(self) -> dict[str, str]:
        """The tags that tie a copy to its stack and logical resource."""
        return {STACK_TAG: self._request.stack_id, LOGICAL_ID_TAG: self._request.logical_resource_id}

    # -- Create -------------------------------------------------------------------------------------------

    def start_copy(self, props: CopyImageProperties, waiter: str) -> str:
        """CopyImage, tagged with the stack, the logical id and the first waiter of the copy."""
        token = client_token(self._request.stack_id, self._request.logical_resource_id, self._request.request_id)
        image_id = self._images.copy(props, token, {**props.tag_map, **self.owner_tags, WAITER_TAG: waiter})
        logger.info(
            "copy started",
            extra={
                "image_id": image_id,
                "source_image_id": props.image_id,
                "source_region": props.source_region_id,
                "destination_region": props.destination_region_id,
            },
        )
        return image_id

    def look(self, props: CopyImageProperties, image_id: str) -> ImageView | None:
        return self._images.find(props.destination_region_id, image_id)

    def check(self, props: CopyImageProperties, image_id: str, view: ImageView | None) -> ImageView:
        """The copy, if it is still on its way; CopyFailed when it is gone or failed."""
        if view is None:
            raise CopyVanished(
                f"the copy {image_id} disappeared from {props.destination_region_id} before it became available "
                "(it was cancelled or deleted outside this Create)"
            )
        if view.status in FAILED:
            raise CopyFailed(
                f"the copy {image_id} of {props.image_id} ended {view.status} in {props.destination_region_id}; "
                "check that the source image is usable and that the destination region accepts it, then retry"
            )
        return view

    def mark_waiter(self, props: CopyImageProperties, image_id: str, token: str) -> None:
        """Record which invocation chain waits for this copy (best effort: the next one also accepts ours)."""
        try:
            self._images.tag(props.destination_region_id, image_id, {WAITER_TAG: token})
        except EcsError as error:
            logger.warning("could not mark the waiting invocation on the copy", extra={"error_code": error.code})

    def clear_waiter(self, props: CopyImageProperties, image_id: str) -> None:
        """After the answer: the wait is over, and a late duplicate must find no waiter to match."""
        try:
            self._images.untag(props.destination_region_id, image_id, [WAITER_TAG])
        except EcsError as error:
            if not error.code.endswith("NotFound"):  # already deleted by the stack's next request: fine
                logger.warning("could not remove the waiter tag", extra={"error_code": error.code})

    def leftovers(self, region: str, waiter: str | None = None) -> list[ImageView]:
        """Copies of this stack and logical resource that no answer ever handed over to ROS.

        A copy keeps its waiter tag until ROS took the SUCCESS answer, so a copy ROS owns (or one kept by
        RetainOnDelete) is never among them; ``waiter`` narrows the search to one Create request's copy.
        """
        tags = {**self.owner_tags, **({WAITER_TAG: waiter} if waiter else {})}
        found = self._images.find_tagged(region, tags)
        return [view for view in found if WAITER_TAG in view.tags]

    def discard(self, props: CopyImageProperties, image_id: str | None, tokens: tuple[str, ...]) -> None:
        """Best-effort removal of what a failed Create started; the stack's Delete retries what is left.

        Only a copy whose waiter tag holds one of this invocation's ``tokens`` is removed: a superseded
        or late invocation must never remove a copy another invocation handed to ROS. Without an image
        id (CopyImage's outcome unknown), only a copy tagged with this request's first waiter can be ours.
        """
        region = props.destination_region_id
        try:
            if image_id is not None:
                view = self._images.find(region, image_id)
                views = [view] if view is not None else []
            else:
                views = [view for token in tokens for view in self.leftovers(region, token)]
            for view in views:
                if view.tags.get(WAITER_TAG) not in tokens:
                    logger.info("the copy is not this invocation's to remove", extra={"image_id": view.image_id})
                    continue
                self._remove(view, force=False, delete_snapshots=True)
        except ProviderError as error:
            logger.error(
                "could not remove the copy after a failed Create; the stack's Delete will retry",
                extra={"image_id": image_id, "error": str(error)},
            )

    def discard_if_unanswered(self, props: CopyImageProperties, image_id: str, tokens: tuple[str, ...]) -> None:
        """ROS refused a SUCCESS: remove the copy, unless another invocation's answer was taken.

        A twin invocation (FC delivers at least once) whose answer ROS took clears the waiter tag right
        after; so the copy is removed only if, after a grace period, the tag still names this chain (the
        check ``discard`` makes). Deleting a copy ROS owns would be far worse than leaving one for the
        stack's Delete to find.
        """
        if not (tokens and self._waiter_of(props, image_id) in tokens):
            logger.info("answer refused, but the copy is not ours to remove", extra={"image_id": image_id})
            return
        self._sleep(REFUSAL_GRACE_SECONDS)
        self.discard(props, image_id, tokens)

    def _waiter_of(self, props: CopyImageProperties, image_id: str) -> str | None:
        try:
            view = self._images.find(props.destination_region_id, image_id)
        except ProviderError as error:
            logger.error("could not look at the copy", extra={"image_id": image_id, "error": str(error)})
            return None
        return view.tags.get(WAITER_TAG) if view is not None else None

    # -- Update -------------------------------------------------------------------------------------------

    def update(self, old: CopyImageProperties, new: CopyImageProperties, image_id: str) -> list[str]:
        """Change the copy in place; returns the ECS actions it took."""
        region = new.destination_region_id
        view = self._images.find(region, image_id)
        if view is None:
            raise CopyFailed(f"the copy {image_id} no longer exists in {region}, so it cannot be updated")
        actions: list[str] = []
        name = new.destination_image_name if new.destination_image_name not in (None, view.name) else None
        description = (
            new.destination_description if new.destination_description not in (None, view.description) else None
        )
        if name or description:
            self._images.modify(region, image_id, name, description)
            actions.append("ModifyImageAttribute")
        wanted = new.tag_map
        removed = sorted(key for key in old.tag_map if key not in wanted and key in view.tags)
        if removed:
            self._images.untag(region, image_id, removed)
            actions.append("UntagResources")
        changed = {k: v for k, v in wanted.items() if view.tags.get(k) != v}
        if changed:
            self._images.tag(region, image_id, changed)
            actions.append("TagResources")
        if new.resource_group_id and new.resource_group_id != view.resource_group_id:
            self._images.join_resource_group(region, image_id, new.resource_group_id)
            actions.append("JoinResourceGroup")
        return actions

    # -- Delete -------------------------------------------------------------------------------------------

    def delete(self, options: DeleteOptions, physical_id: str | None) -> list[str]:
        """Remove the copy; returns the ids removed. A missing image is success."""
        region = options.destination_region_id
        # Without an image id, only a copy tagged with this stack and logical id, and never handed over to
        # ROS, can be ours (a failed or timed-out Create left it behind).
        views = [self._images.find(region, physical_id)] if is_image_id(physical_id) else self.leftovers(region)
        removed = []
        for view in views:
            if view is not None:
                self._remove(view, force=options.force_delete, delete_snapshots=options.delete_snapshots)
                removed.append(view.image_id)
        return removed

    def _remove(self, view: ImageView, force: bool, delete_snapshots: bool) -> None:
        if view.in_progress:
            try:
                self._images.cancel_copy(view.region, view.image_id)
                logger.info("copy cancelled", extra={"image_id": view.image_id})
                return
            except EcsError as error:
                if error.code.endswith("NotFound"):
                    return  # cancelled or deleted meanwhile by another request: gone is what we wanted
                if error.code != "IncorrectImageStatus":
                    raise
                # It finished between our look and the cancel: delete it instead.
        self._images.delete(view.region, view.image_id, force)
        self._wait_until_gone(view)
        logger.info("image deleted", extra={"image_id": view.image_id})
        if delete_snapshots and view.snapshot_ids:
            self._delete_snapshots(view, force)

    def _delete_snapshots(self, view: ImageView, force: bool) -> None:
        left: list[str] = []
        errors: list[str] = []
        for snapshot_id in view.snapshot_ids:
            try:
                self._images.delete_snapshot(view.region, snapshot_id, force)
            except EcsError as error:
                if error.code != "InvalidSnapshotId.NotFound":
                    left.append(snapshot_id)
                    errors.append(error.code)
        if left:
            # The image is gone, so a retried Delete could not find these again: name them now.
            raise CopyFailed(
                f"the image {view.image_id} was deleted, but not its snapshots {', '.join(left)} "
                f"({', '.join(sorted(set(errors)))}); delete them in the ECS console. Retrying the delete succeeds."
            )
        logger.info("snapshots deleted", extra={"snapshot_ids": list(view.snapshot_ids)})

    def _wait_until_gone(self, view: ImageView) -> None:
        for _ in range(GONE_CHECKS):
            if self._images.find(view.region, view.image_id) is None:
                return
            self._sleep(1.0)
        raise CopyFailed(
            f"the image {view.image_id} was deleted but is still listed after {GONE_CHECKS} s; retry the delete"
        )
