"""The ECS stand-in's plain state: images and snapshots, and the limits ECS documents for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.progress import CopyPlan

API_VERSION = "2014-05-26"
HOST_ID = "ecs.aliyuncs.com"
DEFAULT_REGIONS = (
    "cn-hangzhou",
    "cn-shanghai",
    "cn-beijing",
    "cn-shenzhen",
    "cn-hongkong",
    "ap-southeast-1",
    "us-west-1",
    "eu-central-1",
)
# Region ids of Alibaba Cloud's public regions (DescribeRegions), for fan-outs wider than the default account's.
WORLD_REGIONS = (
    *DEFAULT_REGIONS,
    "cn-qingdao",
    "cn-zhangjiakou",
    "cn-huhehaote",
    "cn-wulanchabu",
    "cn-chengdu",
    "cn-guangzhou",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "us-east-1",
    "eu-west-1",
    "me-east-1",
    "me-central-1",
)
DEFAULT_KMS_KEY_ID = "key-hzz00000000000000001"
# The platform's limits, written out here as an independent check of the function (which has its own copies):
MAX_TAGS = 20  # CopyImage and TagResources API references: Tag.N, N up to 20
MAX_COPIES_IN_PROGRESS = 5  # CopyImage usage notes: five copy tasks per region; more wait in a queue
DEFAULT_IMAGE_QUOTA = 100  # custom images per region, for QuotaExceed.Image
MAX_CLIENT_TOKEN_LENGTH = 64  # "How to ensure idempotence": ASCII, at most 64 characters
DEFAULT_IMAGE_SIZE_GIB = 40
# DescribeImages API reference, Status: every status an image can have (the default lists only Available).
IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
IN_PROGRESS = ("Creating", "Waiting")  # DescribeImages Status: a copy running, or waiting in a multi-task queue


@dataclass
class Image:
    image_id: str
    region: str
    name: str
    description: str = ""
    owner_alias: str = "self"  # 'self' | 'system'
    status: str = "Available"
    progress: str = "100%"
    created_at: float = 0.0  # virtual seconds
    tags: dict[str, str] = field(default_factory=dict)
    snapshot_ids: list[str] = field(default_factory=list)
    size: int = DEFAULT_IMAGE_SIZE_GIB
    resource_group_id: str = ""
    is_copied: bool = False
    source: tuple[str, str] | None = None  # (region, image id) of the image a copy was made from
    encrypted: bool = False
    kms_key_id: str | None = None
    in_use: bool = False
    copy_started_at: float | None = None  # None while the copy is Waiting for a slot
    plan: CopyPlan = field(default_factory=CopyPlan)
    fail_at_fraction: float | None = None
    copy_order: int = 0  # CopyImage acceptance order: the queue of Waiting copies is first in, first out

    @property
    def is_copy(self) -> bool:
        return self.source is not None

    @property
    def copy_duration(self) -> float:
        """Virtual seconds from the start of the copy to its end (Available, or CreateFailed)."""
        fraction = self.fail_at_fraction if self.fail_at_fraction is not None else 1.0
        return self.plan.duration * fraction

    @property
    def available_at(self) -> float | None:
        """When the copy ends Available (None while it waits for a slot, or if it will fail)."""
        if self.copy_started_at is None or self.fail_at_fraction is not None:
            return None
        return self.copy_started_at + self.plan.duration


@dataclass
class Snapshot:
    snapshot_id: str
    region: str
    size: int
    image_id: str  # the image it was made for; it may be gone since


@dataclass(frozen=True)
class CopyRequest:
    """What a CopyImage asks for, parsed; ``fingerprint`` is every parameter but the ClientToken."""

    source_region: str
    image_id: str
    destination: str
    name: str | None = None
    description: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    resource_group: str | None = None
    encrypted: bool = False
    kms_key_id: str | None = None
    dry_run: bool = False
    client_token: str | None = None
    fingerprint: tuple[tuple[str, str], ...] = ()
