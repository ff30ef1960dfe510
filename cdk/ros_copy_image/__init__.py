"""``CopyImage``: the ``Custom::CopyImage`` provider as a ROS CDK construct, a drop-in for ``ros_cdk_ecs.CopyImage``.

Switching from the native resource is a change of import::

    from ros_cdk_ecs import CopyImage, CopyImageProps        # ALIYUN::ECS::CopyImage
    from ros_copy_image import CopyImage, CopyImageProps     # Custom::CopyImage, served by the ros-copy-image function

The props are the native construct's (the same names, types and required ones), plus the provider's own
(``retain_on_delete``, ``force_delete``, ``delete_snapshots``, ``allow_relay``), where ROS finds the function
(``service_token``, or ``function_name`` in the stack's region and account) and how long ROS waits (``timeout``).
The attributes have the native names (``attr_image_id``, ``attr_destination_region_id``,
``attr_source_region_id``), plus ``attr_outputs``.

It emits the same resource as the repository's ``template.yml``: ``Type: Custom::CopyImage`` with ``ServiceToken``,
``Timeout`` and the properties under ``Parameters``. Needs ``ros-cdk-core`` (a jsii package: Node.js at run time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import ros_cdk_core as core

__all__ = ["DEFAULT_FUNCTION_NAME", "DEFAULT_TIMEOUT", "RESOURCE_TYPE", "CopyImage", "CopyImageProps"]

RESOURCE_TYPE = "Custom::CopyImage"
DEFAULT_FUNCTION_NAME = "ros-copy-image"  # s.yaml's default FUNCTION_NAME
DEFAULT_TIMEOUT = 43200  # seconds ROS waits for the resource, its maximum: cross-region copies can take hours

# Python name -> the provider's property name (the native resource's, plus the provider's own four).
PROPERTY_NAMES = {
    "image_id": "ImageId",
    "destination_region_id": "DestinationRegionId",
    "source_region_id": "SourceRegionId",
    "destination_image_name": "DestinationImageName",
    "destination_description": "DestinationDescription",
    "encrypted": "Encrypted",
    "kms_key_id": "KMSKeyId",
    "resource_group_id": "ResourceGroupId",
    "tag": "Tag",
    "allow_copy_in_same_region": "AllowCopyInSameRegion",
    "retain_on_delete": "RetainOnDelete",
    "force_delete": "ForceDelete",
    "delete_snapshots": "DeleteSnapshots",
    "allow_relay": "AllowRelay",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CopyImageProps:
    """``ros_cdk_ecs.CopyImageProps``'s fields, and the provider's. Every value may also be a token (a parameter's
    ``value_as_string``, ``Fn.ref(...)``, another resource's attribute)."""

    image_id: Any
    destination_region_id: Any
    source_region_id: Any = None
    destination_image_name: Any = None
    destination_description: Any = None
    encrypted: Any = None
    kms_key_id: Any = None
    resource_group_id: Any = None
    tag: Any = None  # [ros_cdk_core.RosTag(key=..., value=...)], {"key": ..., "value": ...} or "key=value" items
    allow_copy_in_same_region: Any = None
    # The provider's own properties (README, "Properties and outputs").
    retain_on_delete: Any = None
    force_delete: Any = None
    delete_snapshots: Any = None
    allow_relay: Any = None  # default true: copy from a finished copy by the stack when the source is busy
    # Where ROS finds the provider, and how long it waits for it.
    service_token: Any = None  # e.g. acs:fc:<region>:<account-id>:functions/<name>; else built from function_name
    function_name: Any = None  # the function in the stack's region and account (default ros-copy-image)
    timeout: Any = None  # seconds, 1..43200 (default 43200)


class CopyImage(core.Resource):
    """``Custom::CopyImage`` with ``ros_cdk_ecs.CopyImage``'s signature: ``CopyImage(scope, id, props)``.

    ``props`` is a :class:`CopyImageProps` or a mapping of its field names. The logical ID in the template is ``id``,
    as with the native construct. ``enable_resource_property_constraint`` is accepted for the same signature and
    changes nothing: the provider checks every property itself before any ECS call.
    """

    def __init__(
        self,
        scope: core.Construct,
        id: str,
        props: CopyImageProps | Mapping[str, Any],
        enable_resource_property_constraint: bool | None = None,
    ) -> None:
        super().__init__(scope, id)
        if isinstance(props, Mapping):
            props = CopyImageProps(**props)
        self.props = props
        parameters = {
            PROPERTY_NAMES[name]: _tags(value) if name == "tag" else value
            for name, value in ((name, getattr(props, name)) for name in PROPERTY_NAMES)
            if value is not None
        }
        self.resource = core.RosResource(
            self,
            id,
            type=RESOURCE_TYPE,
            properties={
                "ServiceToken": props.service_token or service_token(props.function_name or DEFAULT_FUNCTION_NAME),
                "Timeout": DEFAULT_TIMEOUT if props.timeout is None else props.timeout,
                "Parameters": parameters,
            },
        )
        self.attr_image_id = self.resource.get_att("ImageId")
        self.attr_destination_region_id = self.resource.get_att("DestinationRegionId")
        self.attr_source_region_id = self.resource.get_att("SourceRegionId")
        self.attr_outputs = self.resource.get_att("Outputs")


def service_token(function_name: Any) -> str:
    """The ServiceToken of an FC 3.0 function in the stack's own region and account."""
    return f"acs:fc:{core.RosPseudo.region}:{core.RosPseudo.account_id}:functions/{function_name}"


def _tags(tags: Any) -> Any:
    """``RosTag`` structs (or ``{"key", "value"}`` mappings) as the ``{"Key", "Value"}`` items ROS passes on; tokens
    and ``"key=value"`` strings (which the provider accepts too) as they are."""
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        return tags
    items = []
    for tag in tags:
        if isinstance(tag, Mapping):
            key, value = tag.get("key", tag.get("Key")), tag.get("value", tag.get("Value"))
        elif hasattr(tag, "key") and not isinstance(tag, str):
            key, value = tag.key, getattr(tag, "value", None)
        else:
            items.append(tag)
            continue
        items.append({"Key": key} if value is None else {"Key": key, "Value": value})
    return items
