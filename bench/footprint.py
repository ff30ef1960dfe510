"""Footprint: the memory and time one invocation of the function needs, to check memorySize and timeout in s.yaml.

Each measurement runs in a fresh Python process, so nothing imported before skews it:

1. ``import``: imports function/index.py alone (the handler and every SDK it loads at import time) and reports
   the process's peak RSS and the import time. This is the closest local figure to the function's own footprint.
2. ``create``: starts the local cloud (ECS, FC and ROS stand-ins on loopback), imports function/index.py, and
   runs one Create end to end on the virtual clock: a ROS request, the invocation that starts the copy, the
   delayed asynchronous continuations, the last of which finds the copy Available and answers SUCCESS. It reports
   the peak RSS of that process (an upper bound: the stand-ins live in the same process) and how long every
   invocation ran in virtual seconds (the network waits the stand-ins model; CPU time is bench/compare.py's).

It also derives, from the function's own settings and retry policy, how long one Create invocation can run when
every network call it makes runs into its timeout (``create_invocation_bound_seconds``): the figure the function
timeout must cover. s.yaml's memorySize follows from its cpu (FC 3.0's vCPU-to-memory ratio, bench/compare.py);
``memory_needed_mb`` is the floor this measurement sets.

Run from the repository root: ``.venv/bin/python -m bench.footprint``. The last line printed is a JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TypedDict, cast

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_DIR = ROOT / "function"
FC3_MIN_MEMORY_MB = 128  # the fc3 props schema: memorySize minimum 128, multipleOf 64
FC3_MEMORY_STEP_MB = 64
MEMORY_HEADROOM = 2.0  # memorySize at least twice the measured peak


class ImportFigures(TypedDict):
    bare_interpreter_rss_mb: float
    import_seconds: float
    peak_rss_mb: float


class BoundFigures(TypedDict):
    inline_wait_seconds: float
    deadline_margin_seconds: float
    ecs_call_worst_seconds: float
    answer_delivery_worst_seconds: float
    create_invocation_bound_seconds: float


class AloneFigures(ImportFigures, BoundFigures):
    """The "import" child's figures."""


class CreateFigures(TypedDict):
    """The "create" child's figures."""

    copy_seconds: float
    emulator_rss_mb: float
    import_seconds: float
    peak_rss_mb: float
    invocations: int
    invocation_seconds: list[float]
    worst_invocation_seconds: float
    end_to_end_wall_seconds: float
    invocation_errors: list[str]


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB (ru_maxrss is KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def import_index() -> float:
    """Import function/index.py as FC does (code directory on sys.path); returns the seconds it took."""
    sys.path.insert(0, str(FUNCTION_DIR))
    started = time.perf_counter()
    importlib.import_module("index")
    return time.perf_counter() - started


# --- the two measurements, each in its own process -------------------------------------------------------


def measure_import() -> ImportFigures:
    bare = peak_rss_mb()
    seconds = import_index()
    return {
        "bare_interpreter_rss_mb": round(bare, 1),
        "import_seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def measure_create(copy_seconds: float) -> CreateFigures:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the function's logs go to stdout
    from emulator.cloud import LocalCloud

    emulator_rss = peak_rss_mb()
    seconds = import_index()
    with LocalCloud(copy_seconds=copy_seconds) as cloud:
        source = cloud.seed_image("footprint-source")
        request = cloud.ros.new_request(
            "Create",
            {
                "ImageId": source.image_id,
                "DestinationRegionId": "cn-shanghai",
                "DestinationImageName": "footprint-copy",
            },
        )
        began = time.perf_counter()
        try:
            cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Sync")
        except Exception as error:  # a failed run is reported below through the answer and the invocations
            print(f"the first invocation failed: {error!r}", file=sys.stderr)
        answer = cloud.ros.wait_answer(request["RequestId"], timeout=copy_seconds + 600)
        end_to_end = time.perf_counter() - began
        cloud.fc.wait_idle()
        runs = [run for run in cloud.fc.invocations if run.finished_at is not None]
        durations = [
            (run.finished_at or run.started_at) - run.started_at for run in runs
        ]  # virtual: seconds on Function Compute
        errors = [run.error for run in runs if run.error]
    if not answer or answer.get("Status") != "SUCCESS":
        raise SystemExit(f"the Create did not succeed: {answer!r}; invocation errors: {errors}")
    return {
        "copy_seconds": copy_seconds,
        "emulator_rss_mb": round(emulator_rss, 1),
        "import_seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "invocations": len(runs),
        "invocation_seconds": [round(d, 2) for d in durations],
        "worst_invocation_seconds": round(max(durations), 2),
        "end_to_end_wall_seconds": round(end_to_end, 1),
        "invocation_errors": errors,
    }


def create_invocation_bound() -> BoundFigures:
    """Longest one Create invocation can run when every network call runs into its timeout, from the settings."""
    sys.path.insert(0, str(FUNCTION_DIR))
    from copyimage.config import Settings
    from copyimage.retry import BASE_SECONDS as base
    from copyimage.retry import CAP_SECONDS as cap

    settings = Settings.from_env({})  # the defaults: s.yaml sets none of the COPYIMAGE_* tuning variables

    def call(attempts: int) -> float:  # every try times out, every pause is the longest the backoff allows
        pauses = sum(min(cap, base * 2 ** (n - 1)) for n in range(1, attempts))
        return float(attempts * settings.http_timeout_seconds + pauses)

    ecs = call(settings.ecs_attempts)
    answer = call(settings.response_attempts)
    invoke = call(settings.ecs_attempts)  # the FC 3.0 self-invocation uses the ECS attempt count
    # Waiting stops at the inline limit, but a look started just before it runs on; then either the answer's
    # receipt is scheduled, the answer delivered, the receipt stopped and the copy marked answered, or the next
    # invocation is scheduled and the copy marked.
    bound = settings.inline_wait_seconds + ecs + max(invoke + answer + invoke + ecs, invoke + ecs)
    return {
        "inline_wait_seconds": settings.inline_wait_seconds,
        "deadline_margin_seconds": settings.deadline_margin_seconds,
        "ecs_call_worst_seconds": ecs,
        "answer_delivery_worst_seconds": answer,
        "create_invocation_bound_seconds": bound,
    }


# --- the parent: run the children, combine, recommend ---------------------------------------------------------


def run_child(*args: str, timeout: float) -> object:
    done = subprocess.run(
        [sys.executable, "-m", "bench.footprint", "--child", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"measurement {args[0]} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    parsed: object = json.loads(lines[-1])
    return parsed


def memory_size_for(peak_mb: float) -> int:
    """The smallest FC 3.0 memorySize (a multiple of 64 MB, at least 128 MB) with the headroom above the peak."""
    wanted = max(FC3_MIN_MEMORY_MB, peak_mb * MEMORY_HEADROOM)
    return int(math.ceil(wanted / FC3_MEMORY_STEP_MB) * FC3_MEMORY_STEP_MB)


def measure_in_child(child: list[str]) -> int:
    """One measurement, in this (child) process; its figures are the last line printed."""
    kind = child[0]
    if kind == "import":
        figures: object = {**measure_import(), **create_invocation_bound()}
    elif kind == "create":
        figures = measure_create(float(child[1]))
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    print(json.dumps(figures))
    return 0


def combine(alone: AloneFigures, creates: list[CreateFigures]) -> dict[str, object]:
    """The children's figures combined, with the memory the function needs."""
    create_peak = max(create["peak_rss_mb"] for create in creates)
    # The function's own peak: importing it alone, plus what running a Create added on top of the imports in the
    # process it shared with the stand-ins.
    import_growth = alone["peak_rss_mb"] - alone["bare_interpreter_rss_mb"]
    run_growth = max(max(0.0, c["peak_rss_mb"] - c["emulator_rss_mb"] - import_growth) for c in creates)
    worst = max(creates, key=lambda c: c["worst_invocation_seconds"])
    return {
        "import_only_peak_rss_mb": alone["peak_rss_mb"],
        "bare_interpreter_rss_mb": alone["bare_interpreter_rss_mb"],
        "create_process_peak_rss_mb": create_peak,
        "function_peak_rss_estimate_mb": round(alone["peak_rss_mb"] + run_growth, 1),
        "import_seconds": alone["import_seconds"],
        "creates": [
            {k: c[k] for k in ("copy_seconds", "invocations", "invocation_seconds", "peak_rss_mb")} for c in creates
        ],
        "worst_invocation_seconds": worst["worst_invocation_seconds"],
        "inline_wait_seconds": alone["inline_wait_seconds"],
        "deadline_margin_seconds": alone["deadline_margin_seconds"],
        "ecs_call_worst_seconds": alone["ecs_call_worst_seconds"],
        "answer_delivery_worst_seconds": alone["answer_delivery_worst_seconds"],
        "create_invocation_bound_seconds": alone["create_invocation_bound_seconds"],
        "memory_needed_mb": memory_size_for(create_peak),
    }


def print_summary(result: dict[str, object], creates: list[CreateFigures]) -> None:
    create_peak = result["create_process_peak_rss_mb"]
    print(
        f"memory: import alone peaks at {result['import_only_peak_rss_mb']} MB (bare interpreter "
        f"{result['bare_interpreter_rss_mb']} MB); a whole Create process, stand-ins included, at {create_peak} MB; "
        f"function estimate {result['function_peak_rss_estimate_mb']} MB"
    )
    print(
        f"memory needed: {MEMORY_HEADROOM:g} x {create_peak} MB, rounded up to a multiple of {FC3_MEMORY_STEP_MB} MB "
        f"(at least {FC3_MIN_MEMORY_MB}) = {result['memory_needed_mb']} MB (s.yaml's 1 vCPU needs at least 1024)"
    )
    print(f"import of function/index.py: {result['import_seconds']} s")
    for create in creates:
        print(
            f"copy of {create['copy_seconds']:g} s: "
            f"{create['invocations']} invocations, seconds each {create['invocation_seconds']}"
        )
    print(
        f"worst invocation: {result['worst_invocation_seconds']} s (inline wait {result['inline_wait_seconds']:g} s, "
        f"margin {result['deadline_margin_seconds']:g} s); with every network call timing out a Create invocation "
        f"can run {result['create_invocation_bound_seconds']:g} s (one ECS call "
        f"{result['ecs_call_worst_seconds']:g} s, delivering the answer {result['answer_delivery_worst_seconds']:g} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--copy-seconds",
        type=float,
        action="append",
        help="a Create of a copy this long to run (repeatable); default 30 and 3600",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return measure_in_child(args.child)

    alone = cast(AloneFigures, run_child("import", timeout=120))
    lengths = args.copy_seconds or [30.0, 3600.0]
    creates = [cast(CreateFigures, run_child("create", str(seconds), timeout=600)) for seconds in lengths]
    result = combine(alone, creates)
    print_summary(result, creates)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
