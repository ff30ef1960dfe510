"""The ECS stand-in: the image APIs of ECS 2014-05-26, RPC style, as ``alibabacloud-ecs20140526`` calls them.

The Python SDK sends ``POST /`` with the action in the ``x-acs-action`` header, the version in
``x-acs-version`` and every parameter in the query string (``Tag.1.Key=…``, ``ResourceId.1=…``); a
form-encoded body is read too. Booleans arrive as Python spells them (``True``/``False``): any case is
accepted. Every region is served on the one endpoint; the region comes from ``RegionId``. A region this
stand-in does not serve fails the way an unresolvable ``ecs.<region>.aliyuncs.com`` would: the connection is
closed without an answer.

Each request is verified (``ACS3-HMAC-SHA256``) before anything else; then injected faults apply; then the
action runs under one lock. Copies move on the shared :class:`VirtualClock`, each along its
:class:`CopyPlan` (a while at 0%, then segments of uneven speed; by default one steady segment of
``copy_seconds``), ``Creating`` with whole-percent ``Progress`` until it ends ``Available``/``'100%'`` (or
``CreateFailed``). At most five copies from one source region run at once (CopyImage's usage notes); further ones
wait, ``Waiting`` at ``'0%'``, first in first out, and start the moment a slot frees. Status is derived lazily,
replaying the region's events, so a copy's progress never depends on when anybody looked.

Every behaviour and code below is from the ECS API reference (docs/conformance.md cites each). Where the
documentation settles nothing, a switch chooses, and the suite runs the provider in the pessimistic setting too:
``tag_in_progress_refused`` (TagResources on an image not yet Available), ``deleted_listing_seconds`` (how long a
deleted image stays listed), ``snapshot_release_seconds`` (how long DeleteSnapshot answers SnapshotCreatedImage
after the image was deleted), ``missing_image_delete_ignored`` (DeleteImage of a missing image: the error table's
404, or the parameter text's "ignored").

Error replies are JSON ``{"RequestId", "HostId", "Code", "Message"}``, so the SDK raises ``ClientException`` (4xx)
or ``ServerException`` (5xx) carrying ``.code``:

Any action
    the signature checks of :mod:`emulator.signing`; 404 ``InvalidAction.NotFound``; 400 ``InvalidVersion``;
    400 ``MissingParameter``; 400 ``InvalidParameter`` (a boolean or integer that does not parse).
Injected faults
    400 ``Throttling``; 500 ``InternalError``; 503 ``ServiceUnavailable``; 409 ``InvalidOperation.Conflict``;
    403 ``Operation.Conflict``; latency; a 200 with nothing in it.
CopyImage
    400 ``InvalidClientToken.Malformed``; 400 ``IdempotentParameterMismatch``; 400 ``DestinationRegion.NotFound``;
    404 ``InvalidImageId.NotFound``; 400 ``IncorrectImageStatus`` (source not Available, Deprecated included);
    400 ``OperationDenied.ImageCopyConflict`` (a copy of the same source image is in progress);
    400 ``InvalidImageName.Malformed``/``.Duplicated``; 400 ``InvalidDescription.Malformed``; 400 ``InvalidTagCount``;
    400 ``InvalidTagKey.Malformed``/``InvalidTagValue.Malformed``; 400 ``InvalidParameter.EncryptedIllegal``;
    404 ``InvalidParameter.KMSKeyId.NotFound``; 403 ``QuotaExceed.Image``; 400 ``DryRunOperation``.
CancelCopyImage
    404 ``InvalidImageId.NotFound``; 400 ``ImageCreatedNotFromCopy``; 400 ``IncorrectImageStatus`` (completed).
DeleteImage
    404 ``InvalidImageId.NotFound`` (or ignored, by switch); 403 ``OperationDenied.ImageCopying`` (a copy in
    progress: cancel it); 403 ``ImageUsingByInstance`` (in use and Force not true).
DeleteSnapshot (no RegionId)
    404 ``InvalidSnapshotId.NotFound``; 403 ``SnapshotCreatedImage`` (an image uses it, or did until a moment ago).
ModifyImageAttribute
    404 ``InvalidImageId.NotFound``; the name and description errors; ``Status=Deprecated``/``Available``, with
    403 ``ImageStatus.NotAvailable`` / ``ImageStatus.NotDeprecated``.
TagResources / UntagResources / JoinResourceGroup
    404 ``InvalidResourceType.NotFound``; 404 ``InvalidResourceId.NotFound``; the tag errors of CopyImage.
DescribeImages
    ``Status`` defaults to ``Available`` (so Deprecated images are listed only when asked for).
DescribeRegions
    every region served, with its ``RegionEndpoint``.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from emulator.clock import VirtualClock
from emulator.credentials import CredentialStore
from emulator.errors import ApiError
from emulator.http import DROP, Reply, Request, StandIn, json_reply
from emulator.signing import AuthError, NonceRegistry, verify_acs3

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
DEFAULT_KMS_KEY_ID = "key-hzz00000000000000001"
MAX_TAGS = 20
MAX_COPIES_IN_PROGRESS = 5  # running copies per source region; more wait in a queue
DEFAULT_IMAGE_QUOTA = 100  # custom images per region
MAX_CLIENT_TOKEN_LENGTH = 64
IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
DEFAULT_IMAGE_SIZE_GIB = 40

_ID_ALPHABET = string.ascii_lowercase + string.digits
_CJK = "\u4e00-\u9fff"
_NAME_RE = re.compile(rf"[A-Za-z{_CJK}][A-Za-z0-9{_CJK}.:_\-]{{1,127}}")
_RESOURCE_GROUP_RE = re.compile(r"rg-[A-Za-z0-9]{1,64}")
_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


def _iso8601(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EcsError(ApiError):
    """An API error: HTTP status, Alibaba error code, message."""


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class CopyPlan:
    """How one copy moves: ``queue_seconds`` at 0% first, then (seconds, percent) segments adding up to 100%."""

    queue_seconds: float = 0.0
    segments: tuple[tuple[float, float], ...] = ((60.0, 100.0),)

    @classmethod
    def steady(cls, seconds: float) -> CopyPlan:
        return cls(0.0, ((float(seconds), 100.0),))

    @classmethod
    def uneven(cls, seconds: float, seed: int, spread: float = 0.3) -> CopyPlan:
        """A copy of ``seconds`` as copies are seen to move: up to 15% of it queued at 0%, then 3 to 6
        stretches of random length, each at a steady rate of 1 +- ``spread`` times the average (seeded)."""
        rng = random.Random(seed)
        queue = seconds * rng.uniform(0.0, 0.15)
        count = rng.randint(3, 6)
        cuts = sorted(rng.uniform(0.0, 1.0) for _ in range(count - 1))
        lengths = [(b - a) * (seconds - queue) for a, b in zip([0.0, *cuts], [*cuts, 1.0], strict=True)]
        gains = [length * rng.uniform(1.0 - spread, 1.0 + spread) for length in lengths]
        total = sum(gains)
        return cls(queue, tuple((length, 100.0 * gain / total) for length, gain in zip(lengths, gains, strict=True)))

    @classmethod
    def about(cls, minutes: float, seed: int) -> CopyPlan:
        """An uneven copy of about ``minutes``: 94 to 99% of it (seeded), so that a strategy looking at round
        intervals gets no lucky hits, and a 720-minute copy stays within ROS's 12-hour Timeout."""
        return cls.uneven(minutes * 60.0 * random.Random(seed).uniform(0.94, 0.99), seed)

    @property
    def duration(self) -> float:
        return self.queue_seconds + sum(seconds for seconds, _ in self.segments)

    def percent(self, elapsed: float) -> float:
        """Progress after ``elapsed`` seconds, 0.0 to 100.0."""
        left = elapsed - self.queue_seconds
        done = 0.0
        for seconds, gain in self.segments:
            if left <= 0:
                break
            if left < seconds:
                return done + gain * left / seconds
            left -= seconds
            done += gain
        return min(100.0, done) if left > 0 or elapsed >= self.duration else done


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
class Call:
    action: str
    params: dict[str, str]
    region: str | None
    at: float  # virtual time the request arrived
    status: int
    error_code: str | None
    access_key_id: str | None


# --------------------------------------------------------------------------- fault injection

_FAULT_ERRORS = {
    "throttle": (400, "Throttling", "Request was denied due to request throttling."),
    "conflict": (
        409,
        "InvalidOperation.Conflict",
        "Request was denied due to conflict with a previous request, please try again later.",
    ),
    "operation_conflict": (403, "Operation.Conflict", "The operation may conflicts with others, please retry later."),
    "server_error": (500, "InternalError", "The request processing has failed due to some unknown error."),
    "unavailable": (503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}
FAULT_KINDS = (*_FAULT_ERRORS, "latency", "malformed")  # malformed: 200 with a body missing every field


class _MalformedReply(Exception):
    """Raised by an injected 'malformed' fault: answer 200 with nothing but a RequestId."""


@dataclass
class Fault:
    action: str | None  # None: any action
    kind: str
    remaining: int | None  # None: forever
    seconds: float = 0.0


class FaultPlan:
    """Faults to inject, in the order added. Per call, at most one latency and one error fault apply."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, action: str | None, kind: str, count: int | None = 1, seconds: float = 0.0) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if count is not None and count < 1:
            raise ValueError("count must be at least 1, or None for ever")
        fault = Fault(action, kind, count, float(seconds))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault: Fault) -> None:
        """End a fault early (a "persistent" failure that lasts a while)."""
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, action: str) -> tuple[Fault | None, Fault | None]:
        """Consume and return the first matching latency fault and the first matching error fault."""
        latency = error = None
        with self._lock:
            for fault in list(self._faults):
                if fault.action is not None and fault.action != action:
                    continue
                if fault.kind == "latency":
                    if latency is not None:
                        continue
                    latency = fault
                elif error is None:
                    error = fault
                else:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return latency, error


# --------------------------------------------------------------------------- request parameters


class _Params:
    """The decoded parameters of one request, with the parsing rules every action shares."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.region: str | None = values.get("RegionId") or None

    def get(self, name: str) -> str | None:
        """The value, or None when absent or empty."""
        value = self.values.get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise _missing(name)
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise EcsError(400, "InvalidParameter", f'The specified parameter "{name}" must be true or false.')
        return value.lower() == "true"

    def integer(self, name: str, default: int, low: int, high: int | None) -> int:
        value = self.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            bounds = f"{low}..{high}" if high is not None else f"at least {low}"
            raise EcsError(400, "InvalidParameter", f'The specified parameter "{name}" must be an integer {bounds}.')
        return number

    def listed(self, prefix: str) -> list[str]:
        """``Prefix.1``, ``Prefix.2``, … in index order, empty values dropped."""
        pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)")
        found = [(int(m.group(1)), v) for k, v in self.values.items() if (m := pattern.fullmatch(k)) and v]
        return [value for _, value in sorted(found)]

    def tags(self) -> list[tuple[str, str | None]]:
        """``Tag.N.Key``/``Tag.N.Value`` pairs in index order; the value is None when not sent."""
        pattern = re.compile(r"Tag\.(\d+)\.(Key|Value)")
        by_index: dict[int, dict[str, str]] = {}
        for name, value in self.values.items():
            match = pattern.fullmatch(name)
            if match:
                by_index.setdefault(int(match.group(1)), {})[match.group(2)] = value
        pairs = []
        for index in sorted(by_index):
            entry = by_index[index]
            if not entry.get("Key"):
                raise EcsError(400, "InvalidTagKey.Malformed", f"Tag.{index}.Key is missing or empty.")
            pairs.append((entry["Key"], entry.get("Value")))
        return pairs


def _missing(name: str) -> EcsError:
    message = f'The input parameter "{name}" that is mandatory for processing this request is not supplied.'
    return EcsError(400, "MissingParameter", message)


def _decode_params(request: Request) -> dict[str, str]:
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    if request.body and request.headers.get("content-type", "").startswith(_FORM_CONTENT_TYPE):
        params.update(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def _claimed_key_id(headers: dict[str, str]) -> str | None:
    match = re.search(r"Credential=([^,\s]+)", headers.get("authorization", ""))
    return match.group(1) if match else None


# --------------------------------------------------------------------------- validation rules


def check_image_name(name: str) -> None:
    lowered = name.lower()
    if lowered.startswith(("http://", "https://", "acs:", "aliyun")) or not _NAME_RE.fullmatch(name):
        raise EcsError(
            400,
            "InvalidImageName.Malformed",
            "The image name must be 2 to 128 characters, start with a letter or a Chinese character, contain only "
            "letters, Chinese characters, digits, '.', ':', '_' and '-', and not start with http://, https://, "
            "acs: or aliyun.",
        )


def check_description(description: str) -> None:
    if not 2 <= len(description) <= 256 or description.lower().startswith(("http://", "https://")):
        raise EcsError(
            400,
            "InvalidDescription.Malformed",
            "The description must be 2 to 256 characters and not start with http:// or https://.",
        )


def check_tags(tags: list[tuple[str, str | None]]) -> None:
    if len(tags) > MAX_TAGS:
        raise EcsError(400, "InvalidTagCount", f"At most {MAX_TAGS} tags are allowed.")
    for key, value in tags:
        lowered = key.lower()
        if (
            not 1 <= len(key) <= 128
            or lowered.startswith(("aliyun", "acs:"))
            or "http://" in lowered
            or "https://" in lowered
        ):
            raise EcsError(400, "InvalidTagKey.Malformed", f"The tag key {key!r} is not valid.")
        if value is not None and (len(value) > 128 or value.lower().startswith("acs:")):
            raise EcsError(400, "InvalidTagValue.Malformed", f"The tag value {value!r} is not valid.")


def check_resource_group(resource_group_id: str) -> None:
    if not _RESOURCE_GROUP_RE.fullmatch(resource_group_id):
        raise EcsError(
            400, "InvalidResourceGroupId.Malformed", f"The resource group id {resource_group_id!r} is not valid."
        )


def check_resource_type(resource_type: str) -> None:
    if resource_type != "image":
        message = f"The resource type {resource_type!r} is not supported here; only 'image' is."
        raise EcsError(404, "InvalidResourceType.NotFound", message)


def _name_duplicated(name: str, region: str) -> EcsError:
    return EcsError(400, "InvalidImageName.Duplicated", f"An image named {name!r} already exists in {region}.")


def _image_not_found(image_id: str, region: str) -> EcsError:
    return EcsError(404, "InvalidImageId.NotFound", f"The specified image {image_id} does not exist in {region}.")


def _resource_not_found(resource_id: str) -> EcsError:
    return EcsError(404, "InvalidResourceId.NotFound", f"The specified resource {resource_id} is not found.")


# --------------------------------------------------------------------------- the stand-in


class EcsStandIn(StandIn):
    def __init__(
        self,
        clock: VirtualClock,
        credentials: CredentialStore,
        regions: Iterable[str] = DEFAULT_REGIONS,
        copy_seconds: float = 60.0,
        port: int = 0,
    ) -> None:
        super().__init__(clock, port)
        self.credentials = credentials
        self.regions = tuple(regions)
        self.copy_seconds = float(copy_seconds)  # duration of new copies (steady plan), in virtual seconds
        self.copy_plan: Callable[[], CopyPlan] | None = None  # when set, each new copy's plan
        self.image_quota: int = DEFAULT_IMAGE_QUOTA  # custom images per region, for QuotaExceed.Image
        # Switches for what the documentation leaves open (see the module docstring).
        self.tag_in_progress_refused = False
        self.deleted_listing_seconds = 0.0
        self.snapshot_release_seconds = 0.0
        self.missing_image_delete_ignored = False
        self.kms_keys: set[str] = {DEFAULT_KMS_KEY_ID}
        self.faults = FaultPlan()
        self.calls: list[Call] = []
        self._nonces = NonceRegistry()
        self._lock = threading.RLock()
        self._images: dict[str, dict[str, Image]] = {region: {} for region in self.regions}
        self._snapshots: dict[str, dict[str, Snapshot]] = {region: {} for region in self.regions}
        self._tokens: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {}  # token -> (parameters, image id)
        self._pending_failures: list[float] = []
        self._seed_counter = 0
        self._copy_counter = 0
        self._lingering: dict[str, dict[str, tuple[Image, float]]] = {region: {} for region in self.regions}
        self._linked_until: dict[str, float] = {}  # snapshot id -> when its deleted image lets go of it

    # ------------------------------------------------------------------ helpers for tests and demos

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
        with self._lock:
            if region not in self._images:
                raise ValueError(f"unknown region {region!r}")
            if name is None:
                self._seed_counter += 1
                name = f"seed-image-{self._seed_counter}"
            try:
                check_image_name(name)
            except EcsError as error:
                raise ValueError(f"{error.code}: {name!r}") from None
            if self._name_taken(region, name):
                raise ValueError(f"an image named {name!r} already exists in {region}")
            attrs.setdefault("progress", "100%" if status == "Available" else "0%")
            image = Image(
                image_id=_new_id("m-"),
                region=region,
                name=name,
                owner_alias=owner_alias,
                status=status,
                created_at=self.clock.now(),
                **attrs,
            )
            for _ in range(snapshot_count):
                snapshot = Snapshot(_new_id("s-"), region, image.size, image.image_id)
                self._snapshots[region][snapshot.snapshot_id] = snapshot
                image.snapshot_ids.append(snapshot.snapshot_id)
            self._images[region][image.image_id] = image
            return image

    def image(self, image_id: str) -> Image | None:
        """The image with that id in any region, its status brought up to date; None if there is none.

        This is the live record: a test may change fields such as ``in_use`` or ``status`` directly.
        """
        with self._lock:
            for images in self._images.values():
                if image_id in images:
                    return self._refresh(images[image_id])
            return None

    def images(self, region: str) -> list[Image]:
        with self._lock:
            self._refresh_all()
            return list(self._images.get(region, {}).values())

    def snapshots(self, region: str) -> list[str]:
        with self._lock:
            self._refresh_all()
            return list(self._snapshots[region])

    def fail_copies(self, count: int = 1, at_fraction: float = 0.5) -> None:
        """The next ``count`` copies end ``CreateFailed`` once ``at_fraction`` of their duration has passed."""
        if not 0.0 <= at_fraction <= 1.0:
            raise ValueError("at_fraction must be within 0..1")
        with self._lock:
            self._pending_failures.extend([float(at_fraction)] * count)

    def calls_to(self, action: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.action == action]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def reset(self) -> None:
        """Back to an empty account with the documented behaviour (between the scenarios of one test)."""
        with self._lock:
            self.calls.clear()
            self.faults.clear()
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

    # ------------------------------------------------------------------ request handling

    def handle(self, request: Request) -> Reply:
        values = _decode_params(request)
        params = _Params(values)
        action = request.headers.get("x-acs-action") or values.get("Action", "")
        arrived = self.clock.now()
        request_id = str(uuid.uuid4()).upper()
        key_id = _claimed_key_id(request.headers)
        if params.region is not None and params.region not in self._images:
            # No ECS endpoint serves it: as for an ecs.<region>.aliyuncs.com that does not resolve, no answer at all.
            with self._lock:
                self.calls.append(Call(action, dict(values), params.region, arrived, 0, "ConnectionDropped", key_id))
            return DROP
        try:
            key_id = verify_acs3(request.signed(), self.credentials, self._nonces).id
            self._inject_faults(action)
            if request.headers.get("x-acs-version", API_VERSION) != API_VERSION:
                raise EcsError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            handler = _ACTIONS.get(action)
            if handler is None:
                message = "Specified api is not found, please check your url and method."
                raise EcsError(404, "InvalidAction.NotFound", message)
            with self._lock:
                result = handler(self, params)
            status, payload, code = 200, {"RequestId": request_id, **result}, None
        except (AuthError, EcsError) as error:
            status, code = error.status, error.code
            payload = {"RequestId": request_id, "HostId": HOST_ID, "Code": error.code, "Message": error.message}
        except _MalformedReply:
            status, payload, code = 200, {"RequestId": request_id}, None
        with self._lock:
            self.calls.append(Call(action, dict(values), params.region, arrived, status, code, key_id))
        return json_reply(status, payload, {"x-acs-request-id": request_id})

    def _inject_faults(self, action: str) -> None:
        latency, error = self.faults.take(action)
        if latency is not None:
            self.clock.pause(latency.seconds)
        if error is not None and error.kind == "malformed":
            raise _MalformedReply()
        if error is not None:
            raise EcsError(*_FAULT_ERRORS[error.kind])

    # ------------------------------------------------------------------ state helpers (call with the lock held)

    def _refresh(self, image: Image) -> Image:
        """Bring a copy in progress or waiting up to date with the clock (with every copy from its region)."""
        if image.source is not None and image.status in ("Creating", "Waiting"):
            self._advance_copies(image.source[0])
        return image

    def _refresh_all(self) -> None:
        for source_region in {
            image.source[0]
            for images in self._images.values()
            for image in images.values()
            if image.source is not None and image.status in ("Creating", "Waiting")
        }:
            self._advance_copies(source_region)

    def _copies_from(self, source_region: str, status: str) -> list[Image]:
        """The copies from a source region with that status, in CopyImage acceptance order."""
        found = [
            image
            for images in self._images.values()
            for image in images.values()
            if image.source is not None and image.source[0] == source_region and image.status == status
        ]
        return sorted(found, key=lambda image: image.copy_order)

    def _start_waiting(self, source_region: str, at: float) -> None:
        """Start the oldest Waiting copies from the region, at virtual time ``at``, while a slot is free."""
        running = len(self._copies_from(source_region, "Creating"))
        for image in self._copies_from(source_region, "Waiting")[: max(0, MAX_COPIES_IN_PROGRESS - running)]:
            image.status, image.progress, image.copy_started_at = "Creating", "0%", at

    def _advance_copies(self, source_region: str) -> None:
        """Replay the ends of the region's running copies up to now, starting waiting copies as slots free."""
        now = self.clock.now()
        self._start_waiting(source_region, now)  # only if a slot was freed outside the API (a test's edit)
        while True:
            ended = [
                image
                for image in self._copies_from(source_region, "Creating")
                if now - (image.copy_started_at or 0.0) >= image.copy_duration
            ]
            if not ended:
                break
            first = min(
                ended, key=lambda image: ((image.copy_started_at or 0.0) + image.copy_duration, image.copy_order)
            )
            self._finish_copy(first)
            self._start_waiting(source_region, (first.copy_started_at or 0.0) + first.copy_duration)
        for image in self._copies_from(source_region, "Creating"):
            elapsed = max(0.0, now - (image.copy_started_at or 0.0))
            image.progress = f"{min(99, math.floor(image.plan.percent(elapsed)))}%"

    def _finish_copy(self, image: Image) -> None:
        if image.fail_at_fraction is not None:
            image.status, image.progress = "CreateFailed", f"{math.floor(image.plan.percent(image.copy_duration))}%"
            return
        image.status, image.progress = "Available", "100%"
        region_snapshots = self._snapshots[image.region]
        for snapshot_id in image.snapshot_ids:
            region_snapshots[snapshot_id] = Snapshot(snapshot_id, image.region, image.size, image.image_id)

    def _region(self, params: _Params) -> str:
        return params.required("RegionId")  # a region not served never gets here (see handle)

    def _listed(self, region: str) -> list[Image]:
        """The region's images, and those deleted so recently that ECS still lists them (a switch)."""
        now = self.clock.now()
        lingering = self._lingering[region]
        for image_id in [i for i, (_, until) in lingering.items() if until <= now]:
            del lingering[image_id]
        return [*self._images[region].values(), *(image for image, _ in lingering.values())]

    def _name_taken(self, region: str, name: str, other_than: str | None = None) -> bool:
        return any(i.name == name and i.image_id != other_than for i in self._images[region].values())

    def _images_for_tagging(self, params: _Params) -> tuple[str, list[Image]]:
        region = self._region(params)
        check_resource_type(params.required("ResourceType"))
        ids = params.listed("ResourceId")
        if not ids:
            raise _missing("ResourceId.1")
        images = []
        for resource_id in ids:
            image = self._images[region].get(resource_id)
            if image is None:
                raise _resource_not_found(resource_id)
            images.append(image)
        return region, images

    def _image_view(self, image: Image) -> dict[str, object]:
        mappings = [
            {
                "SnapshotId": snapshot_id if snapshot_id in self._snapshots[image.region] else "",
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

    # ------------------------------------------------------------------ actions

    def _copy_image(self, params: _Params) -> dict[str, object]:
        token = params.get("ClientToken")
        if token is not None and (len(token) > MAX_CLIENT_TOKEN_LENGTH or not token.isascii()):
            raise EcsError(400, "InvalidClientToken.Malformed", "The ClientToken must be ASCII, at most 64 characters.")
        fingerprint = tuple(sorted((k, v) for k, v in params.values.items() if k != "ClientToken"))
        if token is not None and token in self._tokens:
            first_fingerprint, first_image_id = self._tokens[token]
            if first_fingerprint != fingerprint:
                raise EcsError(
                    400, "IdempotentParameterMismatch", "The ClientToken was used before with different parameters."
                )
            return {"ImageId": first_image_id}

        source_region = self._region(params)
        image_id = params.required("ImageId")
        destination = params.get("DestinationRegionId") or source_region  # its default is not documented
        name = params.get("DestinationImageName")
        if name is not None:
            check_image_name(name)
        description = params.get("DestinationDescription")
        if description is not None:
            check_description(description)
        tags = params.tags()
        check_tags(tags)
        resource_group = params.get("ResourceGroupId")
        if resource_group is not None:
            check_resource_group(resource_group)
        encrypted = params.boolean("Encrypted")
        kms_key_id = params.get("KMSKeyId")
        if kms_key_id is not None and not encrypted:
            raise EcsError(400, "InvalidParameter.EncryptedIllegal", "KMSKeyId is only valid with Encrypted=true.")
        dry_run = params.boolean("DryRun")

        if destination not in self._images:
            raise EcsError(400, "DestinationRegion.NotFound", f"The destination region {destination!r} is not found.")
        source = self._images[source_region].get(image_id)
        if source is None or source.owner_alias != "self":
            raise _image_not_found(image_id, source_region)
        if self._refresh(source).status != "Available":
            raise EcsError(400, "IncorrectImageStatus", "The image not available.")
        self._refresh_all()
        if any(
            image.source == (source_region, image_id) and image.status in ("Creating", "Waiting")
            for images in self._images.values()
            for image in images.values()
        ):
            message = (
                "The same image cannot be copied concurrently. Please wait until the last copy is completed before "
                "performing the next operation."
            )
            raise EcsError(400, "OperationDenied.ImageCopyConflict", message)
        if kms_key_id is not None and kms_key_id not in self.kms_keys:
            raise EcsError(404, "InvalidParameter.KMSKeyId.NotFound", f"The KMS key {kms_key_id} does not exist.")
        if name is not None and self._name_taken(destination, name):
            raise _name_duplicated(name, destination)
        custom_images = sum(1 for image in self._images[destination].values() if image.owner_alias == "self")
        if custom_images >= self.image_quota:
            message = "The maximum number of custom images in the region has been reached."
            raise EcsError(403, "QuotaExceed.Image", message)
        if dry_run:
            raise EcsError(400, "DryRunOperation", "Request validation has been passed with DryRun flag set.")

        self._advance_copies(source_region)
        runs_now = len(self._copies_from(source_region, "Creating")) < MAX_COPIES_IN_PROGRESS and not self._copies_from(
            source_region, "Waiting"
        )
        now = self.clock.now()
        self._copy_counter += 1
        copy = Image(
            image_id=_new_id("m-"),
            region=destination,
            name=name if name is not None else source.name,
            description=description if description is not None else source.description,
            status="Creating" if runs_now else "Waiting",
            progress="0%",
            created_at=now,
            tags={key: value or "" for key, value in tags},
            snapshot_ids=[_new_id("s-") for _ in source.snapshot_ids],
            size=source.size,
            resource_group_id=resource_group or "",
            is_copied=True,
            source=(source_region, image_id),
            encrypted=encrypted or source.encrypted,
            kms_key_id=kms_key_id,
            copy_started_at=now if runs_now else None,
            plan=self.copy_plan() if self.copy_plan is not None else CopyPlan.steady(self.copy_seconds),
            fail_at_fraction=self._pending_failures.pop(0) if self._pending_failures else None,
            copy_order=self._copy_counter,
        )
        self._images[destination][copy.image_id] = copy
        if token is not None:
            self._tokens[token] = (fingerprint, copy.image_id)
        return {"ImageId": copy.image_id}

    def _describe_images(self, params: _Params) -> dict[str, object]:
        region = self._region(params)
        statuses = {s.strip() for s in (params.get("Status") or "Available").split(",") if s.strip()}
        wanted_ids = {i.strip() for i in (params.get("ImageId") or "").split(",") if i.strip()}
        name = params.get("ImageName")
        owner = params.get("ImageOwnerAlias")
        resource_group = params.get("ResourceGroupId")
        snapshot_id = params.get("SnapshotId")
        tag_filters = params.tags()
        page_size = params.integer("PageSize", 10, 1, 100)
        page_number = params.integer("PageNumber", 1, 1, None)

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

        self._refresh_all()
        found = [image for image in self._listed(region) if matches(image)]
        found.sort(key=lambda image: image.created_at, reverse=True)
        page = found[(page_number - 1) * page_size : page_number * page_size]
        return {
            "RegionId": region,
            "TotalCount": len(found),
            "PageNumber": page_number,
            "PageSize": page_size,
            "Images": {"Image": [self._image_view(image) for image in page]},
        }

    def _cancel_copy_image(self, params: _Params) -> dict[str, object]:
        region = self._region(params)
        image_id = params.required("ImageId")
        image = self._images[region].get(image_id)
        if image is None:
            raise _image_not_found(image_id, region)
        if not image.is_copy:
            raise EcsError(
                400, "ImageCreatedNotFromCopy", "The specified image is not the target image of a copy action."
            )
        if self._refresh(image).status not in ("Creating", "Waiting"):
            message = (
                "The image copy has completed." if image.status != "CreateFailed" else "The Image copy has been failed."
            )
            raise EcsError(400, "IncorrectImageStatus", message)
        del self._images[region][image_id]  # its snapshots were never completed
        if image.status == "Creating" and image.source is not None:  # its slot is free from now on;
            self._start_waiting(image.source[0], self.clock.now())  # a Waiting copy just leaves the queue
        return {}

    def _delete_image(self, params: _Params) -> dict[str, object]:
        region = self._region(params)
        image_id = params.required("ImageId")
        force = params.boolean("Force")
        image = self._images[region].get(image_id)
        if image is None:
            lingering = self._lingering[region].get(image_id)
            if self.missing_image_delete_ignored or (lingering is not None and lingering[1] > self.clock.now()):
                return {}
            raise EcsError(404, "InvalidImageId.NotFound", "The specified ImageId does not exist.")
        self._refresh(image)
        if image.owner_alias != "self":
            raise EcsError(403, "OperationDenied", f"The image {image_id} is not a custom image.")
        if image.status in ("Creating", "Waiting"):
            raise EcsError(
                403, "OperationDenied.ImageCopying", "The image is being copied. Please use the CancelCopyImage API."
            )
        if image.in_use and not force:
            raise EcsError(403, "ImageUsingByInstance", "The specified image has been used to create instances.")
        del self._images[region][image_id]  # its snapshots stay
        now = self.clock.now()
        if self.deleted_listing_seconds > 0:
            self._lingering[region][image_id] = (image, now + self.deleted_listing_seconds)
        for snapshot_id in image.snapshot_ids:
            self._linked_until[snapshot_id] = now + self.snapshot_release_seconds
        return {}

    def _modify_image_attribute(self, params: _Params) -> dict[str, object]:
        region = self._region(params)
        image_id = params.required("ImageId")
        name = params.get("ImageName")
        description = params.get("Description")
        status = params.get("Status")
        if name is not None:
            check_image_name(name)
        if description is not None:
            check_description(description)
        if status not in (None, "Deprecated", "Available"):
            raise EcsError(400, "InvalidParameter", 'The specified parameter "Status" must be Deprecated or Available.')
        image = self._images[region].get(image_id)
        if image is None:
            raise _image_not_found(image_id, region)
        if image.owner_alias != "self":
            raise EcsError(403, "OperationDenied", f"The image {image_id} is not a custom image.")
        if name is not None and self._name_taken(region, name, other_than=image_id):
            raise _name_duplicated(name, region)
        current = self._refresh(image).status
        if status == "Deprecated" and current != "Available":
            raise EcsError(403, "ImageStatus.NotAvailable", "The image is not available.")
        if status == "Available" and current not in ("Available", "Deprecated"):
            raise EcsError(403, "ImageStatus.NotDeprecated", "The image is not deprecated.")
        if name is not None:
            image.name = name
        if description is not None:
            image.description = description
        if status is not None:
            image.status = status
        return {}

    def _tag_resources(self, params: _Params) -> dict[str, object]:
        _, images = self._images_for_tagging(params)
        tags = params.tags()
        if not tags:
            raise _missing("Tag.1.Key")
        check_tags(tags)
        for image in images:
            if self.tag_in_progress_refused and self._refresh(image).status in ("Creating", "Waiting"):
                # Not documented either way: this switch refuses, with the code ModifyImageAttribute uses.
                raise EcsError(
                    403,
                    "InvalidStatus.ImageIsCreating",
                    "The operation cannot be performed because the image is creating.",
                )
            if len({*image.tags, *(key for key, _ in tags)}) > MAX_TAGS:
                message = f"The resource {image.image_id} would carry over {MAX_TAGS} tags."
                raise EcsError(400, "InvalidTagCount", message)
        for image in images:
            for key, value in tags:
                image.tags[key] = value or ""
        return {}

    def _untag_resources(self, params: _Params) -> dict[str, object]:
        _, images = self._images_for_tagging(params)
        keys = params.listed("TagKey")
        remove_all = params.boolean("All")
        for image in images:
            if keys:
                for key in keys:
                    image.tags.pop(key, None)
            elif remove_all:
                image.tags.clear()
        return {}

    def _join_resource_group(self, params: _Params) -> dict[str, object]:
        region = self._region(params)
        resource_id = params.required("ResourceId")
        resource_type = params.required("ResourceType")
        resource_group = params.required("ResourceGroupId")
        check_resource_type(resource_type)
        check_resource_group(resource_group)
        image = self._images[region].get(resource_id)
        if image is None:
            raise _resource_not_found(resource_id)
        image.resource_group_id = resource_group
        return {}

    def _delete_snapshot(self, params: _Params) -> dict[str, object]:
        snapshot_id = params.required("SnapshotId")
        self._refresh_all()
        region = next((r for r, snapshots in self._snapshots.items() if snapshot_id in snapshots), None)
        if region is None:
            raise EcsError(404, "InvalidSnapshotId.NotFound", f"The specified snapshot {snapshot_id} does not exist.")
        params.region = region
        user = next((i for i in self._images[region].values() if snapshot_id in i.snapshot_ids), None)
        if user is not None or self._linked_until.get(snapshot_id, 0.0) > self.clock.now():
            message = "The specified snapshot has been used to create custom images. Please delete the images first."
            raise EcsError(403, "SnapshotCreatedImage", message)
        del self._snapshots[region][snapshot_id]
        return {}

    def _describe_regions(self, params: _Params) -> dict[str, object]:
        listed = [
            {
                "RegionId": region,
                "RegionEndpoint": f"ecs.{region}.aliyuncs.com",
                "LocalName": region,
                "Status": "available",
            }
            for region in self.regions
        ]
        return {"Regions": {"Region": listed}}


_ACTIONS: dict[str, Callable[[EcsStandIn, _Params], dict[str, object]]] = {
    "CopyImage": EcsStandIn._copy_image,
    "DescribeImages": EcsStandIn._describe_images,
    "CancelCopyImage": EcsStandIn._cancel_copy_image,
    "DeleteImage": EcsStandIn._delete_image,
    "ModifyImageAttribute": EcsStandIn._modify_image_attribute,
    "TagResources": EcsStandIn._tag_resources,
    "UntagResources": EcsStandIn._untag_resources,
    "JoinResourceGroup": EcsStandIn._join_resource_group,
    "DeleteSnapshot": EcsStandIn._delete_snapshot,
    "DescribeRegions": EcsStandIn._describe_regions,
}
