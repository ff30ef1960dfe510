"""Typed errors. Each carries a message a person can act on; the framework turns them into FAILED answers."""

from __future__ import annotations


class ProviderError(Exception):
    """Base class: anything the provider reports back to ROS as the FAILED reason."""

    code: str = ""  # the service's error code, when a service refused

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (the wait then goes on instead of failing)."""
        return False


class InvalidRequest(ProviderError):
    """The ROS request itself is unusable (missing fields, wrong types)."""


class Unanswerable(InvalidRequest):
    """No answer can ever reach ROS: the request has no usable ResponseURL. Nothing is done for it."""


class NotConfirmed(Exception):
    """ROS contradicts the request (no such stack or resource, or a status where ROS sends no such request): it is
    not ROS's, and nothing is done for it. No ProviderError: it is never answered."""


class InvalidProperty(ProviderError):
    """A resource property breaks a rule. Names the property so the template author can find it."""

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"Property {_short(name)}: {rule}")
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


class TryLater(ProviderError):
    """Not a failure yet: the work cannot go on now (throttling, a conflict, a service hiccup), but may later.

    ``code`` is the service's error code, for the log and for the reason given if the wait runs out.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def transient(self) -> bool:
        return True


# Worth another try later, from any Alibaba Cloud API: throttling, a service hiccup, or no answer at all.
HICCUP_CODES = frozenset({"ServiceUnavailable", "InternalError", "ConnectionError"})
# And from ECS: "conflict with a previous request, please try again later" (409 InvalidOperation.Conflict;
# DeleteSnapshot's 403 Operation.Conflict says the same).
ECS_RETRY_CODES = frozenset({"InvalidOperation.Conflict", "Operation.Conflict"})


def is_hiccup(code: str, status: int | None) -> bool:
    """Whether an API error is throttling, a service hiccup (5xx) or no answer: worth another try later."""
    return code.startswith("Throttling") or code in HICCUP_CODES or (status is not None and status >= 500)


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
        """Worth retrying: a hiccup (:func:`is_hiccup`), or ECS's "try again later" conflicts."""
        return is_hiccup(self.code, self.status) or self.code in ECS_RETRY_CODES or self.status == 409

    @property
    def not_found(self) -> bool:
        return self.code.endswith(".NotFound") or self.status == 404


class CopyFailed(ProviderError):
    """The copy ended in a state it cannot leave (CreateFailed, UnAvailable, gone, or too slow)."""


class InvocationFailed(ProviderError):
    """Scheduling the next look through Function Compute failed."""


class AlreadyScheduled(InvocationFailed):
    """FC refused the task id (409): another run of this hop scheduled it already, and that run lives on."""


def sdk_message(error: Exception) -> str:
    """The service's own message from an Alibaba SDK exception, without the SDK's decorations."""
    data = getattr(error, "data", None)
    if isinstance(data, dict) and data.get("Message"):
        return str(data["Message"])
    return str(getattr(error, "message", "") or error)


def _short(text: str, limit: int = 100) -> str:
    """A name from the request, cut so that a huge one cannot flood a reason or a log line."""
    return text if len(text) <= limit else text[:limit] + "..."
