"""ECS's documented format rules for names, descriptions, tags and resource groups (CopyImage, ModifyImageAttribute,
TagResources and JoinResourceGroup API references). Written out here rather than imported from the function, so
that the stand-in checks the function independently."""

from __future__ import annotations

import re
from collections.abc import Sequence

from emulator.ecs.errors import (
    DescriptionMalformed,
    ImageNameMalformed,
    ResourceGroupMalformed,
    ResourceTypeNotFound,
    TagCountExceeded,
    TagKeyMalformed,
    TagValueMalformed,
)
from emulator.ecs.models import MAX_TAGS

_CJK = "\u4e00-\u9fff"
_NAME_RE = re.compile(rf"[A-Za-z{_CJK}][A-Za-z0-9{_CJK}.:_\-]{{1,127}}")
_RESOURCE_GROUP_RE = re.compile(r"rg-[A-Za-z0-9]{1,64}")

Tags = Sequence[tuple[str, "str | None"]]


def check_image_name(name: str) -> None:
    lowered = name.lower()
    if lowered.startswith(("http://", "https://", "acs:", "aliyun")) or not _NAME_RE.fullmatch(name):
        raise ImageNameMalformed()


def check_description(description: str) -> None:
    if not 2 <= len(description) <= 256 or description.lower().startswith(("http://", "https://")):
        raise DescriptionMalformed()


def check_tags(tags: Tags) -> None:
    if len(tags) > MAX_TAGS:
        raise TagCountExceeded(f"At most {MAX_TAGS} tags are allowed.")
    for key, value in tags:
        lowered = key.lower()
        if (
            not 1 <= len(key) <= 128
            or lowered.startswith(("aliyun", "acs:"))
            or "http://" in lowered
            or "https://" in lowered
        ):
            raise TagKeyMalformed(f"The tag key {key!r} is not valid.")
        if value is not None and (len(value) > 128 or value.lower().startswith("acs:")):
            raise TagValueMalformed(f"The tag value {value!r} is not valid.")


def check_resource_group(resource_group_id: str) -> None:
    if not _RESOURCE_GROUP_RE.fullmatch(resource_group_id):
        raise ResourceGroupMalformed(resource_group_id)


def check_resource_type(resource_type: str) -> None:
    if resource_type != "image":
        raise ResourceTypeNotFound(resource_type)
