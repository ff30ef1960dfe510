"""ECS image operations the provider needs, over the real ``alibabacloud-ecs20140526`` client.

Each method is one ECS action with bounded retries on throttling and transient errors; anything else
becomes an EcsError carrying ECS's code and message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

from copyimage.config import Settings
from copyimage.credentials import Credentials
from copyimage.errors import EcsError, sdk_message
from copyimage.logs import logger
from copyimage.properties import CopyImageProperties
from copyimage.retry import with_retries

# DescribeImages lists only Available images unless asked; these are every status its reference documents.
ALL_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
IN_PROGRESS = frozenset({"Creating", "Waiting"})
FAILED = frozenset({"CreateFailed", "UnAvailable"})
USABLE = frozenset({"Available", "Deprecated"})


def origin_of(image_id: str, region: str) -> str:
    """An image as a ``copyimage:copied-from`` tag names it: ``<image id>@<region>``."""
    return f"{image_id}@{region}"


@dataclass(frozen=True)
class ImageView:
    """What the provider reads of an image."""

    image_id: str
    region: str
    status: str
    progress: int | None  # percent, when ECS reports it
    tags: Mapping[str, str]
    snapshot_ids: tuple[str, ...]
    name: str | None
    description: str | None
    resource_group_id: str | None
    encrypted: bool = False  # any of its snapshots (DescribeImages: DiskDeviceMapping.Encrypted)

    @property
    def origin(self) -> str:
        """How a copy made from this image names it in its ``copyimage:copied-from`` tag."""
        return origin_of(self.image_id, self.region)

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    @classmethod
    def from_api(cls, region: str, item: Mapping[str, Any]) -> ImageView:
        tags = {t.get("TagKey", ""): t.get("TagValue", "") for t in (item.get("Tags") or {}).get("Tag") or []}
        mappings = (item.get("DiskDeviceMappings") or {}).get("DiskDeviceMapping") or []
        return cls(
            image_id=item["ImageId"],
            region=region,
            status=item.get("Status", ""),
            progress=_percent(item.get("Progress")),
            tags=tags,
            snapshot_ids=tuple(m["SnapshotId"] for m in mappings if m.get("SnapshotId")),
            name=item.get("ImageName") or None,
            description=item.get("Description") or None,
            resource_group_id=item.get("ResourceGroupId") or None,
            encrypted=any(str(m.get("Encrypted")).lower() == "true" for m in mappings),
        )


def _percent(value: object) -> int | None:
    try:
        return max(0, min(100, int(str(value).strip().rstrip("%"))))
    except (TypeError, ValueError):
        return None


class EcsImages:
    def __init__(self, settings: Settings, credentials: Credentials) -> None:
        self._settings = settings
        self._credentials = credentials
        self._clients: dict[str, Client] = {}
        timeout_ms = int(settings.http_timeout_seconds * 1000)
        self._runtime = RuntimeOptions(autoretry=False, connect_timeout=timeout_ms, read_timeout=timeout_ms)

    # -- reading ------------------------------------------------------------------------------------------

    def regions(self, region: str) -> frozenset[str]:
        """Every region ECS serves this account, from DescribeRegions asked in ``region``: always current, so a
        region added later is known at once."""
        request = ecs.DescribeRegionsRequest(accept_language="en-US")
        body = self._call("DescribeRegions", region, lambda c: c.describe_regions_with_options(request, self._runtime))
        listed = (body.get("Regions") or {}).get("Region") or []
        return frozenset(str(item["RegionId"]) for item in listed if item.get("RegionId"))

    def find(self, region: str, image_id: str) -> ImageView | None:
        """The image in any status, or None when it does not exist."""
        request = ecs.DescribeImagesRequest(region_id=region, image_id=image_id, status=ALL_STATUSES, page_size=10)
        body = self._describe(region, request)
        images = [ImageView.from_api(region, item) for item in _images_of(body)]
        return next((image for image in images if image.image_id == image_id), None)

    def find_tagged(self, region: str, tags: Mapping[str, str]) -> list[ImageView]:
        """Every image of this account in ``region`` carrying all ``tags``, in any status."""
        found: list[ImageView] = []
        page = 1
        while True:
            request = ecs.DescribeImagesRequest(
                region_id=region,
                status=ALL_STATUSES,
                image_owner_alias="self",
                tag=[ecs.DescribeImagesRequestTag(key=k, value=v) for k, v in tags.items()],
                page_size=100,
                page_number=page,
            )
            body = self._describe(region, request)
            batch = [ImageView.from_api(region, item) for item in _images_of(body)]
            found.extend(image for image in batch if all(image.tags.get(k) == v for k, v in tags.items()))
            if len(batch) < 100 or page * 100 >= int(body.get("TotalCount") or 0):
                return found
            page += 1

    def _describe(self, region: str, request: ecs.DescribeImagesRequest) -> dict[str, Any]:
        try:
            return self._call(
                "DescribeImages", region, lambda c: c.describe_images_with_options(request, self._runtime)
            )
        except EcsError as error:
            if error.code.startswith("InvalidRegionId"):
                return {}  # a region ECS does not know holds no image: nothing to find
            raise

    # -- changing -----------------------------------------------------------------------------------------

    def copy(
        self,
        props: CopyImageProperties,
        client_token: str,
        tags: Mapping[str, str],
        source: tuple[str, str] | None = None,
    ) -> str:
        """Start the copy; returns the new image's id. The token makes a repeated call start nothing new.

        ``source`` is ``(region, image id)`` of a relay (a finished copy of the same source) to copy from instead
        of the properties' ImageId."""
        region, image_id = source or (props.source_region_id, props.image_id)
        request = ecs.CopyImageRequest(
            region_id=region,
            image_id=image_id,
            destination_region_id=props.destination_region_id,
            destination_image_name=props.destination_image_name,
            destination_description=props.destination_description,
            encrypted=props.encrypted,  # always sent: without it, ECS leaves encryption to its backend
            kmskey_id=props.kms_key_id,
            resource_group_id=props.resource_group_id,
            tag=[ecs.CopyImageRequestTag(key=k, value=v) for k, v in tags.items()] or None,
            client_token=client_token,
        )
        body = self._call("CopyImage", region, lambda c: c.copy_image_with_options(request, self._runtime))
        return str(body["ImageId"])

    def cancel_copy(self, region: str, image_id: str) -> None:
        request = ecs.CancelCopyImageRequest(region_id=region, image_id=image_id)
        self._call("CancelCopyImage", region, lambda c: c.cancel_copy_image_with_options(request, self._runtime))

    def delete(self, region: str, image_id: str, force: bool) -> None:
        request = ecs.DeleteImageRequest(region_id=region, image_id=image_id, force=force)
        self._call("DeleteImage", region, lambda c: c.delete_image_with_options(request, self._runtime))

    def delete_snapshot(self, region: str, snapshot_id: str, force: bool) -> None:
        """DeleteSnapshot takes no RegionId: the region's endpoint selects it."""
        request = ecs.DeleteSnapshotRequest(snapshot_id=snapshot_id, force=force)
        self._call("DeleteSnapshot", region, lambda c: c.delete_snapshot_with_options(request, self._runtime))

    def modify(self, region: str, image_id: str, name: str | None, description: str | None) -> None:
        request = ecs.ModifyImageAttributeRequest(
            region_id=region, image_id=image_id, image_name=name, description=description
        )
        self._call(
            "ModifyImageAttribute", region, lambda c: c.modify_image_attribute_with_options(request, self._runtime)
        )

    def tag(self, region: str, image_id: str, tags: Mapping[str, str]) -> None:
        request = ecs.TagResourcesRequest(
            region_id=region,
            resource_type="image",
            resource_id=[image_id],
            tag=[ecs.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()],
        )
        self._call("TagResources", region, lambda c: c.tag_resources_with_options(request, self._runtime))

    def untag(self, region: str, image_id: str, keys: list[str]) -> None:
        request = ecs.UntagResourcesRequest(
            region_id=region, resource_type="image", resource_id=[image_id], tag_key=keys
        )
        self._call("UntagResources", region, lambda c: c.untag_resources_with_options(request, self._runtime))

    def join_resource_group(self, region: str, image_id: str, resource_group_id: str) -> None:
        request = ecs.JoinResourceGroupRequest(
            region_id=region, resource_id=image_id, resource_type="image", resource_group_id=resource_group_id
        )
        self._call("JoinResourceGroup", region, lambda c: c.join_resource_group_with_options(request, self._runtime))

    # -- plumbing -----------------------------------------------------------------------------------------

    def _client(self, region: str) -> Client:
        if region not in self._clients:
            config = Config(
                access_key_id=self._credentials.access_key_id,
                access_key_secret=self._credentials.access_key_secret,
                security_token=self._credentials.security_token,
                region_id=region,
            )
            if self._settings.ecs_endpoint:
                parts = urlsplit(self._settings.ecs_endpoint)
                config.endpoint = parts.netloc or parts.path
                config.protocol = parts.scheme or "https"
            self._clients[region] = Client(config)
        return self._clients[region]

    def _call(self, action: str, region: str, send: Callable[[Client], Any]) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            try:
                body: dict[str, Any] = send(self._client(region)).body.to_map()
                return body
            except AlibabaCloudException as error:
                raise EcsError(
                    action, str(error.code), sdk_message(error), getattr(error, "status_code", None)
                ) from None
            except EcsError:
                raise
            except Exception as error:  # no HTTP answer: connection refused, timeout, DNS
                raise EcsError(action, "ConnectionError", f"no answer from ECS ({type(error).__name__})") from None

        return with_retries(
            once,
            attempts=self._settings.ecs_attempts,
            is_transient=lambda error: isinstance(error, EcsError) and error.transient,
            on_retry=lambda attempt, error, pause: logger.warning(
                "ECS call failed, retrying",
                extra={"action": action, "error_code": getattr(error, "code", ""), "attempt": attempt},
            ),
        )


def _images_of(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return (body.get("Images") or {}).get("Image") or []
