"""Which invariant of the model-based test catches each safeguard's removal.

    .venv/bin/python tests/mutations.py [SCHEDULES]

For each safeguard below, a copy of function/ has that one piece of code changed; the model's schedules run
against the copy until an invariant breaks (or SCHEDULES run clean, which would mean the model cannot see the
safeguard). Not part of the suite: it runs for a few minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MUTATIONS = {
    "1: a mark of this chain from an earlier hop is still the chain's (a write that lands late strands nothing)": (
        "waiting.py",
        "return parsed is not None and parsed[0] == self.owner and parsed[1] <= self.hop",
        "return parsed is not None and parsed[0] == self.owner and parsed[1] == self.hop",
    ),
    "2: a vanished copy fails the request only if this chain saw it as its own recently": (
        "waiting.py",
        "if wait.confirmed_at is None or now > wait.confirmed_at + SETTLE_SECONDS:",
        "if False:",
    ),
    "3: a Delete removes every copy tagged with the stack and logical id, not only the physical id": (
        "resource.py",
        "ours = {view.image_id: view for view in self._images.find_tagged(region, self.owner_tags)}",
        "ours = {view.image_id: view for view in self._images.find_tagged(region, self.owner_tags)"
        " if view.image_id == request.physical_resource_id}",
    ),
    "4: a refused SUCCESS leaves the copy to the stack's Delete": (
        "framework.py",
        """        if result.get("Delivery") == "delivered":""",
        """        if result.get("Delivery") == "refused" and answer.status == "SUCCESS":
            _quietly("drop", lambda: resource._images.delete(
                resource._props().destination_region_id, answer.physical_resource_id, False))
        if result.get("Delivery") == "delivered":""",
    ),
    "5: every hand-over is an FC task named by chain and hop, so FC refuses a twin's": (
        "framework.py",
        "                task_id=_task_of(decision.wait),",
        "                task_id=None,",
    ),
    "6: a continuation claims its answer before it answers": (
        "framework.py",
        "        if wait.hop == 0 or identity is None",
        "        if True or identity is None",
    ),
}

RUNNER = """
import os, sys
from collections import Counter
sys.path[:0] = [os.environ["MUTANT"], os.environ["ROOT"], os.path.join(os.environ["ROOT"], "tests")]
import emulator.cloud
emulator.cloud.FUNCTION_DIR = __import__("pathlib").Path(os.environ["MUTANT"])
from copyimage.logs import logger
logger.setLevel("WARNING")
import test_model
with emulator.cloud.LocalCloud(copy_seconds=60) as cloud:
    cloud.model_template = cloud.template()
    for seed in range(int(os.environ["SCHEDULES"])):
        problems = test_model.run_and_check(cloud, test_model.draw(seed), Counter())
        if problems:
            print(f"caught after {seed + 1} schedules (MODEL_SEED={seed}): {problems[0][:300]}")
            break
    else:
        print("NOT caught")
"""


def main() -> int:
    schedules = sys.argv[1] if len(sys.argv) > 1 else "500"
    for name, (module, before, after) in MUTATIONS.items():
        with tempfile.TemporaryDirectory() as work:
            mutant = Path(work) / "function"
            shutil.copytree(ROOT / "function", mutant, ignore=shutil.ignore_patterns("__pycache__", "python"))
            source = mutant / "copyimage" / module
            text = source.read_text()
            if text.count(before) != 1:
                print(f"{name}: the code to change is not found exactly once in {module}")
                return 1
            source.write_text(text.replace(before, after))
            env = {**os.environ, "MUTANT": str(mutant), "ROOT": str(ROOT), "SCHEDULES": schedules}
            env["PYTHONPATH"] = ""
            done = subprocess.run([sys.executable, "-c", RUNNER], env=env, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if not line.startswith("{")]
            print(f"safeguard {name}\n  removed -> {lines[-1] if lines else done.stderr[-500:]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
