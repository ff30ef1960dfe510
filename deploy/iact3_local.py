"""``make iact3``: Alibaba's template tester, iact3, runs the project's ``.iact3.yml`` against the local cloud.

Starts the local cloud (``emulator.cloud.LocalCloud``, its clock following the wall clock, as ``python -m emulator
serve`` does: iact3 polls GetStack every 5 s of real time, so the copies are made short), writes a copy of
``.iact3.yml`` whose only change is the local source image in ``ImageId``, and runs ``iact3 test run`` on it through
``deploy/iact3_launcher.py`` (in iact3's own virtual environment), which only points iact3's ROS client at the local
ROS API. iact3 gets the local cloud's fake access key and an empty home directory (no aliyun CLI profile, no
``~/.iact3.yml``), and the region from ``.iact3.yml`` (so it never lists regions).

Passes only if iact3's own result file (``iact3_outputs/<project>-result.json``) says ``Success`` for the run and for
every test of ``.iact3.yml``, and iact3 left no stack and no copy behind. Exits 1 otherwise, printing iact3's log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".iact3.yml"
LAUNCHER = ROOT / "deploy" / "iact3_launcher.py"


def prepare(workdir: Path, image_id: str) -> dict[str, Any]:
    """The project's .iact3.yml and template.yml in ``workdir``, with the local source image as every ImageId."""
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "home").mkdir(parents=True)
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    for test in config["tests"].values():
        test.setdefault("parameters", {})["ImageId"] = image_id
    (workdir / ".iact3.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    template = config["project"]["template_config"]["template_location"]
    shutil.copy(ROOT / template, workdir / template)
    return config


def check(cloud: Any, config: dict[str, Any], workdir: Path) -> list[str]:
    """What is wrong with the run: iact3's own verdict first, then what it left in the local cloud."""
    problems = []
    result_file = workdir / "iact3_outputs" / f"{config['project']['name']}-result.json"
    if not result_file.is_file():
        return [f"iact3 wrote no result file ({result_file.relative_to(workdir)})"]
    result = json.loads(result_file.read_text(encoding="utf-8"))
    details = result.get("Details") or []
    if result.get("Result") != "Success":
        problems.append(f"iact3's result is {result.get('Result')!r}")
    for detail in details:
        if detail.get("Result") != "Success":
            problems.append(
                f"test {detail.get('TestName')} in {detail.get('TestedRegion')}: {detail.get('TestResult')}"
            )
    project_regions = config["project"].get("regions") or []
    expected = {
        (name, region) for name, test in config["tests"].items() for region in test.get("regions") or project_regions
    }
    ran = {(d.get("TestName"), d.get("TestedRegion")) for d in details}
    if ran != expected:
        problems.append(f"iact3 ran {sorted(ran)}, .iact3.yml has {sorted(expected)}")
    left = [s.name for s in cloud.ros.stacks.values() if s.status != "DELETE_COMPLETE"]
    if left:
        problems.append(f"stacks left: {left}")
    regions = {str(t.get("parameters", {}).get("DestinationRegionId")) for t in config["tests"].values()}
    copies = [image.image_id for region in regions for image in cloud.ecs.images(region) if image.is_copy]
    if copies:
        problems.append(f"copies left: {copies}")
    problems.extend(f"protocol violation: {v}" for v in cloud.ros.violations)
    return problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iact3-python", default=str(ROOT / ".venv-iact3" / "bin" / "python"))
    parser.add_argument("--copy-seconds", type=float, default=8.0, help="each copy's length (real seconds)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "iact3", help="iact3's project and report")
    parser.add_argument("--timeout", type=float, default=480.0, help="seconds before iact3 is stopped")
    return parser.parse_args(argv)


def iact3_environment(workdir: Path, key_id: str, key_secret: str, ros_endpoint: str) -> dict[str, str]:
    """All of iact3's environment: the local cloud's fake key and ROS API, and nothing of this machine's setup."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir / "home"),  # no aliyun CLI profile, no ~/.iact3.yml of this machine
        "LANG": "C.UTF-8",
        "ALIBABA_CLOUD_ACCESS_KEY_ID": key_id,  # the local cloud's fake key, iact3's only credentials
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": key_secret,
        "IACT3_LOCAL_ROS_ENDPOINT": ros_endpoint,
    }


def run_iact3(args: argparse.Namespace, env: dict[str, str]) -> tuple[int | None, str]:
    """``iact3 test run`` in the work directory: its exit code (None when it was stopped) and its output."""
    command = [
        os.path.abspath(args.iact3_python),
        str(LAUNCHER),
        "test",
        "run",
    ]  # in workdir, as from the repository root
    try:
        done = subprocess.run(  # noqa: S603 - our launcher and arguments of ours
            command, env=env, cwd=args.workdir, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired as expired:
        partial = (expired.stdout or b"", expired.stderr or b"")
        text = "".join(part.decode(errors="replace") if isinstance(part, bytes) else part for part in partial)
        return None, f"{text}\niact3 still running after {args.timeout:.0f} s"
    return done.returncode, done.stdout + done.stderr


def report(
    output: str, problems: list[str], calls: list[str], config: dict[str, Any], workdir: Path, seconds: float
) -> int:
    """Print iact3's log (all of it when the run failed) and the verdict; the exit code."""
    lines = output.rstrip().splitlines()
    print("\n".join(lines if problems else lines[-12:]))  # iact3's whole log when it failed
    print(f"\nROS API calls by iact3: {', '.join(calls)}")
    if problems:
        print("\nIACT3 FAILED: " + "; ".join(problems))
        return 1
    tests = ", ".join(config["tests"])
    print(f"\niact3 passed: {tests} Success ({seconds:.0f} s; report in {workdir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from emulator.cloud import LocalCloud

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    started = time.monotonic()
    with LocalCloud(copy_seconds=args.copy_seconds) as cloud:
        cloud.clock.start_realtime()  # iact3 waits on the wall clock
        key = cloud.credentials.add_access_key()
        source = cloud.seed_image("iact3-source")
        config = prepare(args.workdir, source.image_id)
        print(f"iact3 test run on the local cloud (ROS API {cloud.ros.url}, source image {source.image_id})")
        env = iact3_environment(args.workdir, key.id, key.secret, cloud.ros.endpoint)
        returncode, output = run_iact3(args, env)
        problems = check(cloud, config, args.workdir)
        if returncode is not None and returncode != 0:
            problems.insert(0, f"iact3 exited {returncode}")
        calls = sorted({call.action for call in cloud.ros.api.calls})
        if "DescribeRegions" in calls:  # .iact3.yml names the region: iact3 must not need to list them
            problems.append("iact3 called DescribeRegions")
    return report(output, problems, calls, config, args.workdir, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
