"""The function: the framework, wired to the CopyImage resource over the real ECS SDK."""

from __future__ import annotations

from copyimage import clock, framework
from copyimage.config import Settings
from copyimage.credentials import Credentials
from copyimage.images import EcsImages
from copyimage.protocol import RosRequest
from copyimage.resource import CopyImageResource


def copy_image(request: RosRequest, settings: Settings, credentials: Credentials) -> CopyImageResource:
    return CopyImageResource(EcsImages(settings, credentials), request, clock.current().now)


def handler(event: object, context: object) -> dict[str, str]:
    """FC entry point (index.handler)."""
    return framework.handle(event, context, copy_image)
