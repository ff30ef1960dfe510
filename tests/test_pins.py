"""function/requirements.txt and function/requirements-py312.txt (what gets deployed on FC's python3.10 and python3.12)
must be the hashed pins of function/requirements.in (the ranges)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RANGES = ROOT / "function" / "requirements.in"
PINS = ROOT / "function" / "requirements.txt"
PINS_PY312 = ROOT / "function" / "requirements-py312.txt"
EVERY_PINS = pytest.mark.parametrize("pins_file", [PINS, PINS_PY312], ids=["python3.10", "python3.12"])


def ranges() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in RANGES.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]
    return {canonicalize_name(r.name): r for r in requirements}


def pins(pins_file: Path = PINS) -> dict[str, tuple[Version, list[str], list[str]]]:
    """name -> (version, hashes, what needs it), from uv's output format."""
    found: dict[str, tuple[Version, list[str], list[str]]] = {}
    for block in re.split(r"\n(?=\S)", pins_file.read_text()):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            via = re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9._-]+)\s*$", block, flags=re.M)
            found[canonicalize_name(match[1])] = (Version(match[2]), hashes, via)
    return found


@EVERY_PINS
def test_every_range_is_pinned_to_a_version_inside_it(pins_file):
    pinned = pins(pins_file)
    for name, requirement in ranges().items():
        assert name in pinned, f"{name} is in requirements.in but not pinned: run `make pins`"
        version = pinned[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside {requirement.specifier}: run `make pins`"
        )


@EVERY_PINS
def test_every_pin_is_exact_and_hashed(pins_file):
    for name, (_, hashes, _) in pins(pins_file).items():
        assert hashes, f"{name} has no --hash: `s build` and `make package` install in hash-checking mode"


@EVERY_PINS
def test_the_pins_are_the_closure_of_the_ranges_and_nothing_else(pins_file):
    pinned, wanted = pins(pins_file), ranges()
    for name, (_, _, via) in pinned.items():
        parents = {canonicalize_name(v) for v in via}
        assert name in wanted or parents & set(pinned), f"{name} is pinned but nothing needs it: run `make pins`"
