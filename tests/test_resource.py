"""CopyImageResource against the ECS stand-in, where the timing of other invocations matters."""

from __future__ import annotations

from conftest import DESTINATION, copies_in, properties
from copyimage.config import Settings
from copyimage.credentials import Credentials
from copyimage.images import EcsImages
from copyimage.properties import WAITER_TAG, parse_properties
from copyimage.protocol import RosRequest
from copyimage.resource import CopyImageResource


def resource_for(cloud, sleep) -> CopyImageResource:
    key = cloud.credentials.add_access_key()
    settings = Settings.from_env({"COPYIMAGE_ECS_ENDPOINT": cloud.ecs.url})
    request = RosRequest(
        "Create", "https://x.aliyuncs.com/r", None, "stack-1", "s", "req-1", "CopyImage", "cn-hangzhou", {}
    )
    return CopyImageResource(EcsImages(settings, Credentials(key.id, key.secret)), request, sleep)


def copy_with_waiter(cloud, source, token: str):
    props = parse_properties(properties(source), "cn-hangzhou")
    seeded = resource_for(cloud, lambda _: None)
    image_id = seeded.start_copy(props, token)
    cloud.clock.sleep(cloud.ecs.copy_seconds + 1)  # let the copy finish
    return props, image_id


def test_refused_answer_leaves_the_copy_when_a_twins_answer_was_taken(cloud, source):
    props, image_id = copy_with_waiter(cloud, source, "t1")
    twin = resource_for(cloud, lambda _: None)

    def grace(_seconds):  # meanwhile the twin's answer is taken, and it clears the waiter tag
        twin.clear_waiter(props, image_id)

    resource_for(cloud, grace).discard_if_unanswered(props, image_id, ("t1",))
    assert cloud.ecs.image(image_id).status == "Available"
    assert not cloud.ecs.calls_to("DeleteImage")


def test_refused_answer_removes_the_copy_nobody_answered_for(cloud, source):
    props, image_id = copy_with_waiter(cloud, source, "t1")
    pauses = []
    resource_for(cloud, pauses.append).discard_if_unanswered(props, image_id, ("t1",))
    assert pauses and pauses[0] >= 10  # it gave a twin time to speak up first
    assert copies_in(cloud, DESTINATION) == []


def test_refused_answer_of_a_superseded_chain_touches_nothing(cloud, source):
    props, image_id = copy_with_waiter(cloud, source, "t-new")
    resource_for(cloud, lambda _: None).discard_if_unanswered(props, image_id, ("t-old",))
    assert cloud.ecs.image(image_id).tags[WAITER_TAG] == "t-new"
    assert not cloud.ecs.calls_to("DeleteImage")
