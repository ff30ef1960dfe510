"""Three common ways of waiting for a copy, written only for bench/compare.py to measure this provider against.

Each is an FC handler built from the provider's own parts (the ECS SDK through ``copyimage.images``, answers and
self-invocation through ``copyimage.outbound``), so the strategies differ only in how they wait:

- ``sleep60``: one invocation polls DescribeImages every 60 s until the copy is Available, as Terraform's
  ``alicloud_image_copy`` does from the user's machine. On FC it is billed for the whole copy, and FC stops it at
  the function's timeout.
- ``poll5``: each poll is its own invocation, 5 s apart, as the AWS CDK provider framework's ``isComplete``
  (default query interval 5 s).
- ``fixed300``: the function invokes itself again after a fixed 5 minutes until the copy is Available.

They handle Create only and have none of the provider's safeguards (ownership marks, deadlines, retries across
invocations, clean-up): they are yardsticks, not providers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from copyimage import clock
from copyimage.config import Settings
from copyimage.credentials import Credentials, resolve_credentials
from copyimage.images import EcsImages
from copyimage.outbound import answer_urls, deliver_answer, invoke_later
from copyimage.properties import parse_properties
from copyimage.protocol import Answer, RosRequest, client_token, decode_event, parse_request, response_body

POLL_KEY = "BaselinePoll"


def sleep60(event: object, context: object) -> None:
    run = _Run(event, context)
    while not run.done():
        clock.current().sleep(60)


def poll5(event: object, context: object) -> None:
    _Run(event, context).poll_later(5)


def fixed300(event: object, context: object) -> None:
    _Run(event, context).poll_later(300)


class _Run:
    """One invocation: starts the copy for ROS's event, or carries on with the copy a poll event names."""

    def __init__(self, event: object, context: object) -> None:
        decoded = decode_event(event)
        poll = decoded.get(POLL_KEY)
        self.ros_event: Mapping[str, object] = poll["Request"] if isinstance(poll, dict) else decoded
        self.request: RosRequest = parse_request(self.ros_event)
        self.settings = Settings.from_env()
        self.credentials: Credentials = resolve_credentials(context)
        self.images = EcsImages(self.settings, self.credentials)
        self.props = parse_properties(self.request.properties, self.request.region_id)
        if isinstance(poll, dict):
            self.image_id = str(poll["ImageId"])
        else:
            token = client_token(self.request.stack_id, self.request.logical_resource_id, self.request.request_id)
            self.image_id = self.images.copy(self.props, token, {})

    def done(self) -> bool:
        """Look once; answer ROS when the copy is usable or failed."""
        image = self.images.find(self.props.destination_region_id, self.image_id)
        if image is not None and image.in_progress:
            return False
        if image is not None and image.usable:
            answer = Answer("SUCCESS", self.image_id, data={"ImageId": self.image_id})
        else:
            answer = Answer("FAILED", self.image_id, reason=f"the copy ended {image.status if image else 'missing'}")
        urls = answer_urls(self.request.response_url, self.request.intranet_response_url, self.settings)
        deliver_answer(response_body(self.request, answer), urls, self.settings)
        return True

    def poll_later(self, seconds: int) -> None:
        if self.done():
            return
        identity = self.settings.function
        if identity is None:
            raise RuntimeError("a baseline that polls in later invocations must run on Function Compute")
        payload: dict[str, object] = {POLL_KEY: {"Request": dict(self.ros_event), "ImageId": self.image_id}}
        invoke_later(identity, payload, seconds, self.credentials, self.settings)


HANDLERS: Mapping[str, Callable[[object, object], None]] = {"sleep60": sleep60, "poll5": poll5, "fixed300": fixed300}
