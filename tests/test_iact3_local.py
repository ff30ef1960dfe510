"""`make iact3`'s parts that run without iact3: the launcher's loopback guard, the verdict read from iact3's own
result file, and iact3's pins. (`make iact3` itself runs the real iact3 against the local cloud; CI runs it.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT

from deploy import iact3_launcher, iact3_local


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.5", b"127.0.0.1"])
def test_loopback_is_let_through(host):
    iact3_launcher._loopback_only("socket.getaddrinfo", (host, 80, 0, 0, 0, 0))
    iact3_launcher._loopback_only("socket.connect", (object(), (host, 80)))


@pytest.mark.parametrize("host", ["ros.aliyuncs.com", "ecs.cn-hangzhou.aliyuncs.com", "100.100.100.200", "10.0.0.1"])
def test_anything_else_is_refused_before_a_packet_leaves(host):
    with pytest.raises(ConnectionRefusedError, match="loopback only"):
        iact3_launcher._loopback_only("socket.getaddrinfo", (host, 443, 0, 0, 0, 0))
    with pytest.raises(ConnectionRefusedError, match="loopback only"):
        iact3_launcher._loopback_only("socket.connect", (object(), (host, 443)))


def empty_cloud() -> SimpleNamespace:
    return SimpleNamespace(ros=SimpleNamespace(stacks={}, violations=[]), ecs=SimpleNamespace(images=lambda region: []))


def run_with(workdir: Path, result: dict | None) -> list[str]:
    config = iact3_local.prepare(workdir, "m-localsourceimage0000")
    if result is not None:
        (workdir / "iact3_outputs").mkdir()
        (workdir / "iact3_outputs" / "ros-copy-image-result.json").write_text(json.dumps(result))
    return iact3_local.check(empty_cloud(), config, workdir)


def detail(result: str, status: str) -> dict:
    return {"TestName": "small-image", "TestedRegion": "cn-hangzhou", "TestResult": status, "Result": result}


def test_the_copy_of_the_config_changes_only_the_image(tmp_path):
    import yaml

    iact3_local.prepare(tmp_path, "m-localsourceimage0000")
    original = yaml.safe_load((ROOT / ".iact3.yml").read_text())
    copied = yaml.safe_load((tmp_path / ".iact3.yml").read_text())
    assert copied["tests"]["small-image"]["parameters"].pop("ImageId") == "m-localsourceimage0000"
    original["tests"]["small-image"]["parameters"].pop("ImageId")
    assert copied == original
    assert (tmp_path / "template.yml").read_text() == (ROOT / "template.yml").read_text()


def test_only_iacts_own_success_for_every_test_passes(tmp_path):
    assert run_with(tmp_path, {"Result": "Success", "Details": [detail("Success", "CREATE_COMPLETE")]}) == []
    failed = run_with(tmp_path, {"Result": "Failed", "Details": [detail("Failed", "CREATE_FAILED")]})
    assert failed == ["iact3's result is 'Failed'", "test small-image in cn-hangzhou: CREATE_FAILED"]
    assert run_with(tmp_path, {"Result": "Success", "Details": []}) == [
        "iact3 ran [], .iact3.yml has [('small-image', 'cn-hangzhou')]"
    ]
    assert run_with(tmp_path, None) == ["iact3 wrote no result file (iact3_outputs/ros-copy-image-result.json)"]


def test_iact3_is_pinned_with_hashes_to_the_version_named():
    wanted = re.search(r"^alibabacloud-ros-iact3==(\S+)", (ROOT / "deploy/iact3-requirements.in").read_text(), re.M)
    pins = (ROOT / "deploy/iact3-requirements.txt").read_text()
    assert wanted and f"alibabacloud-ros-iact3=={wanted[1]} \\" in pins
    blocks = re.split(r"\n(?=\S)", pins)
    pinned = [block for block in blocks if re.match(r"[A-Za-z0-9._-]+==", block)]
    assert len(pinned) > 30 and all("--hash=sha256:" in block for block in pinned)
