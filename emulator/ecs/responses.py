"""The ECS stand-in's responses: one short handler per action (parse the parameters, call the backend, shape the
reply), over the shared RPC envelope of :mod:`emulator.rpc`.

The Python SDK sends every parameter in the query string (``Tag.1.Key=…``, ``ResourceId.1=…``); a form-encoded
body is read too. Replies have ECS's wire shape (``{"Images": {"Image": [...]}}``, ``{"Tags": {"Tag": [...]}}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from emulator.ecs import errors
from emulator.ecs.backend import EcsBackend
from emulator.ecs.models import CopyRequest, Image
from emulator.ecs.rules import check_resource_type
from emulator.errors import ApiError
from emulator.rpc import Params

Reply = dict[str, object]


class EcsParams(Params):
    """ECS's wording of parameter errors, and its ``Tag.N.Key``/``Tag.N.Value`` lists."""

    def missing(self, name: str) -> ApiError:
        return errors.MissingParameter(name)

    def bad_boolean(self, name: str, value: str) -> ApiError:
        return errors.InvalidParameter(f'The specified parameter "{name}" must be true or false.')

    def bad_integer(self, name: str, value: str, low: int, high: int | None) -> ApiError:
        bounds = f"{low}..{high}" if high is not None else f"at least {low}"
        return errors.InvalidParameter(f'The specified parameter "{name}" must be an integer {bounds}.')

    def region_id(self) -> str:
        return self.required("RegionId")  # a region not served never gets here (see the envelope)

    def tags(self) -> list[tuple[str, str | None]]:
        """``Tag.N.Key``/``Tag.N.Value`` pairs in index order; the value is None when not sent."""
        pairs = []
        for index, entry in sorted(self.indexed("Tag", ("Key", "Value")).items()):
            if not entry.get("Key"):
                raise errors.TagKeyMalformed(f"Tag.{index}.Key is missing or empty.")
            pairs.append((entry["Key"], entry.get("Value")))
        return pairs

    def resource_ids(self) -> list[str]:
        check_resource_type(self.required("ResourceType"))
        ids = self.listed("ResourceId")
        if not ids:
            raise self.missing("ResourceId.1")
        return ids


class EcsResponses:
    """The handlers, over one backend (the envelope holds the backend's lock while one runs)."""

    def __init__(self, backend: EcsBackend) -> None:
        self.backend = backend

    def actions(self) -> Mapping[str, Callable[[EcsParams], Reply]]:
        return {
            "CopyImage": self.copy_image,
            "DescribeImages": self.describe_images,
            "CancelCopyImage": self.cancel_copy_image,
            "DeleteImage": self.delete_image,
            "ModifyImageAttribute": self.modify_image_attribute,
            "TagResources": self.tag_resources,
            "UntagResources": self.untag_resources,
            "JoinResourceGroup": self.join_resource_group,
            "DeleteSnapshot": self.delete_snapshot,
            "DescribeRegions": self.describe_regions,
        }

    def copy_image(self, params: EcsParams) -> Reply:
        token = params.get("ClientToken")
        if token is not None and (first := self.backend.replayed_copy(token, _fingerprint(params))) is not None:
            return {"ImageId": first}
        region = params.region_id()
        request = CopyRequest(
            source_region=region,
            image_id=params.required("ImageId"),
            destination=params.get("DestinationRegionId") or region,  # its default is not documented
            name=params.get("DestinationImageName"),
            description=params.get("DestinationDescription"),
            tags=tuple(params.tags()),
            resource_group=params.get("ResourceGroupId"),
            encrypted=params.boolean("Encrypted"),
            kms_key_id=params.get("KMSKeyId"),
            dry_run=params.boolean("DryRun"),
            client_token=token,
            fingerprint=_fingerprint(params),
        )
        return {"ImageId": self.backend.copy_image(request)}

    def describe_images(self, params: EcsParams) -> Reply:
        region = params.region_id()
        page_size = params.integer("PageSize", 10, 1, 100)
        page_number = params.integer("PageNumber", 1, 1, None)
        found = self.backend.describe_images(region, _image_filter(params))
        page = found[(page_number - 1) * page_size : page_number * page_size]
        return {
            "RegionId": region,
            "TotalCount": len(found),
            "PageNumber": page_number,
            "PageSize": page_size,
            "Images": {"Image": [self._image_view(image) for image in page]},
        }

    def cancel_copy_image(self, params: EcsParams) -> Reply:
        self.backend.cancel_copy_image(params.region_id(), params.required("ImageId"))
        return {}

    def delete_image(self, params: EcsParams) -> Reply:
        region, image_id = params.region_id(), params.required("ImageId")
        self.backend.delete_image(region, image_id, force=params.boolean("Force"))
        return {}

    def modify_image_attribute(self, params: EcsParams) -> Reply:
        region, image_id = params.region_id(), params.required("ImageId")
        name, description, status = params.get("ImageName"), params.get("Description"), params.get("Status")
        self.backend.modify_image_attribute(region, image_id, name, description, status)
        return {}

    def tag_resources(self, params: EcsParams) -> Reply:
        region, ids = params.region_id(), params.resource_ids()
        tags = params.tags()
        if not tags:
            raise params.missing("Tag.1.Key")
        self.backend.tag_resources(region, ids, tags)
        return {}

    def untag_resources(self, params: EcsParams) -> Reply:
        region, ids = params.region_id(), params.resource_ids()
        self.backend.untag_resources(region, ids, params.listed("TagKey"), params.boolean("All"))
        return {}

    def join_resource_group(self, params: EcsParams) -> Reply:
        region = params.region_id()
        resource_id = params.required("ResourceId")
        resource_type = params.required("ResourceType")
        resource_group = params.required("ResourceGroupId")
        check_resource_type(resource_type)
        self.backend.join_resource_group(region, resource_id, resource_group)
        return {}

    def delete_snapshot(self, params: EcsParams) -> Reply:
        snapshot_id = params.required("SnapshotId")
        params.region = self.backend.snapshot_region(snapshot_id)  # recorded with the call
        self.backend.delete_snapshot(params.region, snapshot_id)
        return {}

    def describe_regions(self, params: EcsParams) -> Reply:
        listed = [
            {
                "RegionId": region,
                "RegionEndpoint": f"ecs.{region}.aliyuncs.com",
                "LocalName": region,
                "Status": "available",
            }
            for region in self.backend.regions
        ]
        return {"Regions": {"Region": listed}}

    def _image_view(self, image: Image) -> Reply:
        """One image as DescribeImages shows it."""
        mappings = [
            {
                "SnapshotId": snapshot_id if self.backend.snapshot_exists(image.region, snapshot_id) else "",
                "Size": str(image.size),
                "Device": f"/dev/xvd{chr(ord('a') + index)}",
                "Type": "system" if index == 0 else "data",
                "Encrypted": image.encrypted,
            }
            for index, snapshot_id in enumerate(image.snapshot_ids)
        ]
        return {
            "ImageId": image.image_id,
            "ImageName": image.name,
            "Description": image.description,
            "Status": image.status,
            "Progress": image.progress,
            "IsCopied": image.is_copied,
            "ImageOwnerAlias": image.owner_alias,
            "CreationTime": _iso8601(image.created_at),
            "ResourceGroupId": image.resource_group_id,
            "Size": image.size,
            "OSType": "linux",
            "Architecture": "x86_64",
            "Usage": "instance" if image.in_use else "none",
            "Tags": {"Tag": [{"TagKey": k, "TagValue": v} for k, v in image.tags.items()]},
            "DiskDeviceMappings": {"DiskDeviceMapping": mappings},
        }


def _fingerprint(params: EcsParams) -> tuple[tuple[str, str], ...]:
    """Every parameter but the ClientToken: what "the same parameters" means for idempotence."""
    return tuple(sorted((k, v) for k, v in params.values.items() if k != "ClientToken"))


def _image_filter(params: EcsParams) -> Callable[[Image], bool]:
    """DescribeImages's filters; ``Status`` defaults to ``Available`` (so Deprecated images are listed only when
    asked for); several ``Tag.N`` filters must all match."""
    statuses = {s.strip() for s in (params.get("Status") or "Available").split(",") if s.strip()}
    wanted_ids = {i.strip() for i in (params.get("ImageId") or "").split(",") if i.strip()}
    name = params.get("ImageName")
    owner = params.get("ImageOwnerAlias")
    resource_group = params.get("ResourceGroupId")
    snapshot_id = params.get("SnapshotId")
    tag_filters = params.tags()

    def matches(image: Image) -> bool:
        return (
            image.status in statuses
            and (not wanted_ids or image.image_id in wanted_ids)
            and (name is None or name in image.name)
            and (owner is None or image.owner_alias == owner)
            and (resource_group is None or image.resource_group_id == resource_group)
            and (snapshot_id is None or snapshot_id in image.snapshot_ids)
            and all(key in image.tags and (value is None or image.tags[key] == value) for key, value in tag_filters)
        )

    return matches


def _iso8601(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
