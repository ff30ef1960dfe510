"""Typed errors. Each carries a message a person can act on; the protocol turns them into FAILED answers."""

from __future__ import annotations


class ProviderError(Exception):
    """Base class: anything the provider reports back to ROS as the FAILED reason."""


class InvalidRequest(ProviderError):
    """The ROS request itself is unusable (missing fields, wrong types)."""


class InvalidProperty(ProviderError):
    """A resource property breaks a rule. Names the property so the template author can find it."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"Property {name}: {rule}")
        self.name = name
        self.rule = rule


class ReplacementRequired(ProviderError):
    """An Update changes properties that only a new copy can honour."""

    def __init__(self, names: list[str]) -> None:
        listed = ", ".join(names)
        super().__init__(
            f"{listed} cannot be changed in place: a copy keeps its source, region and encryption. "
            "To get a new copy, give the resource a new logical id (ROS then creates the new copy and "
            "deletes this one), or remove it from the stack and add it back."
        )
        self.names = names


class EcsError(ProviderError):
    """An ECS API call failed; ``code`` is ECS's error code."""

    def __init__(self, action: str, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"ECS {action} failed: {code}: {message}")
        self.action = action
        self.code = code
        self.ecs_message = message
        self.status = status

    @property
    def transient(self) -> bool:
        """Worth retrying: throttling, a service hiccup, or no answer at all."""
        return (
            self.code.startswith("Throttling")
            or self.code in {"ServiceUnavailable", "InternalError", "ConnectionError"}
            or (self.status is not None and self.status >= 500)
        )

    @property
    def quota(self) -> bool:
        """A quota is used up (QuotaExceed.Image: the region's custom images): it will not free itself."""
        return self.code.startswith("QuotaExceed")


class CopyFailed(ProviderError):
    """The copy ended in a state it cannot leave (CreateFailed, UnAvailable, gone, or too slow)."""


class CopyVanished(CopyFailed):
    """The copy is gone: there is nothing left to clean up."""


class ResponseRefused(ProviderError):
    """ROS refused the answer for good (it stopped waiting, or the URL is not allowed)."""


class InvocationFailed(ProviderError):
    """Scheduling the next check through Function Compute failed."""


def sdk_message(error: Exception) -> str:
    """The service's own message from an Alibaba SDK exception, without the SDK's decorations."""
    data = getattr(error, "data", None)
    if isinstance(data, dict) and data.get("Message"):
        return str(data["Message"])
    return str(getattr(error, "message", "") or error)


class Deferred(Exception):
    """Not an error: the wait goes on in a later invocation, and this one must not answer."""


class Stale(Exception):
    """Not an error: another invocation now owns this wait (a duplicate or superseded continuation)."""
