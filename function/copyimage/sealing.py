"""Authentic continuations: an HMAC-SHA256 over the whole continuation, with a key only the function can read.

A continuation carries a wait (its deadline, the waiter token, the image id) and the ROS request: whoever could
write one could make the function give up on, cancel or remove a real stack's copy. So every continuation the
function schedules is sealed, and one whose seal does not verify is refused before any call to ECS.

The key is the value of an OOS secret parameter (encrypted with KMS), read with the function's own role
(oos:GetSecretParameter, WithDecryption) and kept per instance for KEY_CACHE_SECONDS. A caller of InvokeFunction
cannot read it: it is no environment variable (GetFunction shows those), and reading it takes the role's
permission. Rotation: update the parameter (OOS keeps the previous version); a continuation sealed with the
previous version is still accepted until PREVIOUS_KEY_SECONDS (two days) after the current version was written (its
UpdatedDate), longer than any wait (43,200 s) and FC's longest event age (86,400 s). Older versions never are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime

from copyimage import clock
from copyimage.config import Settings
from copyimage.credentials import Credentials
from copyimage.errors import InvocationFailed
from copyimage.outbound import RpcRefusal, call_rpc

OOS_VERSION = "2019-06-01"
MAC = "Mac"
KEY_VERSION = "KeyVersion"
KEY_CACHE_SECONDS = 600.0
PREVIOUS_KEY_SECONDS = 2 * 86400.0  # two days: longer than any wait (43,200 s) and FC's longest event age
MIN_KEY_BYTES = 32

_keys: dict[tuple[str, str, str, int | None], tuple[float, int, bytes, float]] = {}  # -> (fetched, version, key, set)


class KeyUnavailable(InvocationFailed):
    """The key parameter cannot be read now: nothing may be sealed or trusted."""


class NotAuthentic(Exception):
    """A continuation whose seal does not verify: it is no continuation of this function."""


def seal(body: Mapping[str, object], settings: Settings, credentials: Credentials) -> dict[str, object]:
    """The continuation ``body`` with the current key's version, and its MAC (the event's ``Mac``)."""
    version, key, _ = _key(settings, credentials, None)
    sealed = {**body, KEY_VERSION: version}
    return {"Continuation": sealed, MAC: _mac(key, sealed)}


def check(event: Mapping[str, object], settings: Settings, credentials: Credentials) -> None:
    """Raise NotAuthentic unless ``event`` is a continuation sealed with the current key, or the previous one
    within PREVIOUS_KEY_SECONDS of the rotation; KeyUnavailable when the key cannot be read."""
    body, given = event.get("Continuation"), event.get(MAC)
    if not isinstance(body, Mapping) or not isinstance(given, str):
        raise NotAuthentic("the continuation carries no seal")
    version = body.get(KEY_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise NotAuthentic("the continuation names no key version")
    current, _, rotated_at = _key(settings, credentials, None)
    if version > current:
        current, _, rotated_at = _key(settings, credentials, None, fresh=True)
    if version == current - 1 and clock.current().now() > rotated_at + PREVIOUS_KEY_SECONDS:
        raise NotAuthentic(f"the continuation is sealed with key version {version}, retired too long ago")
    if version not in (current, current - 1):
        raise NotAuthentic(f"the continuation is sealed with key version {version}; the current one is {current}")
    _, key, _ = _key(settings, credentials, version)
    if not hmac.compare_digest(_mac(key, body), given):
        raise NotAuthentic("the continuation's MAC does not verify")


def _mac(key: bytes, body: Mapping[str, object]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def _key(
    settings: Settings, credentials: Credentials, version: int | None, fresh: bool = False
) -> tuple[int, bytes, float]:
    """(version, key, when that version was written) of the key parameter, cached per instance."""
    region = settings.function.region if settings.function else ""
    endpoint = settings.oos_endpoint or f"oos.{region}.aliyuncs.com"
    cache = (endpoint, settings.key_parameter, credentials.access_key_id, version)
    now = clock.current().now()
    cached = _keys.get(cache)
    if cached is not None and not fresh and now - cached[0] < KEY_CACHE_SECONDS:
        return cached[1], cached[2], cached[3]
    query = {"RegionId": region, "Name": settings.key_parameter, "WithDecryption": "true"}
    if version is not None:
        query["ParameterVersion"] = str(version)
    try:
        body = call_rpc("OOS", "GetSecretParameter", OOS_VERSION, endpoint, query, credentials, settings)
    except RpcRefusal as error:
        raise KeyUnavailable(
            f"the continuation key (OOS secret parameter {settings.key_parameter!r}) cannot be read: {error}"
        ) from None
    parameter = body.get("Parameter")
    parameter = parameter if isinstance(parameter, Mapping) else {}
    value = str(parameter.get("Value") or "").encode()
    if len(value) < MIN_KEY_BYTES:
        raise KeyUnavailable(f"the OOS secret parameter {settings.key_parameter!r} holds under {MIN_KEY_BYTES} bytes")
    entry = (now, int(str(parameter.get("ParameterVersion") or 1)), value, _time(parameter.get("UpdatedDate"), now))
    _keys[cache] = _keys[(cache[0], cache[1], cache[2], entry[1])] = entry  # the current one is that version too
    return entry[1], entry[2], entry[3]


def _time(text: object, default: float) -> float:
    """OOS's UTC time (``2020-09-01T09:35:17Z``) in seconds; ``default`` if unreadable."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default
