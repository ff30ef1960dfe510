"""What Custom::CopyImage does in ECS: start a copy, look at it, finish, update it, delete it.

No protocol and no waiting here: each method does its ECS work and returns a plain value (a :class:`Seen`, in
the categories the framework's waiting understands), or raises a ProviderError saying what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from copyimage.errors import CopyFailed, EcsError, InvalidProperty, ProviderError, ReplacementRequired, TryLater
from copyimage.images import FAILED, EcsImages, ImageView, origin_of
from copyimage.logs import log_fact, logger
from copyimage.properties import (
    COPIED_FROM_TAG,
    LOGICAL_ID_TAG,
    SOURCE_IMAGE_TAG,
    SOURCE_REGION_TAG,
    STACK_TAG,
    WAITER_TAG,
    CopyImageProperties,
    DeleteOptions,
    is_image_id,
    parse_delete_options,
    parse_properties,
    replacement_changes,
)
from copyimage.protocol import CreateRequest, DeleteRequest, RosRequest, UpdateRequest, client_token
from copyimage.relays import (
    RELAY_TRIES,
    RELEASING,
    RETAINED,
    candidates,
    inherits_alike,
    lineage,
    lineage_tags,
    readers,
)
from copyimage.waiting import ANSWERED, LOOK_SOON, SETTLE_SECONDS, Seen, Wait, answered_mark

# CopyImage's error table: the same source image is being copied (400), or "try again later" (409).
CONFLICTS = frozenset({"OperationDenied.ImageCopyConflict", "InvalidOperation.Conflict"})
# DeleteImage refuses a copy in progress (403 OperationDenied.ImageCopying; ImageIsCreating in older tables).
STILL_COPYING = frozenset({"OperationDenied.ImageCopying", "ImageIsCreating"})
# DeleteSnapshot: still linked to an image being deleted (403 SnapshotCreatedImage), or a conflict (403).
SNAPSHOT_BUSY = frozenset({"SnapshotCreatedImage", "Operation.Conflict", "OperationConflict"})
# CopyImage's error table: the destination region does not exist (400).
DESTINATION_UNKNOWN = frozenset({"DestinationRegion.NotFound", "InvalidDestinationRegionId.NotFound"})
Discarded = Literal["removed", "usable", "not ours"]  # the mark of a copy RetainOnDelete kept: no longer the stack's
GONE_LOOK_SECONDS = 5.0  # look again this soon at an image still listed after DeleteImage, then less often
MAX_PASS_SECONDS = 300.0
READ_LOOK_SECONDS = 30.0  # look again this soon at a copy a relay copy reads from
READ_PATIENCE_SECONDS = 900.0  # then cancel the copies still reading from it, well within the cleanup deadline


class CopyImageResource:
    def __init__(self, images: EcsImages, request: RosRequest, now: Callable[[], float]) -> None:
        self._images = images
        self._request = request
        self._now = now

    @property
    def owner_tags(self) -> dict[str, str]:
        """The tags that tie a copy to its stack and logical resource."""
        return {STACK_TAG: self._request.stack_id, LOGICAL_ID_TAG: self._request.logical_resource_id}

    def _props(self) -> CopyImageProperties:
        return parse_properties(self._request.properties, self._request.region_id)

    def _data(self, props: CopyImageProperties, image_id: str) -> dict[str, str]:
        return {
            "ImageId": image_id,
            "DestinationRegionId": props.destination_region_id,
            "SourceRegionId": props.source_region_id,
        }

    # -- Create -------------------------------------------------------------------------------------------

    def start(self, request: CreateRequest, wait: Wait) -> Seen:
        """Begin a Create: adopt this resource's copy still in progress, or start one (CopyImage).

        Returns ``pending`` with the copy in its state, ``ready`` when AllowCopyInSameRegion makes no copy, or
        ``unreachable`` when ECS says "not yet" (a concurrent copy of the same source, throttling).
        """
        props = self._props()
        checked = self._check_regions(props)
        if not props.copies:
            logger.info("no copy: AllowCopyInSameRegion, same region", extra={"image_id": props.image_id})
            return Seen("ready", physical_id=props.image_id, data=self._data(props, props.image_id))
        adopted = self._adoptable(props, checked)
        if adopted is not None:
            mark = adopted.tags.get(WAITER_TAG, "")
            self._mark(props.destination_region_id, adopted.image_id, wait.mark or "")
            logger.info(
                "adopting the copy an earlier Create of this resource started", extra={"image_id": adopted.image_id}
            )
            state = {"image_id": adopted.image_id, "started_hop": wait.hop, **_relay_of(adopted, props)}
            return Seen("pending", state=state, accepts=(mark,) if mark else ())
        image_id, relay = self._start_copy(props, request, wait)
        logger.info(
            "copy started",
            extra={
                "image_id": image_id,
                "source_image_id": props.image_id,
                "source_region": props.source_region_id,
                "destination_region": props.destination_region_id,
                "copied_from": relay.origin if relay is not None else "the source image",
            },
        )
        state = {"image_id": image_id, "started_hop": wait.hop}
        return Seen("pending", state={**state, "relay": relay.origin} if relay is not None else state)

    def _start_copy(
        self, props: CopyImageProperties, request: CreateRequest, wait: Wait
    ) -> tuple[str, ImageView | None]:
        """CopyImage from the source; when ECS refuses a concurrent copy of it, from a relay (AllowRelay).

        Returns the new copy's id and the relay it reads from (None: the source). Every copy carries its lineage.
        """
        token = client_token(request.stack_id, request.logical_resource_id, _attempt_id(request, wait))
        lineage = lineage_tags(request.stack_id, props.image_id, props.source_region_id)
        tags = {**props.tag_map, **self.owner_tags, **lineage, WAITER_TAG: wait.mark or ""}
        try:
            origin = origin_of(props.image_id, props.source_region_id)
            return self._images.copy(props, token, {**tags, COPIED_FROM_TAG: origin}), None
        except EcsError as error:
            if error.code not in CONFLICTS:
                raise _copy_refused(error, props) from None
            started = self._copy_from_relay(props, request, wait, tags) if props.relays else None
            if started is None:
                raise TryLater(error.code, f"{error} (another copy of {props.image_id} runs; waiting for it)") from None
            return started

    def _copy_from_relay(
        self, props: CopyImageProperties, request: CreateRequest, wait: Wait, tags: dict[str, str]
    ) -> tuple[str, ImageView] | None:
        """Copy from the best free relay (a finished copy of the same source by this stack), or None if none is."""
        regions = self._images.regions(self._request.region_id or props.source_region_id)
        views = lineage(self._images, regions, lineage_tags(request.stack_id, props.image_id, props.source_region_id))
        found = candidates(views, props.destination_region_id)
        original = self._images.find(props.source_region_id, props.image_id) if found else None
        if original is None:
            return None
        # A copy takes the name and description of what it reads unless CopyImage sets them: only relays that
        # would give the same ones as the source qualify.
        name, description = props.destination_image_name, props.destination_description
        found = [relay for relay in found if inherits_alike(relay, original, name, description)]
        for relay in found[:RELAY_TRIES]:
            # Its own token: the same token with another source would be refused as a parameter mismatch.
            token = client_token(
                request.stack_id, request.logical_resource_id, f"{_attempt_id(request, wait)}\n{relay.origin}"
            )
            try:
                source = (relay.region, relay.image_id)
                return self._images.copy(props, token, {**tags, COPIED_FROM_TAG: relay.origin}, source), relay
            except EcsError as error:
                if error.code in CONFLICTS or error.code == "IncorrectImageStatus" or error.not_found:
                    logger.info("relay busy or gone", extra={"relay": relay.origin, "error_code": error.code})
                    continue  # read from by a copy another stack or a user started, or no longer Available
                raise _copy_refused(error, props) from None
        return None

    def _check_regions(self, props: CopyImageProperties) -> bool:
        """Refuse a region no ECS endpoint serves before anything is copied, naming the property. A courtesy:
        when DescribeRegions cannot be read, CopyImage judges the regions (see start)."""
        try:
            known = self._images.regions(self._request.region_id or props.source_region_id)
        except EcsError as error:
            logger.warning("regions not checked: DescribeRegions failed", extra={"error_code": error.code})
            return False
        for name, region in (
            ("SourceRegionId", props.source_region_id),
            ("DestinationRegionId", props.destination_region_id),
        ):
            if region not in known:
                raise InvalidProperty(
                    name, f"{region!r} is not a region ECS serves for this account (DescribeRegions lists {len(known)})"
                )
        return True

    def _adoptable(self, props: CopyImageProperties, regions_checked: bool = True) -> ImageView | None:
        """A copy an earlier Create of this stack and logical id left in progress (ROS sent Create again). When the
        regions could not be checked and the destination's endpoint does not answer (as for a region that does not
        exist), CopyImage is left to judge the destination."""
        try:
            found = self._images.find_tagged(props.destination_region_id, self.owner_tags)
        except EcsError as error:
            if regions_checked or error.code != "ConnectionError":
                raise
            logger.warning("no earlier copy looked for: the destination does not answer", extra={"error": str(error)})
            return None
        waiting = [view for view in found if view.in_progress and _chain_mark(view.tags.get(WAITER_TAG))]
        return waiting[0] if waiting else None

    def look(self, request: CreateRequest, wait: Wait) -> Seen:
        """The copy as ECS lists it now."""
        props = self._props()
        image_id = str(wait.state["image_id"])
        region = props.destination_region_id
        view = self._images.find(region, image_id)
        taken = self._relay_taken(wait) if view is None or view.status in FAILED else None
        if taken is not None:
            mark = None if view is None else view.tags.get(WAITER_TAG)
            what = "was cancelled" if view is None else f"ended {view.status}"
            return Seen("restart", mark, detail=f"the copy {image_id} {what}: the relay it read from {taken}")
        if view is None:
            return Seen(
                "missing",
                detail=f"the copy {image_id} disappeared from {region} before it became available (it was "
                "cancelled or deleted outside this Create)",
            )
        mark = view.tags.get(WAITER_TAG)
        if view.usable:
            return Seen("ready", mark, physical_id=image_id, data=self._data(props, image_id))
        if view.status in FAILED:
            return Seen(
                "failed",
                mark,
                detail=f"the copy {image_id} of {props.image_id} ended {view.status} in {region}; check that the "
                "source image is usable and that the destination region accepts it, then retry",
            )
        return Seen("pending", mark, percent=view.progress, detail=f"the copy {image_id} {view.status}")

    def _relay_taken(self, wait: Wait) -> str | None:
        """How the relay this copy read from was taken away (deleted, or its Delete marked it), or None: it is there,
        or the copy read from the source. Only then does a copy that vanished or failed mean "copy again"."""
        relay = str(wait.state.get("relay") or "")
        image_id, _, region = relay.partition("@")
        if not (image_id and region):
            return None
        view = self._images.find(region, image_id)
        if view is None:
            return f"{relay} was deleted"
        if str(view.tags.get(WAITER_TAG, "")).startswith(RELEASING):
            return f"{relay} is being deleted"
        return None

    def claim(self, request: RosRequest, wait: Wait, token: str) -> None:
        """Write the next invocation's mark on the copy (best effort: it also accepts this one's, and earlier)."""
        image_id = wait.state.get("image_id")
        if isinstance(request, CreateRequest) and image_id:
            # ``wait`` is the next invocation's: the hand-over right after the copy started makes the first mark on
            # a copy in progress (or queued), and what ECS answers to it is a platform fact.
            first = wait.hop == int(wait.state.get("started_hop", 0)) + 1
            self._mark(self._props().destination_region_id, str(image_id), token, fact=first)

    def finish(self, request: RosRequest, wait: Wait, delivered: bool) -> None:
        """After ROS took a Create's SUCCESS: mark the copy answered, so that late replays stop."""
        image_id = wait.state.get("image_id")
        if isinstance(request, CreateRequest) and delivered and image_id:
            self._mark(self._props().destination_region_id, str(image_id), answered_mark(self._now()))

    def discard(self, request: RosRequest, wait: Wait) -> Discarded:
        """Before a FAILED answer: remove the copy this Create started, if its mark shows it is still this chain's.

        Returns what became of it: ``removed`` (or it was never there: answer FAILED), ``usable`` (it finished
        meanwhile: look again, and answer SUCCESS), or ``not ours`` (another chain owns or answered it: say nothing).
        What could not be removed carries this resource's tags; the stack's rollback Delete finds it by them.
        """
        image_id = wait.state.get("image_id")
        if not isinstance(request, CreateRequest) or not image_id:
            return "removed"
        try:
            view = self._images.find(self._props().destination_region_id, str(image_id))
            if view is None:
                return "removed"
            mark = view.tags.get(WAITER_TAG)
            if mark is None or not wait.owns(mark):
                logger.info("the copy is not this invocation's to remove", extra={"image_id": view.image_id})
                return "not ours"
            if view.usable or (view.in_progress and not self._cancel(view)):
                return "usable"
            if not view.in_progress:
                self._delete_image(view, force=False)
        except ProviderError as error:
            logger.error(
                "could not remove the copy after a failed Create; the stack's rollback Delete will",
                extra={"error": str(error)},
            )
        return "removed"

    def _mark(self, region: str, image_id: str, mark: str, fact: bool = False) -> None:
        """Set the copy's waiter tag; what ECS answers is logged (tagging a copy in progress is undocumented),
        as a platform fact the first time in a request."""
        try:
            self._images.tag(region, image_id, {WAITER_TAG: mark})
        except EcsError as error:
            logger.warning(
                "ECS refused to tag the copy", extra={"image_id": image_id, "error_code": error.code, "mark": mark}
            )
            outcome = f"refused: {error.code}"
        else:
            logger.info("copy marked", extra={"image_id": image_id, "mark": mark})
            outcome = "accepted"
        if fact:
            log_fact("tag_copy_in_progress", image_id=image_id, ecs_answer=outcome)

    # -- Update -------------------------------------------------------------------------------------------

    def update(self, request: UpdateRequest, wait: Wait) -> Seen:
        """Change the copy in place: name, description, tags, resource group."""
        region_default = request.region_id
        new = parse_properties(request.properties, region_default)
        old = parse_properties(request.old_properties, region_default)
        changed = replacement_changes(old, new)
        if changed:
            raise ReplacementRequired(changed)
        image_id = request.physical_resource_id
        if not new.copies:
            in_place = [
                name
                for name in ("DestinationImageName", "DestinationDescription", "Tag", "ResourceGroupId")
                if old.property_value(name) != new.property_value(name)
            ]
            if in_place:
                raise ProviderError(
                    f"{', '.join(in_place)} cannot be changed: with AllowCopyInSameRegion no copy was made, and the "
                    f"source image {image_id} belongs to you, not to this stack"
                )
            return Seen("ready", physical_id=image_id, data=self._data(new, image_id))
        if not is_image_id(image_id):
            raise CopyFailed(
                f"this resource has no image to update (PhysicalResourceId {image_id!r}): its Create failed"
            )
        region = new.destination_region_id
        view = self._find(region, image_id, property_name="DestinationRegionId")
        if view is None:
            raise CopyFailed(f"the copy {image_id} no longer exists in {region}, so it cannot be updated")
        actions = self._apply(old, new, view)
        logger.info("copy updated", extra={"image_id": image_id, "actions": actions})
        return Seen("ready", physical_id=image_id, data=self._data(new, image_id))

    def _apply(self, old: CopyImageProperties, new: CopyImageProperties, view: ImageView) -> list[str]:
        """The ECS calls that make the copy match the new properties; returns their names."""
        region, image_id = view.region, view.image_id
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

    def delete(self, request: DeleteRequest, wait: Wait) -> Seen:
        """One pass of an exact, patient delete; ``pending`` until every step is done.

        The copy named by the physical id and any other copy tagged with this stack and logical id (a Create
        that failed or timed out left it) are removed: cancelled while in progress, else deleted and watched
        until ECS no longer lists them; then their snapshots, when DeleteSnapshots asks for it. An image that
        does not carry this resource's tags, or that RetainOnDelete kept, is never touched. A copy is deleted
        no sooner than SETTLE_SECONDS after it was answered, so that no late replay of its Create can
        mistake its absence for a failure.
        """
        why = self.nothing_to_delete(request)
        if why is not None:
            logger.info("nothing to delete", extra={"reason": why})
            return Seen("ready", physical_id=request.answer_id)
        options = parse_delete_options(request.properties, request.region_id)
        try:
            return self._delete_pass(request, options, dict(wait.state))
        except EcsError as error:
            if error.code == "ConnectionError" and self._region_unknown(options.destination_region_id):
                logger.info(
                    "nothing to delete: ECS serves no such region", extra={"region": options.destination_region_id}
                )
                return Seen("ready", physical_id=request.answer_id)
            if request.failed_create and not error.transient:
                # Nothing was ever created: the sweep for what the failed Create could not remove is a courtesy,
                # and ROS must be able to let the resource go. What stays keeps this resource's tags.
                logger.warning("leftovers of the failed Create not removed", extra={"error": str(error)})
                return Seen("ready", physical_id=request.answer_id)
            raise

    def nothing_to_delete(self, request: DeleteRequest) -> str | None:
        """Why a Delete has nothing to remove, without asking ECS, or None. Properties that never validated (of any
        shape) were refused by the Create before any ECS call; AllowCopyInSameRegion in one region made no copy."""
        if request.properties_problem:
            return f"{request.properties_problem}: no Create could have used them"
        try:
            options = parse_delete_options(request.properties, request.region_id)
            if not is_image_id(request.physical_resource_id):
                parse_properties(request.properties, request.region_id)
        except ProviderError as error:
            return f"the properties never validated: {error}"
        if not options.copies:
            return "AllowCopyInSameRegion in one region made no copy; the source image stays"
        return None

    def _delete_pass(self, request: DeleteRequest, options: DeleteOptions, state: dict[str, Any]) -> Seen:
        region = options.destination_region_id
        # One look finds all this resource may touch: images carrying its stack's and logical id's tags. The physical
        # id is among them unless it is not ours (it is then left alone).
        ours = {view.image_id: view for view in self._images.find_tagged(region, self.owner_tags)}
        if options.retain_on_delete:
            kept = ours.get(str(request.physical_resource_id))
            if kept is not None:
                self._images.tag(region, kept.image_id, {WAITER_TAG: RETAINED + str(int(self._now()))})
            logger.info("copy retained (RetainOnDelete)", extra={"image_id": request.physical_resource_id})
            return Seen("ready", physical_id=request.answer_id)
        targets = {i: view for i, view in ours.items() if not str(view.tags.get(WAITER_TAG, "")).startswith(RETAINED)}
        waits: list[float] = []
        passes = int(state.get("passes") or 0)
        backoff = min(MAX_PASS_SECONDS, GONE_LOOK_SECONDS * 2**passes)
        first_seen: dict[str, float] = dict(state.get("first_seen") or {})
        deleted: list[str] = list(state.get("deleted") or [])
        snapshots: list[str] = list(state.get("snapshots") or [])
        read_since: dict[str, float] = dict(state.get("read_since") or {})
        for view in targets.values():
            if view.in_progress:
                self._cancel(view)
                waits.append(LOOK_SOON)
                continue
            settled_at = self._settled_at(view, first_seen)
            if settled_at > self._now():
                waits.append(settled_at - self._now())
                continue
            if view.image_id in deleted:
                waits.append(backoff)  # deleted, but ECS still lists it
                continue
            if self._still_read(request, view, read_since) or not self._delete_image(view, options.force_delete):
                waits.append(min(backoff, READ_LOOK_SECONDS))  # a relay copy reads from it: not yet
                continue
            deleted.append(view.image_id)
            if options.delete_snapshots:
                snapshots.extend(s for s in view.snapshot_ids if s not in snapshots)
            waits.append(GONE_LOOK_SECONDS)
        state = {"first_seen": first_seen, "deleted": deleted, "snapshots": snapshots, "passes": passes + 1}
        state["read_since"] = read_since
        if waits:
            return Seen("pending", after=min(waits), state=state, detail=f"removing {', '.join(sorted(targets))}")
        busy = self._delete_snapshots(region, snapshots, options.force_delete)
        if busy:
            state["snapshots"] = busy
            return Seen("pending", after=backoff, state=state, detail=f"deleting the snapshots {', '.join(busy)}")
        logger.info("delete done", extra={"removed": deleted, "snapshots_deleted": snapshots})
        return Seen("ready", physical_id=request.answer_id)

    def _settled_at(self, view: ImageView, first_seen: dict[str, float]) -> float:
        """When a usable copy may go: SETTLE_SECONDS after it was answered (or first seen here, unmarked)."""
        if not view.usable:
            return 0.0  # a failed copy was never answered SUCCESS
        mark = str(view.tags.get(WAITER_TAG, ""))
        if mark.startswith(RELEASING):
            return 0.0  # settled before its Delete marked it
        if mark.startswith(ANSWERED):
            try:
                return float(mark[len(ANSWERED) :]) + SETTLE_SECONDS
            except ValueError:
                pass
        seen_at = first_seen.setdefault(view.image_id, self._now())
        return seen_at + SETTLE_SECONDS

    def _cancel(self, view: ImageView) -> bool:
        """CancelCopyImage; False when the copy finished meanwhile (it then has to be deleted instead)."""
        try:
            self._images.cancel_copy(view.region, view.image_id)
            logger.info("copy cancelled", extra={"image_id": view.image_id})
        except EcsError as error:
            if error.code == "IncorrectImageStatus":
                return False
            if not error.not_found:  # gone meanwhile: what we wanted
                raise
        return True

    def _still_read(self, request: DeleteRequest, view: ImageView, read_since: dict[str, float]) -> bool:
        """Whether relay copies still read from this copy, so that it must not go yet (what ECS does to them if it
        did is not documented). They are waited for, and cancelled after READ_PATIENCE_SECONDS: in a stack's
        Delete each is cancelled by its own resource's Delete long before."""
        source, region = view.tags.get(SOURCE_IMAGE_TAG), view.tags.get(SOURCE_REGION_TAG)
        if not (view.usable and source and region):
            return False  # no lineage: made before relays, or never Available, so never read from
        regions = self._images.regions(self._request.region_id or view.region)
        reading = readers(lineage(self._images, regions, lineage_tags(request.stack_id, source, region)), view)
        if not reading:
            read_since.pop(view.image_id, None)
            return False
        since = read_since.setdefault(view.image_id, self._now())
        if not str(view.tags.get(WAITER_TAG, "")).startswith(RELEASING):
            # No new reader picks it, and a reader cancelled below (or failed) knows to copy again.
            self._images.tag(view.region, view.image_id, {WAITER_TAG: RELEASING + str(int(self._now()))})
        logger.info("a relay copy reads from this copy", extra={"image_id": view.image_id, "readers": len(reading)})
        if self._now() - since >= READ_PATIENCE_SECONDS:
            for reader in reading:
                self._cancel(reader)
        return True

    def _delete_image(self, view: ImageView, force: bool) -> bool:
        """DeleteImage; False when ECS refused because the image is being copied from (a relay): try later."""
        try:
            self._images.delete(view.region, view.image_id, force)
            logger.info("image deleted", extra={"image_id": view.image_id})
        except EcsError as error:
            if error.not_found:
                return True
            if error.code in STILL_COPYING:
                if view.usable:
                    return False  # a copy reads from it
                self._cancel(view)
                return True
            raise
        return True

    def _delete_snapshots(self, region: str, snapshot_ids: list[str], force: bool) -> list[str]:
        """Delete them; returns those still linked to an image being deleted. Other refusals fail the Delete."""
        busy: list[str] = []
        for snapshot_id in snapshot_ids:
            try:
                self._images.delete_snapshot(region, snapshot_id, force)
            except EcsError as error:
                if error.not_found:
                    continue
                if error.code in SNAPSHOT_BUSY or error.transient:
                    busy.append(snapshot_id)
                    continue
                raise CopyFailed(
                    f"the copy was deleted, but not its snapshot {snapshot_id} ({error.code}); delete it in the ECS "
                    "console. Retrying the delete succeeds."
                ) from None
        return busy

    # -- regions ------------------------------------------------------------------------------------------

    def _find(self, region: str, image_id: str, property_name: str) -> ImageView | None:
        try:
            return self._images.find(region, image_id)
        except EcsError as error:
            if error.code == "ConnectionError" and self._region_unknown(region):
                raise InvalidProperty(
                    property_name, f"{region!r} is not a region ECS serves for this account"
                ) from None
            raise

    def _region_unknown(self, region: str) -> bool:
        """Whether ECS does not serve ``region`` (its endpoint cannot be reached for that reason)."""
        try:
            return region not in self._images.regions(self._request.region_id or region)
        except EcsError:
            return False


def _copy_refused(error: EcsError, props: CopyImageProperties) -> ProviderError:
    """What a refused CopyImage fails the Create with: a full image quota says what to do; a destination ECS does
    not know names the property (when DescribeRegions could not be read, CopyImage judges the regions)."""
    if error.code in DESTINATION_UNKNOWN:
        return InvalidProperty(
            "DestinationRegionId", f"{props.destination_region_id!r} is not a region ECS serves ({error})"
        )
    if error.code.startswith("QuotaExceed.Image"):
        return CopyFailed(
            f"{error}. The account's custom image quota in {props.destination_region_id} is used up: "
            "delete images you no longer need, or ask for a higher quota, then retry"
        )
    return error


def _attempt_id(request: CreateRequest, wait: Wait) -> str:
    """What a start's idempotency token is made from: the request, and the attempt after a restart (waiting.py)."""
    return request.request_id if wait.attempt == 0 else f"{request.request_id}\nattempt {wait.attempt}"


def _relay_of(view: ImageView, props: CopyImageProperties) -> dict[str, str]:
    """``{"relay": <origin>}`` when the copy reads from a relay rather than the source, else nothing."""
    copied_from = str(view.tags.get(COPIED_FROM_TAG, ""))
    source = origin_of(props.image_id, props.source_region_id)
    return {"relay": copied_from} if copied_from and copied_from != source else {}


def _chain_mark(mark: str | None) -> bool:
    """A mark written by a waiting chain (not an answered or retained one)."""
    return bool(mark) and not str(mark).startswith((ANSWERED, RETAINED))
