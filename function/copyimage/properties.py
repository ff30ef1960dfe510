"""The resource's properties: one typed model, and every rule checked before any ECS call.

The rules are those of ALIYUN::ECS::CopyImage and of the ECS API, so a template that the native
resource accepts is accepted here, and a mistake is named here instead of deep inside ECS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from copyimage.errors import InvalidProperty

ECS_TAG_LIMIT = 20
# Tags the provider puts on every copy, so a copy can be found again and its waiter identified.
STACK_TAG = "copyimage:stack-id"
LOGICAL_ID_TAG = "copyimage:logical-id"
WAITER_TAG = "copyimage:waiter"
# Lineage, on every copy: the original source image and region, and the image a relay copy was made from
# (``<image id>@<region>``), so that relays can be found with one tagged DescribeImages and no lineage is lost.
SOURCE_IMAGE_TAG = "copyimage:source-image-id"
SOURCE_REGION_TAG = "copyimage:source-region-id"
COPIED_FROM_TAG = "copyimage:copied-from"
RESERVED_TAG_PREFIX = "copyimage:"
RESERVED_TAG_COUNT = 6
USER_TAG_LIMIT = ECS_TAG_LIMIT - RESERVED_TAG_COUNT

# Changing any of these needs a new copy; the rest can be changed on the existing one.
REPLACEMENT_PROPERTIES = (
    "ImageId",
    "SourceRegionId",
    "DestinationRegionId",
    "Encrypted",
    "KMSKeyId",
    "AllowCopyInSameRegion",
)

_IMAGE_ID = re.compile(r"m-[0-9A-Za-z]{1,62}")
_REGION_ID = re.compile(r"[a-z]{2,}(-[a-z0-9]+){1,5}")
_RESOURCE_GROUP_ID = re.compile(r"rg-[0-9A-Za-z]{1,62}")
_CJK = "\u4e00-\u9fff"
_IMAGE_NAME = re.compile(rf"[A-Za-z{_CJK}][A-Za-z0-9{_CJK}.:_-]{{1,127}}")


@dataclass(frozen=True)
class Tag:
    key: str
    value: str = ""


@dataclass(frozen=True)
class CopyImageProperties:
    image_id: str
    destination_region_id: str
    source_region_id: str
    destination_image_name: str | None = None
    destination_description: str | None = None
    encrypted: bool = False
    kms_key_id: str | None = None
    resource_group_id: str | None = None
    tags: tuple[Tag, ...] = ()
    allow_copy_in_same_region: bool = False
    retain_on_delete: bool = False
    force_delete: bool = False
    delete_snapshots: bool = False
    allow_relay: bool = True

    @property
    def relays(self) -> bool:
        """Whether this copy may be made from a finished copy of the same source (AllowRelay, and no KMSKeyId:
        a copy encrypted with a key the template names is made from the source itself)."""
        return self.allow_relay and self.kms_key_id is None

    @property
    def copies(self) -> bool:
        """False when AllowCopyInSameRegion asks for the source image itself instead of a copy."""
        return not (self.allow_copy_in_same_region and self.source_region_id == self.destination_region_id)

    def property_value(self, name: str) -> object:
        """The value of a template property, by its template name."""
        return getattr(self, _ATTRIBUTE_OF[name])

    @property
    def tag_map(self) -> dict[str, str]:
        return {tag.key: tag.value for tag in self.tags}


_ATTRIBUTE_OF = {
    "ImageId": "image_id",
    "DestinationRegionId": "destination_region_id",
    "SourceRegionId": "source_region_id",
    "DestinationImageName": "destination_image_name",
    "DestinationDescription": "destination_description",
    "Encrypted": "encrypted",
    "KMSKeyId": "kms_key_id",
    "ResourceGroupId": "resource_group_id",
    "Tag": "tags",
    "AllowCopyInSameRegion": "allow_copy_in_same_region",
    "RetainOnDelete": "retain_on_delete",
    "ForceDelete": "force_delete",
    "DeleteSnapshots": "delete_snapshots",
    "AllowRelay": "allow_relay",
}
assert set(_ATTRIBUTE_OF.values()) == {f.name for f in fields(CopyImageProperties)}
KNOWN_PROPERTIES = tuple(_ATTRIBUTE_OF)
# ROS documents that ServiceToken stays out of ResourceProperties; CloudFormation puts it in. Accept both.
_IGNORED_PROPERTIES = frozenset({"ServiceToken"})


def is_image_id(value: object) -> bool:
    return isinstance(value, str) and _IMAGE_ID.fullmatch(value) is not None


def parse_properties(raw: Mapping[str, object], default_region: str) -> CopyImageProperties:
    """Validate ``ResourceProperties`` and return the model, or raise InvalidProperty naming the first fault.

    Every check is linear in the size of the input, so a huge list or string is refused at once.
    """
    unknown = [name for name in raw if name not in _ATTRIBUTE_OF and name not in _IGNORED_PROPERTIES]
    if unknown:
        raise InvalidProperty(
            min(unknown), f"is not a property of Custom::CopyImage (known: {', '.join(KNOWN_PROPERTIES)})"
        )

    encrypted = bool(_boolean(raw, "Encrypted"))
    kms_key_id = _text(raw, "KMSKeyId", 1, 128)
    if kms_key_id is not None and not encrypted:
        raise InvalidProperty("KMSKeyId", "takes effect only with Encrypted: true")
    return CopyImageProperties(
        image_id=_required(
            _matching(raw, "ImageId", _IMAGE_ID, "must be a custom image id, 'm-' followed by letters and digits"),
            "ImageId",
        ),
        destination_region_id=_destination_region(raw),
        source_region_id=_matching(raw, "SourceRegionId", _REGION_ID, "must be a region id such as cn-hangzhou")
        or _default_region(default_region),
        destination_image_name=_image_name(raw),
        destination_description=_description(raw),
        encrypted=encrypted,
        kms_key_id=kms_key_id,
        resource_group_id=_matching(
            raw,
            "ResourceGroupId",
            _RESOURCE_GROUP_ID,
            "must be a resource group id, 'rg-' followed by letters and digits",
        ),
        tags=_tags(raw.get("Tag")),
        allow_copy_in_same_region=bool(_boolean(raw, "AllowCopyInSameRegion")),
        retain_on_delete=bool(_boolean(raw, "RetainOnDelete")),
        force_delete=bool(_boolean(raw, "ForceDelete")),
        delete_snapshots=bool(_boolean(raw, "DeleteSnapshots")),
        allow_relay=_boolean(raw, "AllowRelay") is not False,
    )


@dataclass(frozen=True)
class DeleteOptions:
    """What a Delete needs from the properties."""

    destination_region_id: str
    copies: bool = True  # False: AllowCopyInSameRegion made no copy, and there is nothing of ours to remove
    retain_on_delete: bool = False
    force_delete: bool = False
    delete_snapshots: bool = False


def parse_delete_options(raw: Mapping[str, object], default_region: str) -> DeleteOptions:
    """Read only what a Delete needs, so that a property a failed Update broke cannot block the Delete.

    RetainOnDelete stays strict: reading a misspelt value as false would delete an image meant to be kept.
    """

    def lenient(read: Callable[[], object], default: object) -> object:
        try:
            return read()
        except InvalidProperty:
            return default

    region = _destination_region(raw)
    source = lenient(lambda: _matching(raw, "SourceRegionId", _REGION_ID, "") or default_region, default_region)
    same_region_allowed = bool(lenient(lambda: _boolean(raw, "AllowCopyInSameRegion"), False))
    return DeleteOptions(
        destination_region_id=region,
        copies=not (same_region_allowed and source == region),
        retain_on_delete=bool(_boolean(raw, "RetainOnDelete")),
        force_delete=bool(lenient(lambda: _boolean(raw, "ForceDelete"), False)),
        delete_snapshots=bool(lenient(lambda: _boolean(raw, "DeleteSnapshots"), False)),
    )


def replacement_changes(old: CopyImageProperties, new: CopyImageProperties) -> list[str]:
    """The template properties whose change an in-place update cannot honour."""
    return [name for name in REPLACEMENT_PROPERTIES if old.property_value(name) != new.property_value(name)]


def _default_region(region: str) -> str:
    if not _REGION_ID.fullmatch(region or ""):
        raise InvalidProperty("SourceRegionId", "is not set and the request's RegionId is not a region id")
    return region


def _text(raw: Mapping[str, object], name: str, low: int, high: int) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidProperty(name, f"must be a string, got {type(value).__name__}")
    if not low <= len(value) <= high:
        raise InvalidProperty(name, f"must be {low} to {high} characters long, got {len(value)}")
    return value


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise InvalidProperty(name, "is required")
    return value


def _destination_region(raw: Mapping[str, object]) -> str:
    rule = "must be a region id such as cn-shanghai"
    return _required(_matching(raw, "DestinationRegionId", _REGION_ID, rule), "DestinationRegionId")


def _matching(raw: Mapping[str, object], name: str, pattern: re.Pattern[str], rule: str) -> str | None:
    value = _text(raw, name, 1, 128)
    if value is None:
        return None
    if not pattern.fullmatch(value):
        raise InvalidProperty(name, f"{rule}, got {value[:128]!r}")
    return value


def _boolean(raw: Mapping[str, object], name: str) -> bool | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidProperty(name, f"must be true or false, got {str(value)[:40]!r}")


def _no_link(name: str, value: str) -> None:
    if value.lower().startswith(("http://", "https://")):
        raise InvalidProperty(name, "must not start with http:// or https://")


def _image_name(raw: Mapping[str, object]) -> str | None:
    name = _text(raw, "DestinationImageName", 2, 128)
    if name is None:
        return None
    _no_link("DestinationImageName", name)
    if name.lower().startswith(("acs:", "aliyun")):
        raise InvalidProperty("DestinationImageName", "must not start with acs: or aliyun")
    if not _IMAGE_NAME.fullmatch(name):
        raise InvalidProperty(
            "DestinationImageName",
            "must start with a letter or a Chinese character and contain only letters, Chinese characters, "
            "digits, '.', ':', '_' and '-'",
        )
    return name


def _description(raw: Mapping[str, object]) -> str | None:
    description = _text(raw, "DestinationDescription", 2, 256)
    if description is not None:
        _no_link("DestinationDescription", description)
    return description


def _tags(value: object) -> tuple[Tag, ...]:
    """Tags as a list of ``{Key, Value}`` objects, or of ``key=value`` strings (a CommaDelimitedList)."""
    if value is None or value == "":
        return ()
    if not isinstance(value, list):
        raise InvalidProperty("Tag", "must be a list of {Key, Value} objects")
    items = [item for item in value if not (isinstance(item, str) and not item.strip())]  # [""]: an empty list
    if len(items) > USER_TAG_LIMIT:
        raise InvalidProperty(
            "Tag",
            f"has {len(items)} tags; at most {USER_TAG_LIMIT} are allowed, because ECS allows {ECS_TAG_LIMIT} per "
            f"image and the provider keeps {RESERVED_TAG_COUNT} for itself",
        )
    tags: list[Tag] = []
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        where = f"Tag[{index}]"
        if isinstance(item, str):
            key, _, tag_value = item.partition("=")
            item = {"Key": key.strip(), "Value": tag_value.strip()}
        if not isinstance(item, Mapping):
            raise InvalidProperty(where, "must be an object with Key and Value, or a 'key=value' string")
        extra = sorted(set(item) - {"Key", "Value"})
        if extra:
            raise InvalidProperty(f"{where}.{extra[0]}", "is not a tag field (use Key and Value)")
        tag = _tag(where, item.get("Key"), item.get("Value"))
        if tag.key in seen:
            raise InvalidProperty("Tag", f"key {tag.key!r} appears more than once")
        seen.add(tag.key)
        tags.append(tag)
    return tuple(tags)


def _tag(where: str, key: object, value: object) -> Tag:
    """The native resource's rules: neither key nor value starts with aliyun or acs:, nor holds http(s)://."""
    if not isinstance(key, str) or not key:
        raise InvalidProperty(f"{where}.Key", "is required and must be a non-empty string")
    if len(key) > 128:
        raise InvalidProperty(f"{where}.Key", f"must be at most 128 characters, got {len(key)}")
    _tag_text(f"{where}.Key", key)
    if key.lower().startswith(RESERVED_TAG_PREFIX):
        raise InvalidProperty(f"{where}.Key", f"must not start with {RESERVED_TAG_PREFIX} (kept for the provider)")
    if value is None:
        value = ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidProperty(f"{where}.Value", "must be a string")
    if len(value) > 128:
        raise InvalidProperty(f"{where}.Value", f"must be at most 128 characters, got {len(value)}")
    _tag_text(f"{where}.Value", value)
    return Tag(key, value)


def _tag_text(where: str, text: str) -> None:
    lowered = text.lower()
    if lowered.startswith(("aliyun", "acs:")):
        raise InvalidProperty(where, "must not start with aliyun or acs:")
    if "http://" in lowered or "https://" in lowered:
        raise InvalidProperty(where, "must not contain http:// or https://")
