"""The ECS stand-in's errors: one class per error code, each with the HTTP status and the page that lists it.

"API reference" is the ECS 2014-05-26 API reference, ``.../api-ecs-2014-05-26-<action>`` (docs/conformance.md).
The SDK raises ``ClientException`` (4xx) or ``ServerException`` (5xx) carrying the code.
"""

from __future__ import annotations

from emulator.errors import ApiError


class EcsError(ApiError):
    """An ECS error: each subclass fixes ``STATUS`` and ``CODE``; the message is the occurrence's."""

    STATUS = 400
    CODE = "InvalidParameter"
    MESSAGE = ""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(self.STATUS, self.CODE, message if message is not None else self.MESSAGE)


# --------------------------------------------------------------------------- any action


class MissingParameter(EcsError):
    """Common error codes (any action)."""

    CODE = "MissingParameter"

    def __init__(self, name: str) -> None:
        super().__init__(f'The input parameter "{name}" that is mandatory for processing this request is not supplied.')


class InvalidParameter(EcsError):
    """Common error codes (a boolean or integer that does not parse; ModifyImageAttribute ``Status``)."""

    CODE = "InvalidParameter"


class Throttling(EcsError):
    """ "API throttling" (ECS developer reference). Injected as a fault."""

    CODE = "Throttling"
    MESSAGE = "Request was denied due to request throttling."


class Conflict(EcsError):
    """Every action's error table: "please try again later". Injected as a fault."""

    STATUS, CODE = 409, "InvalidOperation.Conflict"
    MESSAGE = "Request was denied due to conflict with a previous request, please try again later."


class OperationConflict(EcsError):
    """DeleteSnapshot API reference ("retry later"). Injected as a fault."""

    STATUS, CODE = 403, "Operation.Conflict"
    MESSAGE = "The operation may conflicts with others, please retry later."


class InternalError(EcsError):
    """ "How to ensure idempotence": retry on InternalError. Injected as a fault."""

    STATUS, CODE = 500, "InternalError"
    MESSAGE = "The request processing has failed due to some unknown error."


class ServiceUnavailable(EcsError):
    """ "How to ensure idempotence": retry on ServiceUnavailable. Injected as a fault."""

    STATUS, CODE = 503, "ServiceUnavailable"
    MESSAGE = "The request has failed due to a temporary failure of the server."


# --------------------------------------------------------------------------- images


class ImageNotFound(EcsError):
    """CopyImage, CancelCopyImage, DeleteImage, ModifyImageAttribute API references."""

    STATUS, CODE = 404, "InvalidImageId.NotFound"

    def __init__(self, image_id: str, region: str | None = None) -> None:
        if region is None:  # DeleteImage's wording
            super().__init__("The specified ImageId does not exist.")
        else:
            super().__init__(f"The specified image {image_id} does not exist in {region}.")


class IncorrectImageStatus(EcsError):
    """CopyImage (the source is not Available) and CancelCopyImage (the copy ended) API references."""

    CODE = "IncorrectImageStatus"


class ImageCopyConflict(EcsError):
    """CopyImage API reference: a copy of the same source image is in progress."""

    CODE = "OperationDenied.ImageCopyConflict"
    MESSAGE = (
        "The same image cannot be copied concurrently. Please wait until the last copy is completed before "
        "performing the next operation."
    )


class ImageNameMalformed(EcsError):
    """CopyImage and ModifyImageAttribute API references (``DestinationImageName``, ``ImageName``)."""

    CODE = "InvalidImageName.Malformed"
    MESSAGE = (
        "The image name must be 2 to 128 characters, start with a letter or a Chinese character, contain only "
        "letters, Chinese characters, digits, '.', ':', '_' and '-', and not start with http://, https://, "
        "acs: or aliyun."
    )


class ImageNameDuplicated(EcsError):
    """CopyImage and ModifyImageAttribute API references."""

    CODE = "InvalidImageName.Duplicated"

    def __init__(self, name: str, region: str) -> None:
        super().__init__(f"An image named {name!r} already exists in {region}.")


class DescriptionMalformed(EcsError):
    """CopyImage and ModifyImageAttribute API references."""

    CODE = "InvalidDescription.Malformed"
    MESSAGE = "The description must be 2 to 256 characters and not start with http:// or https://."


class ClientTokenMalformed(EcsError):
    """CopyImage API reference (``ClientToken``: ASCII, at most 64 characters)."""

    CODE = "InvalidClientToken.Malformed"
    MESSAGE = "The ClientToken must be ASCII, at most 64 characters."


class IdempotentParameterMismatch(EcsError):
    """ "How to ensure idempotence" (ECS developer reference)."""

    CODE = "IdempotentParameterMismatch"
    MESSAGE = "The ClientToken was used before with different parameters."


class DestinationRegionNotFound(EcsError):
    """CopyImage API reference."""

    CODE = "DestinationRegion.NotFound"

    def __init__(self, region: str) -> None:
        super().__init__(f"The destination region {region!r} is not found.")


class EncryptedIllegal(EcsError):
    """CopyImage API reference (``KMSKeyId`` without ``Encrypted``)."""

    CODE = "InvalidParameter.EncryptedIllegal"
    MESSAGE = "KMSKeyId is only valid with Encrypted=true."


class KmsKeyNotFound(EcsError):
    """CopyImage API reference."""

    STATUS, CODE = 404, "InvalidParameter.KMSKeyId.NotFound"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"The KMS key {key_id} does not exist.")


class ImageQuotaExceeded(EcsError):
    """CopyImage API reference."""

    STATUS, CODE = 403, "QuotaExceed.Image"
    MESSAGE = "The maximum number of custom images in the region has been reached."


class DryRunOperation(EcsError):
    """CopyImage API reference (``DryRun``)."""

    CODE = "DryRunOperation"
    MESSAGE = "Request validation has been passed with DryRun flag set."


class ImageCreatedNotFromCopy(EcsError):
    """CancelCopyImage API reference."""

    CODE = "ImageCreatedNotFromCopy"
    MESSAGE = "The specified image is not the target image of a copy action."


class NotCustomImage(EcsError):
    """DeleteImage and ModifyImageAttribute API references (a public or shared image)."""

    STATUS, CODE = 403, "OperationDenied"

    def __init__(self, image_id: str) -> None:
        super().__init__(f"The image {image_id} is not a custom image.")


class ImageCopying(EcsError):
    """DeleteImage API reference (older tables: ``ImageIsCreating``)."""

    STATUS, CODE = 403, "OperationDenied.ImageCopying"
    MESSAGE = "The image is being copied. Please use the CancelCopyImage API."


class ImageUsingByInstance(EcsError):
    """DeleteImage API reference (in use and ``Force`` not true)."""

    STATUS, CODE = 403, "ImageUsingByInstance"
    MESSAGE = "The specified image has been used to create instances."


class ImageNotAvailable(EcsError):
    """ModifyImageAttribute API reference (``Status=Deprecated``)."""

    STATUS, CODE = 403, "ImageStatus.NotAvailable"
    MESSAGE = "The image is not available."


class ImageNotDeprecated(EcsError):
    """ModifyImageAttribute API reference (``Status=Available``)."""

    STATUS, CODE = 403, "ImageStatus.NotDeprecated"
    MESSAGE = "The image is not deprecated."


class ImageIsCreating(EcsError):
    """Not documented for TagResources: switch ``tag_in_progress_refused`` answers with ModifyImageAttribute's code."""

    STATUS, CODE = 403, "InvalidStatus.ImageIsCreating"
    MESSAGE = "The operation cannot be performed because the image is creating."


# --------------------------------------------------------------------------- tags, resources, snapshots


class TagCountExceeded(EcsError):
    """CopyImage and TagResources API references (at most 20 tags)."""

    CODE = "InvalidTagCount"


class TagKeyMalformed(EcsError):
    """CopyImage and TagResources API references."""

    CODE = "InvalidTagKey.Malformed"


class TagValueMalformed(EcsError):
    """CopyImage and TagResources API references."""

    CODE = "InvalidTagValue.Malformed"


class ResourceGroupMalformed(EcsError):
    """CopyImage and JoinResourceGroup API references."""

    CODE = "InvalidResourceGroupId.Malformed"

    def __init__(self, resource_group_id: str) -> None:
        super().__init__(f"The resource group id {resource_group_id!r} is not valid.")


class ResourceTypeNotFound(EcsError):
    """TagResources, UntagResources and JoinResourceGroup API references."""

    STATUS, CODE = 404, "InvalidResourceType.NotFound"

    def __init__(self, resource_type: str) -> None:
        super().__init__(f"The resource type {resource_type!r} is not supported here; only 'image' is.")


class ResourceNotFound(EcsError):
    """TagResources, UntagResources and JoinResourceGroup API references."""

    STATUS, CODE = 404, "InvalidResourceId.NotFound"

    def __init__(self, resource_id: str) -> None:
        super().__init__(f"The specified resource {resource_id} is not found.")


class SnapshotNotFound(EcsError):
    """DeleteSnapshot API reference."""

    STATUS, CODE = 404, "InvalidSnapshotId.NotFound"

    def __init__(self, snapshot_id: str) -> None:
        super().__init__(f"The specified snapshot {snapshot_id} does not exist.")


class SnapshotCreatedImage(EcsError):
    """DeleteSnapshot API reference (an image uses the snapshot, or did until a moment ago)."""

    STATUS, CODE = 403, "SnapshotCreatedImage"
    MESSAGE = "The specified snapshot has been used to create custom images. Please delete the images first."
