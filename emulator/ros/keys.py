"""What the local ROS does for the two resource types that make the provider's continuation key (deploy/provider.yml):
``ALIYUN::RandomString`` draws a value, ``ALIYUN::OOS::SecretParameter`` puts it into the OOS stand-in
(:mod:`emulator.oos`), where the function reads it, and removes it with the stack.

Documented (ALIYUN::OOS::SecretParameter's reference): SecretParameterName and Value required; the name letters,
digits, ``-`` and ``_``, at most 180 characters, not starting with ALIYUN, ACS, ALIBABA, ALICLOUD or OOS; Value at
most 4,096 characters; Description at most 200; SecretParameterName, KeyId and Constraints not editable, Value,
Description, ResourceGroupId and Tags editable. Choices: a new Value is a new version of the parameter (as OOS's
UpdateSecretParameter makes one); the prefixes are refused whatever their case; Constraints is not emulated.

ALIYUN::RandomString's reference was not among the documents searched: its names and their meaning follow Heat's
OS::Heat::RandomString, which ROS derives from (Length 1 to 512, default 32; Sequence, default ``lettersdigits``;
CharacterClasses ``{Class, Min}``; CharacterSequences ``{Sequence, Min}``; Salt; any change draws a new value).
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from datetime import datetime, timezone
from typing import Any

from emulator.errors import ApiError
from emulator.oos import OosStandIn, SecretParameter
from emulator.ros.models import ResourceFailed

NAME = re.compile(r"[A-Za-z0-9_-]{1,180}")
RESERVED_PREFIXES = ("ALIYUN", "ACS", "ALIBABA", "ALICLOUD", "OOS")
MAX_VALUE, MAX_DESCRIPTION = 4096, 200
LENGTH, DEFAULT_LENGTH = (1, 512), 32
CLASSES = {  # Heat's named character classes
    "lettersdigits": string.ascii_letters + string.digits,
    "letters": string.ascii_letters,
    "lowercase": string.ascii_lowercase,
    "uppercase": string.ascii_uppercase,
    "digits": string.digits,
    "hexdigits": string.digits + "ABCDEF",
    "octdigits": string.octdigits,
}


def random_string(properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A new random value (physical id, attributes)."""
    length = int(properties.get("Length", DEFAULT_LENGTH))
    if not LENGTH[0] <= length <= LENGTH[1]:
        raise ResourceFailed(f"Length {length} of ALIYUN::RandomString is not between {LENGTH[0]} and {LENGTH[1]}")
    pools = _pools(properties)
    if sum(count for _, count in pools) > length:
        raise ResourceFailed(f"the Min counts of ALIYUN::RandomString exceed its Length {length}")
    draw = secrets.SystemRandom()
    chars = [draw.choice(pool) for pool, count in pools for _ in range(count)]
    every = "".join(sorted(set("".join(pool for pool, _ in pools))))
    chars += [draw.choice(every) for _ in range(length - len(chars))]
    draw.shuffle(chars)
    return f"random-string-{uuid.uuid4().hex[:16]}", {"Value": "".join(chars)}


def _pools(properties: dict[str, Any]) -> list[tuple[str, int]]:
    """(characters, at least how many of them) for each class and sequence asked for; else the one Sequence."""
    pools = []
    for item in properties.get("CharacterClasses") or []:
        name = str((item or {}).get("Class", "lettersdigits"))
        if name not in CLASSES:
            raise ResourceFailed(f"CharacterClasses Class {name!r} is not one of {', '.join(CLASSES)}")
        pools.append((CLASSES[name], int(item.get("Min", 1))))
    for item in properties.get("CharacterSequences") or []:
        sequence = str((item or {}).get("Sequence") or "")
        if not sequence:
            raise ResourceFailed("CharacterSequences of ALIYUN::RandomString: each needs a Sequence")
        pools.append((sequence, int(item.get("Min", 1))))
    if pools:
        return pools
    sequence = str(properties.get("Sequence", "lettersdigits"))
    if sequence not in CLASSES:
        raise ResourceFailed(f"Sequence {sequence!r} of ALIYUN::RandomString is not one of {', '.join(CLASSES)}")
    return [(CLASSES[sequence], 0)]


class SecretParameters:
    """ALIYUN::OOS::SecretParameter in the stack's region of the OOS stand-in."""

    def __init__(self, oos: OosStandIn | None, region: str) -> None:
        self.oos, self.region = oos, region

    def create(self, properties: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        oos, name = self._oos(), str(properties["SecretParameterName"])
        _check(properties)
        if properties.get("Constraints"):
            raise ResourceFailed("Constraints of ALIYUN::OOS::SecretParameter is not emulated")
        try:
            parameter = oos.create(self.region, name, str(properties["Value"]), properties.get("KeyId"))
        except ApiError as error:
            raise ResourceFailed(f"{error.code}: {error.message}") from None
        return name, _attributes(parameter, properties)

    def update(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        oos, name = self._oos(), str(new["SecretParameterName"])
        _check(new)
        if new["Value"] != old["Value"] or (self.region, name) not in oos.parameters:
            oos.put(self.region, name, str(new["Value"]))  # a new version (the function accepts the last one a while)
        return _attributes(oos.parameters[(self.region, name)], new)

    def delete(self, name: str) -> None:
        self._oos().remove(self.region, name)

    def _oos(self) -> OosStandIn:
        if self.oos is None:
            raise ResourceFailed("ALIYUN::OOS::SecretParameter is not emulated by this ROS (no OOS stand-in wired)")
        return self.oos


def _check(properties: dict[str, Any]) -> None:
    name, value = str(properties["SecretParameterName"]), str(properties["Value"])
    if not NAME.fullmatch(name) or name.upper().startswith(RESERVED_PREFIXES):
        raise ResourceFailed(
            f"SecretParameterName {name!r}: letters, digits, - and _, at most 180, not starting with "
            + ", ".join(RESERVED_PREFIXES)
        )
    if not value or len(value) > MAX_VALUE:
        raise ResourceFailed(f"Value of ALIYUN::OOS::SecretParameter: 1 to {MAX_VALUE} characters")
    if len(str(properties.get("Description") or "")) > MAX_DESCRIPTION:
        raise ResourceFailed(f"Description of ALIYUN::OOS::SecretParameter: at most {MAX_DESCRIPTION} characters")


def _attributes(parameter: SecretParameter, properties: dict[str, Any]) -> dict[str, Any]:
    """The attributes of the reference's list that the stand-in knows (never the value)."""
    return {
        "SecretParameterName": parameter.name,
        "SecretParameterId": f"p-{uuid.uuid5(uuid.NAMESPACE_URL, parameter.key_id + parameter.name).hex[:20]}",
        "Type": "Secret",
        "KeyId": parameter.key_id,
        "ParameterVersion": len(parameter.values),
        "CreateTime": _time(parameter.values[0][1]),
        "UpdatedDate": _time(parameter.values[-1][1]),
        "Description": str(properties.get("Description") or ""),
        "ResourceGroupId": str(properties.get("ResourceGroupId") or ""),
        "Tags": list(properties.get("Tags") or []),
    }


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
