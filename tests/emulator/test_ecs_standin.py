"""The ECS stand-in, driven through the real ``alibabacloud_ecs20140526`` client over loopback HTTP.

Time is the stand-in's :class:`VirtualClock`: it moves only when a test sleeps on it, so every progress figure and
every timing below is exact.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from alibabacloud_tea_openapi.utils import Utils
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import UnretryableException
from darabonba.runtime import RuntimeOptions

from emulator.clock import VirtualClock
from emulator.credentials import AccessKey, CredentialStore
from emulator.ecs import DEFAULT_KMS_KEY_ID, DEFAULT_REGIONS, IMAGE_STATUSES, EcsStandIn
from emulator.progress import CopyPlan

HZ, SH, BJ, EU = "cn-hangzhou", "cn-shanghai", "cn-beijing", "eu-central-1"
NOWHERE = "xx-nowhere-1"
EVERY_STATUS = ",".join(IMAGE_STATUSES)
RUNTIME = RuntimeOptions(autoretry=False)
IMAGE_ID = re.compile(r"m-[a-z0-9]{20}")
SNAPSHOT_ID = re.compile(r"s-[a-z0-9]{20}")
Tag = ecs_models.CopyImageRequestTag


@pytest.fixture
def clock() -> Iterator[VirtualClock]:
    clock = VirtualClock()
    yield clock
    clock.close()


@pytest.fixture
def store() -> CredentialStore:
    return CredentialStore()


@pytest.fixture
def key(store: CredentialStore) -> AccessKey:
    return store.add_access_key()


@pytest.fixture(scope="module")
def stopping() -> Iterator[list[threading.Thread]]:
    """StandIn.stop() waits for serve_forever's next poll: stop servers in the background, join them at the end."""
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join()


@pytest.fixture
def ecs(clock: VirtualClock, store: CredentialStore, stopping: list[threading.Thread]) -> Iterator[EcsStandIn]:
    stand_in = EcsStandIn(clock, store, copy_seconds=100).start()
    yield stand_in
    stopping.append(threading.Thread(target=stand_in.stop))
    stopping[-1].start()


def make_client(
    stand_in: EcsStandIn,
    key: AccessKey,
    *,
    key_id: str | None = None,
    secret: str | None = None,
    token: str | None = None,
) -> Client:
    return Client(
        Config(
            access_key_id=key_id or key.id,
            access_key_secret=secret or key.secret,
            security_token=key.security_token if token is None else token,
            endpoint=stand_in.endpoint,
            protocol="http",
            region_id=HZ,
        )
    )


@pytest.fixture
def client(ecs: EcsStandIn, key: AccessKey) -> Client:
    return make_client(ecs, key)


def copy(client: Client, image_id: str, region: str = HZ, destination: str | None = SH, **kwargs) -> str:
    request = ecs_models.CopyImageRequest(
        region_id=region, image_id=image_id, destination_region_id=destination, **kwargs
    )
    return client.copy_image_with_options(request, RUNTIME).body.image_id


def describe(client: Client, region: str, **kwargs) -> ecs_models.DescribeImagesResponseBody:
    request = ecs_models.DescribeImagesRequest(region_id=region, **kwargs)
    return client.describe_images_with_options(request, RUNTIME).body


def one_image(client: Client, region: str, image_id: str) -> ecs_models.DescribeImagesResponseBodyImagesImage:
    images = describe(client, region, image_id=image_id, status=EVERY_STATUS).images.image
    assert len(images) == 1
    return images[0]


def ids(body: ecs_models.DescribeImagesResponseBody) -> set[str]:
    return {image.image_id for image in body.images.image}


def expect_error(code: str, status: int, call, *args, **kwargs):
    with pytest.raises((ClientException, ServerException)) as info:
        call(*args, **kwargs)
    error = info.value
    assert (error.code, error.status_code) == (code, status), error.message
    assert isinstance(error, ClientException if status < 500 else ServerException)
    return error


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_sources(ecs: EcsStandIn, count: int, region: str = HZ) -> list[str]:
    """Distinct source images: copying one image twice at once is a conflict, so concurrent copies need several."""
    return [ecs.seed_image(region).image_id for _ in range(count)]


def cancel_copy(client: Client, region: str, image_id: str) -> None:
    client.cancel_copy_image_with_options(
        ecs_models.CancelCopyImageRequest(region_id=region, image_id=image_id), RUNTIME
    )


def delete(client: Client, region: str, image_id: str, force: bool | None = None) -> None:
    request = ecs_models.DeleteImageRequest(region_id=region, image_id=image_id, force=force)
    client.delete_image_with_options(request, RUNTIME)


def delete_snapshot(client: Client, snapshot_id: str) -> None:
    client.delete_snapshot_with_options(ecs_models.DeleteSnapshotRequest(snapshot_id=snapshot_id), RUNTIME)


def modify(client: Client, region: str, image_id: str, **kwargs) -> None:
    request = ecs_models.ModifyImageAttributeRequest(region_id=region, image_id=image_id, **kwargs)
    client.modify_image_attribute_with_options(request, RUNTIME)


def set_status(client: Client, region: str, image_id: str, status: str) -> None:
    modify(client, region, image_id, status=status)


def tag(client: Client, image_ids: list[str], tags: dict[str, str], region: str = HZ, resource_type: str = "image"):
    request = ecs_models.TagResourcesRequest(
        region_id=region,
        resource_type=resource_type,
        resource_id=image_ids,
        tag=[ecs_models.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()],
    )
    client.tag_resources_with_options(request, RUNTIME)


def untag(client: Client, image_ids: list[str], keys: list[str] | None = None, all_tags: bool | None = None) -> None:
    request = ecs_models.UntagResourcesRequest(
        region_id=HZ, resource_type="image", resource_id=image_ids, tag_key=keys, all=all_tags
    )
    client.untag_resources_with_options(request, RUNTIME)


# --------------------------------------------------------------------------- copy lifecycle


def test_copy_goes_from_creating_to_available_with_rising_progress(ecs, client, clock):
    source = ecs.seed_image(HZ, name="golden", snapshot_count=2, description="the golden image", size=80)
    copy_id = copy(
        client,
        source.image_id,
        destination_image_name="golden-copy",
        destination_description="copied by the tests",
        resource_group_id="rg-abc123",
        tag=[Tag(key="owner", value="ci"), Tag(key="stack", value="s1")],
    )
    assert IMAGE_ID.fullmatch(copy_id)
    started = clock.now()
    assert ecs.image(copy_id).plan == CopyPlan.steady(100)  # copy_seconds, at one steady pace
    assert ecs.image(copy_id).available_at == started + 100

    image = one_image(client, SH, copy_id)
    assert (image.status, image.progress, image.is_copied) == ("Creating", "0%", True)
    assert [m.snapshot_id for m in image.disk_device_mappings.disk_device_mapping] == ["", ""]
    assert ecs.snapshots(SH) == []

    progress = []
    for step in (37, 25.5, 37.25):  # 37, 62.5, 99.75 virtual seconds of 100
        clock.sleep(step)
        image = one_image(client, SH, copy_id)
        assert image.status == "Creating"
        progress.append(image.progress)
    assert progress == ["37%", "62%", "99%"]

    clock.sleep(0.25)
    assert clock.now() == started + 100
    image = one_image(client, SH, copy_id)
    assert (image.status, image.progress) == ("Available", "100%")
    assert (image.image_name, image.description, image.resource_group_id) == (
        "golden-copy",
        "copied by the tests",
        "rg-abc123",
    )
    assert [(t.tag_key, t.tag_value) for t in image.tags.tag] == [("owner", "ci"), ("stack", "s1")]
    assert image.image_owner_alias == "self"
    assert image.creation_time == iso(started)
    assert image.size == 80 and image.usage == "none"
    mappings = image.disk_device_mappings.disk_device_mapping
    copied_snapshots = [m.snapshot_id for m in mappings]
    assert all(SNAPSHOT_ID.fullmatch(s) for s in copied_snapshots)
    assert sorted(copied_snapshots) == sorted(ecs.snapshots(SH))
    assert not set(copied_snapshots) & set(source.snapshot_ids)
    assert [(m.device, m.type, m.size) for m in mappings] == [
        ("/dev/xvda", "system", "80"),
        ("/dev/xvdb", "data", "80"),
    ]
    assert ecs.image(copy_id).source == (HZ, source.image_id)
    assert ecs.image(source.image_id).status == "Available"  # the source is untouched


def test_injected_copy_failure_ends_create_failed(ecs, client, clock):
    source = ecs.seed_image(HZ)
    ecs.fail_copies(count=1, at_fraction=0.5)
    failing = copy(client, source.image_id, destination_image_name="first")
    assert ecs.image(failing).available_at is None  # it will never be Available
    clock.sleep(49.75)
    assert one_image(client, SH, failing).status == "Creating"
    clock.sleep(0.25)
    image = one_image(client, SH, failing)
    assert (image.status, image.progress) == ("CreateFailed", "50%")
    assert [m.snapshot_id for m in image.disk_device_mappings.disk_device_mapping] == [""]
    assert ecs.snapshots(SH) == []
    assert failing not in ids(describe(client, SH))
    error = expect_error("IncorrectImageStatus", 400, cancel_copy, client, SH, failing)
    assert "The Image copy has been failed." in error.message

    # a failed copy is no copy in progress: the same image may be copied again; only one failure was asked for
    healthy = copy(client, source.image_id, destination_image_name="second")
    clock.sleep(100)
    assert one_image(client, SH, healthy).status == "Available"


def test_copy_duration_can_change_at_run_time(ecs, client, clock):
    first, second = seed_sources(ecs, 2)
    slow = copy(client, first, destination_image_name="slow")
    ecs.copy_seconds = 10
    fast = copy(client, second, destination_image_name="fast")
    clock.sleep(10)
    assert ecs.image(fast).status == "Available"
    assert (ecs.image(slow).status, ecs.image(slow).progress) == ("Creating", "10%")


def test_copy_plan_sits_at_zero_then_moves_unevenly_in_whole_percents(ecs, client, clock):
    uneven = CopyPlan(queue_seconds=20, segments=((10, 60), (30, 40)))  # 0% for 20 s, then fast, then slow
    plans = iter([uneven, CopyPlan.steady(8)])
    ecs.copy_plan = lambda: next(plans)  # asked once per new copy
    first, second = seed_sources(ecs, 2)
    t0 = clock.now()
    slow = copy(client, first)
    quick = copy(client, second, destination=BJ)
    assert (ecs.image(slow).plan, ecs.image(quick).plan) == (uneven, CopyPlan.steady(8))
    assert (ecs.image(slow).available_at, ecs.image(quick).available_at) == (t0 + 60, t0 + 8)

    seen = []
    for at in (10, 20, 22.5, 30, 31, 50, 59.75):
        clock.sleep(at - (clock.now() - t0))
        image = one_image(client, SH, slow)
        assert image.status == "Creating"
        seen.append(image.progress)
    # 60% over 10 s after the queue, then 40% over 30 s; always rounded down to a whole percent, 99% at most
    assert seen == ["0%", "0%", "15%", "60%", "61%", "86%", "99%"]
    assert one_image(client, BJ, quick).status == "Available"  # ended at t0 + 8
    clock.sleep(0.25)
    assert (one_image(client, SH, slow).status, one_image(client, SH, slow).progress) == ("Available", "100%")

    ecs.copy_plan = lambda: uneven
    ecs.fail_copies(count=1, at_fraction=0.6)  # fails 36 s in: 60% + 40% * 6/30
    failing = copy(client, first, destination=EU)
    clock.sleep(35.75)
    assert one_image(client, EU, failing).progress == "67%"
    clock.sleep(0.25)
    image = one_image(client, EU, failing)
    assert (image.status, image.progress) == ("CreateFailed", "68%")


def test_copy_plan_percent_and_duration():
    plan = CopyPlan(queue_seconds=5, segments=((10, 30), (10, 70)))
    assert plan.duration == 25
    assert [plan.percent(t) for t in (0, 5, 10, 15, 20, 25, 30)] == [0, 0, 15, 30, 65, 100, 100]
    assert CopyPlan.steady(40) == CopyPlan(0.0, ((40.0, 100.0),))
    assert CopyPlan.steady(40).percent(10) == 25


def test_describe_images_hides_copies_in_progress_unless_asked(ecs, client, clock):
    copy_id = copy(client, ecs.seed_image(HZ).image_id)
    assert ids(describe(client, SH)) == set()
    assert ids(describe(client, SH, status="Creating,Available")) == {copy_id}
    assert ids(describe(client, SH, status="Available,CreateFailed")) == set()
    clock.sleep(100)
    assert ids(describe(client, SH)) == {copy_id}


def test_same_region_copies_are_allowed(ecs, client, clock):
    first, second = seed_sources(ecs, 2)
    inside = copy(client, first, destination=HZ)
    defaulted = copy(client, second, destination=None)  # DestinationRegionId left out
    assert "DestinationRegionId" not in ecs.calls_to("CopyImage")[-1].params
    assert (ecs.image(inside).region, ecs.image(defaulted).region) == (HZ, HZ)
    assert ecs.image(defaulted).source == (HZ, second)
    clock.sleep(100)
    assert ids(describe(client, HZ)) == {first, second, inside, defaulted}


def test_copying_an_image_already_being_copied_is_a_conflict(ecs, client, clock):
    source, other = seed_sources(ecs, 2)
    running = copy(client, source)
    error = expect_error("OperationDenied.ImageCopyConflict", 400, copy, client, source, destination=BJ)
    assert "cannot be copied concurrently" in error.message
    expect_error("OperationDenied.ImageCopyConflict", 400, copy, client, source)  # to the same region too
    assert IMAGE_ID.fullmatch(copy(client, other))  # another image of the region is no conflict
    assert [image.image_id for image in ecs.images(BJ)] == []
    assert [c.error_code for c in ecs.calls_to("CopyImage")] == [
        None,
        "OperationDenied.ImageCopyConflict",
        "OperationDenied.ImageCopyConflict",
        None,
    ]

    clock.sleep(100)  # once the copy is over, the image may be copied again
    assert ecs.image(running).status == "Available"
    again = copy(client, source, destination=BJ)
    cancel_copy(client, BJ, again)  # a cancelled copy is over too
    assert IMAGE_ID.fullmatch(copy(client, source, destination=EU))


def test_a_waiting_copy_counts_as_a_copy_in_progress(ecs, client):
    sources = seed_sources(ecs, 6)
    for source in sources[:5]:
        copy(client, source)
    waiting = copy(client, sources[5], destination=BJ)
    assert ecs.image(waiting).status == "Waiting"
    expect_error("OperationDenied.ImageCopyConflict", 400, copy, client, sources[5], destination=EU)
    expect_error("OperationDenied.ImageCopyConflict", 400, copy, client, sources[0], destination=EU)
    assert ecs.images(EU) == []


# --------------------------------------------------------------------------- idempotency, queue and quota


def test_client_token_returns_the_first_copy(ecs, client):
    source = ecs.seed_image(HZ)
    first = copy(client, source.image_id, client_token="token-1", destination_image_name="once")
    again = copy(client, source.image_id, client_token="token-1", destination_image_name="once")
    assert again == first  # no conflict with itself: the token answers first
    assert [image.image_id for image in ecs.images(SH)] == [first]

    cancel_copy(client, SH, first)
    assert copy(client, source.image_id, client_token="token-1", destination_image_name="once") == first
    assert ecs.images(SH) == []  # no second copy was started

    expect_error(
        "IdempotentParameterMismatch",
        400,
        copy,
        client,
        source.image_id,
        client_token="token-1",
        destination_image_name="other",
    )
    other = copy(client, source.image_id, client_token="token-2", destination_image_name="once")
    assert other != first


def test_client_token_is_recorded_only_when_the_copy_starts(ecs, client):
    source = ecs.seed_image(HZ)
    taken = ecs.seed_image(SH, name="taken")
    expect_error(
        "InvalidImageName.Duplicated",
        400,
        copy,
        client,
        source.image_id,
        client_token="t",
        destination_image_name="taken",
    )
    delete(client, SH, taken.image_id)
    retried = copy(client, source.image_id, client_token="t", destination_image_name="taken")
    assert ecs.image(retried).name == "taken" and ecs.image(retried).status == "Creating"


def test_sixth_copy_waits_and_starts_when_the_first_running_copy_ends(ecs, client, clock):
    sources = seed_sources(ecs, 6)
    t0 = clock.now()
    first = copy(client, sources[0])
    clock.sleep(10)
    for source in sources[1:5]:
        copy(client, source, destination=BJ)  # the five slots are per source region, whatever the destination
    clock.sleep(10)
    sixth = copy(client, sources[5], destination=EU, client_token="queued")
    image = one_image(client, EU, sixth)
    assert (image.status, image.progress, image.is_copied) == ("Waiting", "0%", True)
    assert ecs.image(sixth).copy_started_at is None and ecs.image(sixth).available_at is None
    assert copy(client, sources[5], destination=EU, client_token="queued") == sixth
    assert len(ecs.images(EU)) == 1
    assert ids(describe(client, EU)) == set()
    assert ids(describe(client, EU, status="Creating,Available")) == set()
    assert ids(describe(client, EU, status="Waiting")) == {sixth}
    # another source region has its own five slots
    other = copy(client, ecs.seed_image(SH).image_id, region=SH, destination=HZ)
    assert one_image(client, HZ, other).status == "Creating"

    clock.sleep(79.5)  # t0 + 99.5: every slot is still taken
    assert one_image(client, EU, sixth).status == "Waiting"
    clock.sleep(38)  # t0 + 137.5; the first copy ended at t0 + 100, the next four at t0 + 110
    assert one_image(client, SH, first).status == "Available"
    image = one_image(client, EU, sixth)
    assert (image.status, image.progress) == ("Creating", "37%")  # started at t0 + 100, not when looked at
    assert ecs.image(sixth).copy_started_at == t0 + 100
    assert ecs.image(sixth).available_at == t0 + 200
    clock.sleep(62.5)  # t0 + 200
    image = one_image(client, EU, sixth)
    assert (image.status, image.progress) == ("Available", "100%")
    assert image.creation_time == iso(t0 + 20)  # created when CopyImage accepted it


def test_waiting_copies_start_first_in_first_out(ecs, client, clock):
    sources = seed_sources(ecs, 7)
    t0 = clock.now()
    first = copy(client, sources[0])
    clock.sleep(10)
    second = copy(client, sources[1])
    clock.sleep(10)
    for source in sources[2:5]:
        copy(client, source)
    early = copy(client, sources[5], destination_image_name="early")
    late = copy(client, sources[6], destination_image_name="late")  # at the same virtual time
    assert [ecs.image(i).status for i in (early, late)] == ["Waiting", "Waiting"]

    clock.sleep(85)  # t0 + 105: the first copy ended at t0 + 100
    assert ids(describe(client, SH, status="Waiting")) == {late}
    assert ecs.image(early).copy_started_at == t0 + 100
    clock.sleep(10.5)  # t0 + 115.5: the second ended at t0 + 110
    assert ecs.image(late).copy_started_at == ecs.image(second).copy_started_at + 100 == t0 + 110
    assert [one_image(client, SH, i).progress for i in (early, late)] == ["15%", "5%"]
    assert one_image(client, SH, first).status == "Available"


def test_cancelling_a_running_copy_starts_the_next_at_the_cancel_time(ecs, client, clock):
    sources = seed_sources(ecs, 6)
    running = [copy(client, source) for source in sources[:5]]
    waiting = copy(client, sources[5], destination=BJ)
    clock.sleep(30.5)
    cancelled_at = clock.now()
    cancel_copy(client, SH, running[2])
    clock.sleep(40.25)  # looked at only now
    image = one_image(client, BJ, waiting)
    assert (image.status, image.progress) == ("Creating", "40%")
    assert ecs.image(waiting).copy_started_at == cancelled_at
    assert ecs.image(running[2]) is None


def test_cancelling_a_waiting_copy_takes_it_out_of_the_queue(ecs, client, clock):
    sources = seed_sources(ecs, 7)
    t0 = clock.now()
    for source in sources[:5]:
        copy(client, source)
    dropped = copy(client, sources[5], destination=BJ)
    kept = copy(client, sources[6], destination=BJ)
    clock.sleep(50)
    cancel_copy(client, BJ, dropped)
    assert ecs.image(dropped) is None
    assert one_image(client, BJ, kept).status == "Waiting"  # a Waiting copy held no slot
    expect_error("InvalidImageId.NotFound", 404, cancel_copy, client, BJ, dropped)

    clock.sleep(50.5)  # t0 + 100.5: the five ended at t0 + 100
    assert [image.image_id for image in ecs.images(BJ)] == [kept]
    assert (ecs.image(kept).status, ecs.image(kept).copy_started_at) == ("Creating", t0 + 100)


def test_delete_image_refuses_a_waiting_copy(ecs, client):
    sources = seed_sources(ecs, 6)
    for source in sources[:5]:
        copy(client, source)
    waiting = copy(client, sources[5], destination=BJ)
    error = expect_error("OperationDenied.ImageCopying", 403, delete, client, BJ, waiting)
    assert "CancelCopyImage" in error.message
    assert ecs.image(waiting).status == "Waiting"


def test_copy_into_a_full_region_is_refused_with_quota_exceed(ecs, client, clock):
    assert ecs.image_quota == 100
    first, second, third = seed_sources(ecs, 3)
    ecs.seed_image(SH, name="ready")
    ecs.seed_image(SH, name="broken", status="CreateFailed")  # any status counts
    ecs.seed_image(SH, name="centos_7_9_x64.vhd", owner_alias="system")  # a system image does not
    ecs.image_quota = 3
    running = copy(client, first)  # the third custom image of cn-shanghai
    error = expect_error("QuotaExceed.Image", 403, copy, client, second)
    assert "The maximum number of custom images in the region has been reached." in error.message
    # validation comes first
    expect_error("InvalidImageName.Malformed", 400, copy, client, second, destination_image_name="9lives")
    assert IMAGE_ID.fullmatch(copy(client, third, destination=BJ))  # the quota is per region

    clock.sleep(100)  # a finished copy still counts
    expect_error("QuotaExceed.Image", 403, copy, client, second)
    delete(client, SH, running)
    assert IMAGE_ID.fullmatch(copy(client, second))
    assert len(ecs.images(SH)) == 4


def test_dry_run_validates_without_copying(ecs, client):
    source = ecs.seed_image(HZ)
    expect_error("DryRunOperation", 400, copy, client, source.image_id, dry_run=True)
    expect_error(
        "InvalidImageName.Malformed", 400, copy, client, source.image_id, dry_run=True, destination_image_name="x"
    )
    assert ecs.images(SH) == []


# --------------------------------------------------------------------------- CopyImage validation


COPY_ERRORS = [
    ("unknown destination", {"destination_region_id": NOWHERE}, "DestinationRegion.NotFound", 400),
    ("no image id", {"image_id": None}, "MissingParameter", 400),
    ("unknown image", {"image_id": "m-00000000000000000000"}, "InvalidImageId.NotFound", 404),
    ("image in another region", {"image": "elsewhere"}, "InvalidImageId.NotFound", 404),
    ("system image", {"image": "system"}, "InvalidImageId.NotFound", 404),
    ("source still creating", {"image": "busy"}, "IncorrectImageStatus", 400),
    ("source deprecated", {"image": "deprecated"}, "IncorrectImageStatus", 400),
    ("name starts with a digit", {"destination_image_name": "1golden"}, "InvalidImageName.Malformed", 400),
    ("name too short", {"destination_image_name": "g"}, "InvalidImageName.Malformed", 400),
    ("name too long", {"destination_image_name": "g" * 129}, "InvalidImageName.Malformed", 400),
    ("name with a space", {"destination_image_name": "golden copy"}, "InvalidImageName.Malformed", 400),
    ("name with a slash", {"destination_image_name": "golden/copy"}, "InvalidImageName.Malformed", 400),
    ("name starts with http://", {"destination_image_name": "http://golden"}, "InvalidImageName.Malformed", 400),
    ("name starts with aliyun", {"destination_image_name": "aliyun-golden"}, "InvalidImageName.Malformed", 400),
    ("name starts with acs:", {"destination_image_name": "acs:golden"}, "InvalidImageName.Malformed", 400),
    ("name taken in destination", {"destination_image_name": "taken"}, "InvalidImageName.Duplicated", 400),
    ("description too short", {"destination_description": "d"}, "InvalidDescription.Malformed", 400),
    ("description too long", {"destination_description": "d" * 257}, "InvalidDescription.Malformed", 400),
    ("description is a URL", {"destination_description": "https://example.com"}, "InvalidDescription.Malformed", 400),
    ("21 tags", {"tag": [Tag(key=f"k{i}", value="v") for i in range(21)]}, "InvalidTagCount", 400),
    ("tag key starts with aliyun", {"tag": [Tag(key="aliyun:x", value="v")]}, "InvalidTagKey.Malformed", 400),
    ("tag key starts with acs:", {"tag": [Tag(key="acs:x", value="v")]}, "InvalidTagKey.Malformed", 400),
    ("tag key holds a URL", {"tag": [Tag(key="see https://x", value="v")]}, "InvalidTagKey.Malformed", 400),
    ("tag key empty", {"tag": [Tag(key="", value="v")]}, "InvalidTagKey.Malformed", 400),
    ("tag key too long", {"tag": [Tag(key="k" * 129, value="v")]}, "InvalidTagKey.Malformed", 400),
    ("tag value starts with acs:", {"tag": [Tag(key="k", value="acs:v")]}, "InvalidTagValue.Malformed", 400),
    ("tag value too long", {"tag": [Tag(key="k", value="v" * 129)]}, "InvalidTagValue.Malformed", 400),
    ("KMS key, no encryption", {"kmskey_id": DEFAULT_KMS_KEY_ID}, "InvalidParameter.EncryptedIllegal", 400),
    (
        "KMS key, Encrypted=false",
        {"kmskey_id": DEFAULT_KMS_KEY_ID, "encrypted": False},
        "InvalidParameter.EncryptedIllegal",
        400,
    ),
    (
        "unknown KMS key",
        {"encrypted": True, "kmskey_id": "key-hzz99999999999999999"},
        "InvalidParameter.KMSKeyId.NotFound",
        404,
    ),
    ("malformed resource group", {"resource_group_id": "default"}, "InvalidResourceGroupId.Malformed", 400),
    ("client token too long", {"client_token": "t" * 65}, "InvalidClientToken.Malformed", 400),
    ("client token not ASCII", {"client_token": "令牌"}, "InvalidClientToken.Malformed", 400),
    ("Encrypted not a boolean", {"encrypted": "maybe"}, "InvalidParameter", 400),
]


def seed_copy_world(ecs: EcsStandIn) -> dict[str, str]:
    return {
        "golden": ecs.seed_image(HZ, name="golden").image_id,
        "spare": ecs.seed_image(HZ, name="spare").image_id,
        "busy": ecs.seed_image(HZ, name="busy", status="Creating").image_id,
        "deprecated": ecs.seed_image(HZ, name="old", status="Deprecated").image_id,
        "system": ecs.seed_image(HZ, name="ubuntu_22_04_x64_20G_alibase.vhd", owner_alias="system").image_id,
        "elsewhere": ecs.seed_image(BJ, name="elsewhere").image_id,
        "taken": ecs.seed_image(SH, name="taken").image_id,
    }


@pytest.fixture
def copy_world(ecs: EcsStandIn) -> dict[str, str]:
    return seed_copy_world(ecs)


@pytest.fixture(scope="module")
def refusing_world(stopping: list[threading.Thread]) -> Iterator[tuple[EcsStandIn, Client, dict[str, str]]]:
    """One stand-in for every refused CopyImage: a refusal changes nothing (each case checks that it did not)."""
    clock, store = VirtualClock(), CredentialStore()
    stand_in = EcsStandIn(clock, store, copy_seconds=100).start()
    yield stand_in, make_client(stand_in, store.add_access_key()), seed_copy_world(stand_in)
    stopping.append(threading.Thread(target=stand_in.stop))
    stopping[-1].start()
    clock.close()


def copy_request(world: dict[str, str], overrides: dict) -> ecs_models.CopyImageRequest:
    fields = {"region_id": HZ, "image_id": world["golden"], "destination_region_id": SH, **overrides}
    if "image" in fields:
        fields["image_id"] = world[fields.pop("image")]
    return ecs_models.CopyImageRequest(**fields)


@pytest.mark.parametrize(("overrides", "code", "status"), [c[1:] for c in COPY_ERRORS], ids=[c[0] for c in COPY_ERRORS])
def test_copy_image_refuses_bad_requests(refusing_world, overrides, code, status):
    ecs, client, copy_world = refusing_world
    expect_error(code, status, client.copy_image_with_options, copy_request(copy_world, overrides), RUNTIME)
    assert [image.image_id for image in ecs.images(SH)] == [copy_world["taken"]]
    assert len(ecs.images(HZ)) == 5 and ecs.image(copy_world["busy"]).status == "Creating"
    assert not any(image.is_copied for region in DEFAULT_REGIONS for image in ecs.images(region))
    assert (ecs.calls[-1].status, ecs.calls[-1].error_code) == (status, code)


@pytest.mark.parametrize("name", ["金色镜像", "Golden.v1:build_7-final", "g" * 128, "镜像"])
def test_copy_image_accepts_valid_names(ecs, client, copy_world, name):
    response = client.copy_image_with_options(copy_request(copy_world, {"destination_image_name": name}), RUNTIME)
    assert ecs.image(response.body.image_id).name == name


def test_encrypted_copy_with_a_known_kms_key(ecs, client, copy_world):
    request = copy_request(copy_world, {"encrypted": True, "kmskey_id": DEFAULT_KMS_KEY_ID})
    copy_id = client.copy_image_with_options(request, RUNTIME).body.image_id
    image = ecs.image(copy_id)
    assert (image.encrypted, image.kms_key_id) == (True, DEFAULT_KMS_KEY_ID)
    ecs.kms_keys.add("key-hzz11111111111111111")
    request = copy_request(
        copy_world,
        {"image": "spare", "encrypted": True, "kmskey_id": "key-hzz11111111111111111", "destination_region_id": BJ},
    )
    assert (
        ecs.image(client.copy_image_with_options(request, RUNTIME).body.image_id).kms_key_id
        == "key-hzz11111111111111111"
    )


# --------------------------------------------------------------------------- regions


def test_describe_regions_lists_the_served_regions(store, key, clock):
    with EcsStandIn(clock, store, regions=(HZ, SH)) as ecs:
        body = make_client(ecs, key).describe_regions_with_options(ecs_models.DescribeRegionsRequest(), RUNTIME).body
        assert [(r.region_id, r.region_endpoint) for r in body.regions.region] == [
            (HZ, "ecs.cn-hangzhou.aliyuncs.com"),
            (SH, "ecs.cn-shanghai.aliyuncs.com"),
        ]
        assert body.request_id
        assert [(c.action, c.status) for c in ecs.calls] == [("DescribeRegions", 200)]


def test_the_default_regions_are_all_served(ecs, client):
    body = client.describe_regions_with_options(ecs_models.DescribeRegionsRequest(), RUNTIME).body
    assert [r.region_id for r in body.regions.region] == list(DEFAULT_REGIONS)
    assert all(r.region_endpoint == f"ecs.{r.region_id}.aliyuncs.com" for r in body.regions.region)


def test_a_region_not_served_gets_no_answer_at_all(ecs, client, key):
    source = ecs.seed_image(HZ)
    attempts = [
        lambda: describe(client, NOWHERE),
        lambda: copy(client, source.image_id, region=NOWHERE),
        lambda: delete(client, NOWHERE, source.image_id),
    ]
    for attempt in attempts:
        with pytest.raises(UnretryableException) as info:  # no HTTP status, no error code: the connection closed
            attempt()
        assert "RemoteDisconnected" in str(info.value.inner_exception)
    assert [(c.action, c.region, c.status, c.error_code, c.access_key_id) for c in ecs.calls] == [
        ("DescribeImages", NOWHERE, 0, "ConnectionDropped", key.id),
        ("CopyImage", NOWHERE, 0, "ConnectionDropped", key.id),
        ("DeleteImage", NOWHERE, 0, "ConnectionDropped", key.id),
    ]
    assert ecs.image(source.image_id) is not None
    assert not any(image.is_copied for region in DEFAULT_REGIONS for image in ecs.images(region))
    describe(client, HZ)  # the stand-in still answers for the regions it serves
    assert ecs.calls[-1].status == 200


def test_a_region_not_served_by_a_smaller_stand_in_is_dropped_too(store, key, clock):
    with EcsStandIn(clock, store, regions=(HZ, SH)) as ecs:
        client = make_client(ecs, key)
        source = ecs.seed_image(HZ)
        with pytest.raises(UnretryableException):
            describe(client, BJ)
        expect_error("DestinationRegion.NotFound", 400, copy, client, source.image_id, destination=BJ)
        assert [(c.status, c.error_code) for c in ecs.calls] == [
            (0, "ConnectionDropped"),
            (400, "DestinationRegion.NotFound"),
        ]


# --------------------------------------------------------------------------- DescribeImages


def test_describe_images_filters_and_pages(ecs, client, clock):
    alpha = ecs.seed_image(HZ, name="alpha", tags={"env": "prod", "team": "x"}, resource_group_id="rg-one", in_use=True)
    clock.sleep(1)
    beta = ecs.seed_image(HZ, name="beta", tags={"env": "prod"})
    clock.sleep(1)
    gamma = ecs.seed_image(HZ, name="gamma", tags={"env": "dev"})
    clock.sleep(1)
    system = ecs.seed_image(HZ, name="centos_7_9_x64.vhd", owner_alias="system")
    DTag = ecs_models.DescribeImagesRequestTag

    assert ids(describe(client, HZ, tag=[DTag(key="env", value="prod")])) == {alpha.image_id, beta.image_id}
    both = [DTag(key="env", value="prod"), DTag(key="team", value="x")]
    assert ids(describe(client, HZ, tag=both)) == {alpha.image_id}
    assert ids(describe(client, HZ, tag=[DTag(key="team")])) == {alpha.image_id}
    assert ids(describe(client, HZ, tag=[DTag(key="env", value="test")])) == set()
    assert ids(describe(client, HZ, image_id=f"{alpha.image_id},{gamma.image_id}")) == {alpha.image_id, gamma.image_id}
    assert ids(describe(client, HZ, image_owner_alias="system")) == {system.image_id}
    assert ids(describe(client, HZ, image_owner_alias="self")) == {alpha.image_id, beta.image_id, gamma.image_id}
    assert ids(describe(client, HZ, resource_group_id="rg-one")) == {alpha.image_id}
    assert ids(describe(client, HZ, image_name="beta")) == {beta.image_id}
    assert ids(describe(client, HZ, snapshot_id=gamma.snapshot_ids[0])) == {gamma.image_id}
    assert ids(describe(client, SH)) == set()

    first = describe(client, HZ, page_size=3)
    assert (first.total_count, first.page_number, first.page_size, first.region_id) == (4, 1, 3, HZ)
    assert [i.image_id for i in first.images.image] == [system.image_id, gamma.image_id, beta.image_id]  # newest first
    second = describe(client, HZ, page_size=3, page_number=2)
    assert [i.image_id for i in second.images.image] == [alpha.image_id]
    assert describe(client, HZ).page_size == 10

    image = describe(client, HZ, image_id=alpha.image_id).images.image[0]
    assert image.usage == "instance"
    assert image.creation_time == iso(alpha.created_at)
    assert alpha.created_at == beta.created_at - 1 == gamma.created_at - 2  # virtual seconds, exactly
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", image.creation_time)
    assert image.disk_device_mappings.disk_device_mapping[0].snapshot_id == alpha.snapshot_ids[0]

    expect_error("InvalidParameter", 400, describe, client, HZ, page_size=101)
    expect_error("InvalidParameter", 400, describe, client, HZ, page_number=0)


# --------------------------------------------------------------------------- cancel and delete


def test_cancel_copy_removes_the_copy_but_not_after_completion(ecs, client, clock):
    source = ecs.seed_image(HZ, snapshot_count=2)
    cancelled = copy(client, source.image_id, destination_image_name="cancelled")
    clock.sleep(50)
    cancel_copy(client, SH, cancelled)
    assert ecs.image(cancelled) is None
    clock.sleep(100)
    assert ecs.snapshots(SH) == []
    expect_error("InvalidImageId.NotFound", 404, cancel_copy, client, SH, cancelled)

    done = copy(client, source.image_id, destination_image_name="done")
    clock.sleep(100)
    error = expect_error("IncorrectImageStatus", 400, cancel_copy, client, SH, done)
    assert "The image copy has completed." in error.message
    assert ecs.image(done).status == "Available"
    # cancelling needs the copy's own region
    running = copy(client, source.image_id, destination_image_name="running")
    expect_error("InvalidImageId.NotFound", 404, cancel_copy, client, HZ, running)
    # an image that is no copy cannot be cancelled
    expect_error("ImageCreatedNotFromCopy", 400, cancel_copy, client, HZ, source.image_id)
    busy = ecs.seed_image(HZ, status="Creating")
    expect_error("ImageCreatedNotFromCopy", 400, cancel_copy, client, HZ, busy.image_id)
    assert ecs.image(busy.image_id).status == "Creating"


def test_delete_image_rules(ecs, client, clock):
    source = ecs.seed_image(HZ, snapshot_count=2)
    copy_id = copy(client, source.image_id)
    expect_error("OperationDenied.ImageCopying", 403, delete, client, SH, copy_id)
    clock.sleep(100)
    copy_snapshots = ecs.image(copy_id).snapshot_ids
    delete(client, SH, copy_id)
    assert ecs.image(copy_id) is None
    assert ids(describe(client, SH)) == set()  # gone from the listing at once by default
    assert sorted(ecs.snapshots(SH)) == sorted(copy_snapshots)  # the snapshots stay

    busy = ecs.seed_image(HZ, status="Creating")
    expect_error("OperationDenied.ImageCopying", 403, delete, client, HZ, busy.image_id)

    used = ecs.seed_image(HZ, in_use=True)
    expect_error("ImageUsingByInstance", 403, delete, client, HZ, used.image_id)
    expect_error("ImageUsingByInstance", 403, delete, client, HZ, used.image_id, force=False)
    delete(client, HZ, used.image_id, force=True)
    assert ecs.image(used.image_id) is None

    system = ecs.seed_image(HZ, name="debian_12_x64.vhd", owner_alias="system")
    expect_error("OperationDenied", 403, delete, client, HZ, system.image_id)
    assert ecs.image(system.image_id) is not None


def test_deleting_a_missing_image_is_not_found_unless_switched_to_ignored(ecs, client):
    image = ecs.seed_image(HZ)
    delete(client, HZ, image.image_id)
    error = expect_error("InvalidImageId.NotFound", 404, delete, client, HZ, image.image_id)  # deleted already
    assert "does not exist" in error.message
    expect_error("InvalidImageId.NotFound", 404, delete, client, HZ, "m-00000000000000000000")
    expect_error("InvalidImageId.NotFound", 404, delete, client, SH, ecs.seed_image(BJ).image_id)  # another region's

    ecs.missing_image_delete_ignored = True
    delete(client, HZ, image.image_id)
    delete(client, HZ, "m-00000000000000000000")
    assert [(c.status, c.error_code) for c in ecs.calls_to("DeleteImage")] == [
        (200, None),
        (404, "InvalidImageId.NotFound"),
        (404, "InvalidImageId.NotFound"),
        (404, "InvalidImageId.NotFound"),
        (200, None),
        (200, None),
    ]


def test_a_deleted_image_can_stay_listed_for_a_while(ecs, client, clock):
    ecs.deleted_listing_seconds = 30
    image = ecs.seed_image(HZ, name="leaving")
    kept = ecs.seed_image(HZ, name="staying")
    delete(client, HZ, image.image_id)
    assert ecs.image(image.image_id) is None  # deleted, as far as the stand-in's state goes
    assert [i.image_id for i in ecs.images(HZ)] == [kept.image_id]
    assert ids(describe(client, HZ)) == {image.image_id, kept.image_id}
    listed = describe(client, HZ, image_id=image.image_id).images.image[0]
    assert (listed.status, listed.image_name) == ("Available", "leaving")

    clock.sleep(29.75)
    assert ids(describe(client, HZ)) == {image.image_id, kept.image_id}
    delete(client, HZ, image.image_id)  # while it is still listed, deleting it again succeeds
    clock.sleep(0.25)
    # gone now, even though nobody listed the region in between
    expect_error("InvalidImageId.NotFound", 404, delete, client, HZ, image.image_id)
    assert ids(describe(client, HZ)) == {kept.image_id}


def test_delete_snapshot_only_once_its_image_is_gone(ecs, client):
    image = ecs.seed_image(BJ)
    snapshot_id = image.snapshot_ids[0]
    error = expect_error("SnapshotCreatedImage", 403, delete_snapshot, client, snapshot_id)
    assert "delete the images first" in error.message
    assert ecs.calls_to("DeleteSnapshot")[-1].region == BJ  # found without a RegionId

    delete(client, BJ, image.image_id)
    delete_snapshot(client, snapshot_id)  # released at once by default
    assert ecs.snapshots(BJ) == []
    expect_error("InvalidSnapshotId.NotFound", 404, delete_snapshot, client, snapshot_id)


def test_a_snapshot_is_released_only_a_while_after_its_image_is_deleted(ecs, client, clock):
    ecs.snapshot_release_seconds = 60
    image = ecs.seed_image(BJ, snapshot_count=2)
    first, second = image.snapshot_ids
    clock.sleep(500)  # the delay counts from the deletion, not from the image's creation
    delete(client, BJ, image.image_id)
    expect_error("SnapshotCreatedImage", 403, delete_snapshot, client, first)
    clock.sleep(59.75)
    expect_error("SnapshotCreatedImage", 403, delete_snapshot, client, second)
    assert sorted(ecs.snapshots(BJ)) == sorted([first, second])
    clock.sleep(0.25)
    delete_snapshot(client, first)
    delete_snapshot(client, second)
    assert ecs.snapshots(BJ) == []


# --------------------------------------------------------------------------- attributes, tags, resource groups


def test_modify_image_attribute(ecs, client):
    image = ecs.seed_image(HZ, name="before")
    ecs.seed_image(HZ, name="neighbour")
    modify(client, HZ, image.image_id, image_name="after", description="renamed by the tests")
    assert (ecs.image(image.image_id).name, ecs.image(image.image_id).description) == ("after", "renamed by the tests")
    modify(client, HZ, image.image_id, image_name="after")  # its own name is no duplicate
    expect_error("InvalidImageName.Duplicated", 400, modify, client, HZ, image.image_id, image_name="neighbour")
    expect_error("InvalidImageName.Malformed", 400, modify, client, HZ, image.image_id, image_name="_bad")
    expect_error("InvalidDescription.Malformed", 400, modify, client, HZ, image.image_id, description="http://x.y")
    expect_error("InvalidImageId.NotFound", 404, modify, client, SH, image.image_id, image_name="elsewhere")
    system = ecs.seed_image(HZ, name="debian_12_x64.vhd", owner_alias="system")
    expect_error("OperationDenied", 403, modify, client, HZ, system.image_id, description="mine now")
    assert ecs.image(image.image_id).name == "after"


def test_deprecating_an_image_hides_it_until_it_is_made_available_again(ecs, client, clock):
    image = ecs.seed_image(HZ, name="golden")
    set_status(client, HZ, image.image_id, "Deprecated")
    assert ecs.image(image.image_id).status == "Deprecated"
    assert ids(describe(client, HZ)) == set()  # the default Status is Available
    assert ids(describe(client, HZ, status="Deprecated")) == {image.image_id}
    assert one_image(client, HZ, image.image_id).status == "Deprecated"
    expect_error("IncorrectImageStatus", 400, copy, client, image.image_id)  # no copies of a deprecated image
    expect_error("ImageStatus.NotAvailable", 403, set_status, client, HZ, image.image_id, "Deprecated")
    expect_error("InvalidParameter", 400, set_status, client, HZ, image.image_id, "Retired")
    assert ecs.image(image.image_id).status == "Deprecated"

    set_status(client, HZ, image.image_id, "Available")
    assert ids(describe(client, HZ)) == {image.image_id}
    copy_id = copy(client, image.image_id)

    # a copy still in progress can be neither deprecated nor made available
    expect_error("ImageStatus.NotAvailable", 403, set_status, client, SH, copy_id, "Deprecated")
    expect_error("ImageStatus.NotDeprecated", 403, set_status, client, SH, copy_id, "Available")
    assert ecs.image(copy_id).status == "Creating"
    clock.sleep(100)
    set_status(client, SH, copy_id, "Deprecated")
    assert ids(describe(client, SH, status="Available,Deprecated")) == {copy_id}
    delete(client, SH, copy_id)  # a deprecated image can still be deleted
    assert ecs.image(copy_id) is None


def test_tag_and_untag_resources(ecs, client):
    first = ecs.seed_image(HZ, tags={"a": "1"})
    second = ecs.seed_image(HZ)
    tag(client, [first.image_id, second.image_id], {"b": "2", "a": "overwritten"})
    assert ecs.image(first.image_id).tags == {"a": "overwritten", "b": "2"}
    assert list(ecs.image(first.image_id).tags) == ["a", "b"]
    assert ecs.image(second.image_id).tags == {"b": "2", "a": "overwritten"}

    eighteen = {f"k{i}": "v" for i in range(18)}
    tag(client, [first.image_id], eighteen)  # 20 in all
    expect_error("InvalidTagCount", 400, tag, client, [first.image_id], {"one-too-many": "v"})
    assert len(ecs.image(first.image_id).tags) == 20
    expect_error("InvalidTagKey.Malformed", 400, tag, client, [second.image_id], {"acs:reserved": "v"})
    expect_error("InvalidTagValue.Malformed", 400, tag, client, [second.image_id], {"k": "acs:reserved"})
    expect_error(
        "InvalidResourceType.NotFound", 404, tag, client, [second.image_id], {"k": "v"}, resource_type="instance"
    )
    assert "k" not in ecs.image(second.image_id).tags
    # a missing resource fails the whole request
    expect_error(
        "InvalidResourceId.NotFound", 404, tag, client, [second.image_id, "m-00000000000000000000"], {"new": "v"}
    )
    assert "new" not in ecs.image(second.image_id).tags
    expect_error("InvalidResourceId.NotFound", 404, tag, client, [second.image_id], {"k": "v"}, region=SH)

    untag(client, [first.image_id], keys=["a", "absent"])
    assert "a" not in ecs.image(first.image_id).tags and len(ecs.image(first.image_id).tags) == 19
    untag(client, [first.image_id, second.image_id], all_tags=True)
    assert ecs.image(first.image_id).tags == {} and ecs.image(second.image_id).tags == {}
    expect_error("InvalidResourceId.NotFound", 404, untag, client, ["m-00000000000000000000"], keys=["a"])


def test_tagging_a_copy_in_progress_depends_on_the_switch(ecs, client, clock):
    sources = seed_sources(ecs, 7)
    ready = ecs.seed_image(SH, name="ready")
    creating = copy(client, sources[0])
    assert ecs.tag_in_progress_refused is False
    tag(client, [creating], {"a": "1"}, region=SH)  # by default a copy in progress takes tags
    assert ecs.image(creating).tags == {"a": "1"}

    for source in sources[1:5]:
        copy(client, source)
    waiting = copy(client, sources[5])
    assert (ecs.image(creating).status, ecs.image(waiting).status) == ("Creating", "Waiting")
    ecs.tag_in_progress_refused = True
    for in_progress in (creating, waiting):
        error = expect_error(
            "InvalidStatus.ImageIsCreating", 403, tag, client, [ready.image_id, in_progress], {"b": "2"}, region=SH
        )
        assert "creating" in error.message
    assert ecs.image(ready.image_id).tags == {}  # the whole request failed
    assert ecs.image(creating).tags == {"a": "1"}
    tag(client, [ready.image_id], {"b": "2"}, region=SH)  # an Available image is fine

    clock.sleep(100)  # the first five end; the waiting one starts
    tag(client, [creating], {"b": "2"}, region=SH)
    assert ecs.image(creating).tags == {"a": "1", "b": "2"}
    expect_error("InvalidStatus.ImageIsCreating", 403, tag, client, [waiting], {"b": "2"}, region=SH)
    clock.sleep(100)
    tag(client, [waiting], {"b": "2"}, region=SH)
    assert ecs.image(waiting).tags == {"b": "2"}


def test_join_resource_group(ecs, client):
    image = ecs.seed_image(HZ)

    def join(resource_id: str, group: str, resource_type: str = "image") -> None:
        request = ecs_models.JoinResourceGroupRequest(
            region_id=HZ, resource_id=resource_id, resource_type=resource_type, resource_group_id=group
        )
        client.join_resource_group_with_options(request, RUNTIME)

    join(image.image_id, "rg-aek2abcdef")
    assert ecs.image(image.image_id).resource_group_id == "rg-aek2abcdef"
    expect_error("InvalidResourceGroupId.Malformed", 400, join, image.image_id, "my-group")
    expect_error("InvalidResourceType.NotFound", 404, join, image.image_id, "rg-x1", resource_type="disk")
    expect_error("InvalidResourceId.NotFound", 404, join, "m-00000000000000000000", "rg-x1")
    assert ecs.image(image.image_id).resource_group_id == "rg-aek2abcdef"


def test_unknown_action_and_missing_parameters(ecs, client):
    expect_error(
        "InvalidAction.NotFound",
        404,
        client.describe_instances_with_options,
        ecs_models.DescribeInstancesRequest(region_id=HZ),
        RUNTIME,
    )
    request = ecs_models.CancelCopyImageRequest(region_id=SH)
    error = expect_error("MissingParameter", 400, client.cancel_copy_image_with_options, request, RUNTIME)
    assert '"ImageId"' in error.message
    error = expect_error("MissingParameter", 400, describe, client, None)
    assert '"RegionId"' in error.message


# --------------------------------------------------------------------------- fault injection


def test_throttling_runs_out_after_its_count(ecs, client):
    ecs.faults.add("DescribeImages", "throttle", count=2)
    for _ in range(2):
        error = expect_error("Throttling", 400, describe, client, HZ)
        assert "throttling" in error.message
    describe(client, HZ)
    assert [c.error_code for c in ecs.calls_to("DescribeImages")] == ["Throttling", "Throttling", None]
    assert [c.status for c in ecs.calls_to("DescribeImages")] == [400, 400, 200]


def test_conflict_faults(ecs, client):
    source = ecs.seed_image(HZ)
    ecs.faults.add("CopyImage", "conflict")
    ecs.faults.add("CopyImage", "operation_conflict")
    error = expect_error("InvalidOperation.Conflict", 409, copy, client, source.image_id)
    assert "conflict with a previous request" in error.message
    error = expect_error("Operation.Conflict", 403, copy, client, source.image_id)
    assert "retry later" in error.message
    assert ecs.images(SH) == []  # neither faulted call did anything
    assert IMAGE_ID.fullmatch(copy(client, source.image_id))
    assert [(c.status, c.error_code) for c in ecs.calls_to("CopyImage")] == [
        (409, "InvalidOperation.Conflict"),
        (403, "Operation.Conflict"),
        (200, None),
    ]


def test_faults_target_one_action(ecs, client):
    ecs.faults.add("CopyImage", "server_error")
    describe(client, HZ)  # another action is untouched
    expect_error("InternalError", 500, copy, client, ecs.seed_image(HZ).image_id)
    assert ecs.images(SH) == []  # the faulted call did nothing
    ecs.faults.add("CopyImage", "unavailable")
    expect_error("ServiceUnavailable", 503, copy, client, ecs.images(HZ)[0].image_id)
    assert IMAGE_ID.fullmatch(copy(client, ecs.images(HZ)[0].image_id))


def test_fault_for_any_action_forever_until_cleared(ecs, client):
    ecs.faults.add(None, "unavailable", count=None)
    expect_error("ServiceUnavailable", 503, describe, client, HZ)
    expect_error("ServiceUnavailable", 503, delete, client, HZ, "m-00000000000000000000")
    expect_error("ServiceUnavailable", 503, describe, client, SH)
    ecs.faults.clear()
    describe(client, HZ)
    assert ecs.faults.pending() == []


def test_malformed_fault_answers_200_with_nothing_in_it(ecs, client):
    source = ecs.seed_image(HZ)
    ecs.faults.add("CopyImage", "malformed")
    assert copy(client, source.image_id) is None
    assert ecs.images(SH) == []
    assert (ecs.calls[-1].status, ecs.calls[-1].error_code) == (200, None)
    assert IMAGE_ID.fullmatch(copy(client, source.image_id))


def test_latency_pauses_the_calling_actor_in_virtual_time(ecs, client, clock):
    image = ecs.seed_image(HZ)
    ecs.faults.add("DescribeImages", "latency", seconds=30)
    t0 = clock.now()
    assert clock.call(lambda: ids(describe(client, HZ)), "caller") == {image.image_id}
    assert clock.now() == t0 + 30
    assert ecs.calls_to("DescribeImages")[-1].at == t0  # it arrived at once; the answer took 30 s
    clock.call(lambda: describe(client, HZ), "caller")  # the fault was used up
    assert clock.now() == t0 + 30

    # a request from outside the simulation is served at once: nobody is there to wait
    ecs.faults.add("DescribeImages", "latency", seconds=30)
    assert ids(describe(client, HZ)) == {image.image_id}
    assert clock.now() == t0 + 30 and ecs.faults.pending() == []

    ecs.latency_seconds = 2.5  # the network's own latency, on every request of an actor
    clock.call(lambda: (describe(client, HZ), describe(client, SH)), "caller")
    assert clock.now() == t0 + 35


def test_latency_and_error_faults_combine(ecs, client, clock):
    ecs.faults.add("DescribeImages", "latency", seconds=12)
    ecs.faults.add("DescribeImages", "throttle")
    t0 = clock.now()

    def caller() -> str:
        with pytest.raises(ClientException) as info:
            describe(client, HZ)
        return info.value.code

    assert clock.call(caller, "caller") == "Throttling"
    assert clock.now() == t0 + 12


def test_unknown_fault_kind_is_refused(ecs):
    with pytest.raises(ValueError):
        ecs.faults.add("CopyImage", "explode")
    with pytest.raises(ValueError):
        ecs.faults.add("CopyImage", "throttle", count=0)


# --------------------------------------------------------------------------- call record


def test_calls_are_recorded_with_decoded_parameters(ecs, client, clock, key):
    source = ecs.seed_image(HZ)
    clock.sleep(42)
    copy(client, source.image_id, destination_image_name="名字", encrypted=True, tag=[Tag(key="a b", value="c/d")])
    [call] = ecs.calls_to("CopyImage")
    assert call.action == "CopyImage" and call.region == HZ and call.at == clock.now() == source.created_at + 42
    assert (call.status, call.error_code, call.access_key_id) == (200, None, key.id)
    assert call.params["DestinationImageName"] == "名字"
    assert call.params["Tag.1.Key"] == "a b" and call.params["Tag.1.Value"] == "c/d"
    assert call.params["Encrypted"] == "True"  # the Python SDK spells booleans the Python way

    expect_error("InvalidImageId.NotFound", 404, copy, client, "m-00000000000000000000")
    assert (ecs.calls[-1].status, ecs.calls[-1].error_code) == (404, "InvalidImageId.NotFound")
    ecs.reset_calls()
    assert ecs.calls == [] and ecs.calls_to("CopyImage") == []


# --------------------------------------------------------------------------- signatures


def test_sts_credentials_are_accepted(ecs, store):
    sts = store.issue_sts()
    describe(make_client(ecs, sts), HZ)
    assert ecs.calls[-1].access_key_id == sts.id and ecs.calls[-1].status == 200


@pytest.mark.parametrize(
    ("tamper", "code", "status"),
    [
        ("wrong secret", "SignatureDoesNotMatch", 400),
        ("unknown key", "InvalidAccessKeyId.NotFound", 404),
        ("revoked key", "InvalidAccessKeyId.NotFound", 404),
        ("wrong STS token", "InvalidSecurityToken.Mismatch", 400),
        ("missing STS token", "MissingSecurityToken", 400),
    ],
)
def test_bad_credentials_are_refused(ecs, store, key, tamper, code, status):
    sts = store.issue_sts()
    source = ecs.seed_image(HZ)
    client = {
        "wrong secret": lambda: make_client(ecs, key, secret="not-the-secret"),
        "unknown key": lambda: make_client(ecs, key, key_id="LTAI0000000000000000"),
        "revoked key": lambda: (store.revoke(key.id), make_client(ecs, key))[1],
        "wrong STS token": lambda: make_client(ecs, sts, token="CAISnot-the-token"),
        "missing STS token": lambda: make_client(ecs, sts, token=""),
    }[tamper]()
    expect_error(code, status, copy, client, source.image_id)
    assert ecs.images(SH) == []
    assert (ecs.calls[-1].status, ecs.calls[-1].error_code) == (status, code)


def test_faults_apply_only_after_the_signature_is_checked(ecs, key):
    ecs.faults.add(None, "throttle")
    expect_error("SignatureDoesNotMatch", 400, describe, make_client(ecs, key, secret="wrong"), HZ)
    expect_error("Throttling", 400, describe, make_client(ecs, key), HZ)  # the fault was still there
    describe(make_client(ecs, key), HZ)


def test_stale_date_is_refused(ecs, client, monkeypatch):
    stale = (datetime.now(timezone.utc) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    monkeypatch.setattr(Utils, "get_timestamp", staticmethod(lambda: stale))
    expect_error("InvalidTimeStamp.Expired", 400, copy, client, ecs.seed_image(HZ).image_id)
    assert ecs.images(SH) == []


def test_replayed_nonce_is_refused(ecs, client, monkeypatch):
    monkeypatch.setattr(Utils, "get_nonce", staticmethod(lambda: "the-same-nonce-every-time"))
    describe(client, HZ)
    expect_error("SignatureNonceUsed", 400, describe, client, HZ)


def signed_raw_request(
    stand_in: EcsStandIn, key: AccessKey, action: str, query: dict[str, str], form: dict[str, str] | None = None
) -> urllib.request.Request:
    """Sign an ACS3-HMAC-SHA256 request by hand, as the SDK does, optionally with a form body."""
    body = urlencode(form).encode() if form else b""
    headers = {
        "host": stand_in.endpoint,
        "x-acs-action": action,
        "x-acs-version": "2014-05-26",
        "x-acs-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "content-type": "application/x-www-form-urlencoded",
    }
    names = sorted(headers)
    canonical_query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(query.items()))
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            canonical_query,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            headers["x-acs-content-sha256"],
        ]
    )
    string_to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    signature = hmac.new(key.secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={key.id},SignedHeaders={';'.join(names)},Signature={signature}"
    )
    del headers["host"]  # urllib sends the same value itself
    url = f"{stand_in.url}/?{urlencode(query, quote_via=quote)}"
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def send(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_form_body_parameters_are_read(ecs, key):
    image = ecs.seed_image(SH)
    request = signed_raw_request(ecs, key, "DescribeImages", {"RegionId": SH}, form={"ImageId": image.image_id})
    status, body = send(request)
    assert status == 200 and body["RegionId"] == SH
    assert [i["ImageId"] for i in body["Images"]["Image"]] == [image.image_id]
    assert re.fullmatch(r"[0-9A-F]{8}(-[0-9A-F]{4}){3}-[0-9A-F]{12}", body["RequestId"])
    assert ecs.calls[-1].params == {"RegionId": SH, "ImageId": image.image_id}


def test_tampered_and_replayed_raw_requests_are_refused(ecs, key):
    image = ecs.seed_image(HZ)
    good = signed_raw_request(ecs, key, "DeleteImage", {"RegionId": HZ, "ImageId": image.image_id})
    tampered = urllib.request.Request(
        good.full_url.replace(image.image_id, "m-00000000000000000000"),
        data=good.data,
        headers=good.headers,
        method="POST",
    )
    status, body = send(tampered)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert set(body) == {"RequestId", "HostId", "Code", "Message"}
    assert ecs.image(image.image_id) is not None

    assert send(good)[0] == 200
    assert ecs.image(image.image_id) is None
    status, body = send(good)  # the very same request again
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")


def test_concurrent_retries_with_one_client_token_start_one_copy(ecs, key):
    source = ecs.seed_image(HZ)
    results: list[str] = []

    def retry() -> None:
        results.append(copy(make_client(ecs, key), source.image_id, client_token="shared-token"))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert [image.image_id for image in ecs.images(SH)] == results[:1]
