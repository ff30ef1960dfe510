"""Benchmark: what each way of waiting for a copy costs on Function Compute, in yuan and seconds, side by side.

Runs, in one process on the local cloud's virtual clock, this provider and the three baselines of
bench/baselines.py (``sleep60``, ``poll5``, ``fixed300``) over the same copies: about 5, 60, 240 and 720 minutes
(``CopyPlan.about``: 94 to 99% of that, seeded), each up to 15% of its time queued at 0%, then 3 to 6 stretches
at rates 1 +- 30% of the average, reported in whole percents. Every strategy runs as an FC function in the FC
stand-in and talks to the ECS and ROS stand-ins over HTTP with the real SDKs, each request taking
``--network-ms`` of virtual time.

Billing model (FC 3.0, the configured ``--cpu`` and ``--memory``; docs/conformance.md cites the sources):
- An invocation's billed seconds = the time it waits on the network or sleeps (virtual) + its CPU time divided by
  the vCPU share (at most 1: the work is one thread). Its CPU time is what its own thread used here, plus, on a
  cold instance, the import of its handler and the first-use work (SDK clients, lazy imports), both measured in
  fresh processes.
- Instances: an invocation that starts within ``--keep-alive`` seconds of the end of the previous one finds that
  instance warm; otherwise it starts a new one (cold). FC documents a 1-minute delayed release by default and an
  idle instance kept "usually 3 to 5 minutes": 60 s is the conservative default.
- Cost in CU: active vCPU-seconds x 1 + GB-seconds x 0.15 + 75 per 10,000 invocations; the minute an instance is
  kept after its last request is billed for its memory only (idle vCPU is 0 CU). CNY at the tier-1 list price,
  0.00011 per CU. The hourly rounding up to a whole CU and the minimum of 0.01 CNY per active function-hour
  are left out (they apply to every strategy alike and hide the differences).
- Detection: from the copy becoming Available in ECS to the answer arriving at ROS, plus the answering
  invocation's CPU time (which virtual time does not contain).

Run from the repository root: ``.venv/bin/python -m bench.compare`` (``--quick`` for CI). The chart needs
matplotlib (bench/requirements.txt). The last line printed is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import compileall
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.figures import (
    ColdFigures,
    Figures,
    ModelFigures,
    Outcome,
    Results,
    Tradeoff,
    check_targets,
    summarise,
)
from bench.report import STRATEGIES, chart, print_cold_start, print_table, print_tradeoff
from emulator.cloud import LocalCloud
from emulator.progress import CopyPlan

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
FUNCTION_DIR = ROOT / "function"

CU_PER_VCPU_SECOND = 1.0
CU_PER_GB_SECOND = 0.15
CU_PER_INVOCATION = 75 / 10_000
HANDLERS = {
    "provider": (FUNCTION_DIR, "index.handler", "index"),
    "sleep60": (BENCH_DIR, "baselines.sleep60", "baselines"),
    "poll5": (BENCH_DIR, "baselines.poll5", "baselines"),
    "fixed300": (BENCH_DIR, "baselines.fixed300", "baselines"),
}
SDK_MODULE = "alibabacloud_ecs20140526.client"
DESTINATION = "cn-shanghai"


@dataclass(frozen=True)
class Model:
    vcpu: float
    memory_mb: int
    keep_alive: float
    network_seconds: float
    timeout: float  # the function's timeout: FC stops an invocation there

    @property
    def gb(self) -> float:
        return self.memory_mb / 1024

    @property
    def cpu_speed(self) -> float:
        return min(self.vcpu, 1.0)


def deployed_model(keep_alive: float = 60.0, network_ms: float = 100.0) -> Model:
    """The configuration s.yaml deploys: its cpu, memorySize and timeout."""
    import yaml

    resources = yaml.safe_load((ROOT / "s.yaml").read_text(encoding="utf-8"))["resources"]
    props = next(iter(resources.values()))["props"]
    return Model(float(props["cpu"]), int(props["memorySize"]), keep_alive, network_ms / 1000, float(props["timeout"]))


@dataclass(frozen=True)
class ColdStart:
    import_cpu: float  # seconds of CPU to import the handler in a fresh process
    first_use_cpu: float  # the extra CPU of the first invocation in a fresh process (SDK clients, lazy imports)


# --- cold starts, measured in fresh processes -------------------------------------------------------------------

_IMPORT_PROBE = """
import resource, sys, time
sys.path[:0] = {paths!r}
started = time.process_time()
import {module}
print(time.process_time() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def import_cost(module: str, paths: Sequence[Path]) -> tuple[float, float]:
    """CPU seconds to import ``module`` in a fresh interpreter, and its peak RSS in MB (one run)."""
    code = _IMPORT_PROBE.format(paths=[str(p) for p in paths], module=module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    cpu, rss = out.stdout.split()
    return float(cpu), float(rss)


def import_costs(repeat: int = 11) -> tuple[float, float, float]:
    """Import CPU of the handler and of the ECS SDK alone, measured alternately, and the handler's peak RSS.
    The least of the runs: another process on the machine only ever adds CPU time (cache misses, a slower
    clock), never removes it, so the least is the closest to the import's own cost (as timeit reports)."""
    handler, sdk, rss = [], [], 0.0
    for _ in range(repeat):
        cpu, peak = import_cost("index", [FUNCTION_DIR])
        handler.append(cpu)
        rss = max(rss, peak)
        sdk.append(import_cost(SDK_MODULE, [FUNCTION_DIR])[0])
    return min(handler), min(sdk), rss


def largest_imports(module: str, paths: Sequence[Path], count: int = 5) -> list[tuple[str, float]]:
    """The top-level packages whose import costs the most (``-X importtime`` self times, added up), seconds."""
    code = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}; import {module}"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s+(\S.*)$", line)
        if match:
            package = match.group(2).strip().split(".")[0]
            totals[package] = totals.get(package, 0.0) + int(match.group(1)) / 1e6
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


_FIRST_USE_PROBE = """
import json, logging, os, sys
sys.path[:0] = [{root!r}, {function!r}]
os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
sys.argv = ["compare"]
import bench.compare as compare
print(json.dumps(compare.first_use_probe({strategy!r})))
"""


def first_use_probe(strategy: str) -> list[float]:
    """CPU of the first invocation of two identical short copies run one after the other in this process."""
    cpu = []
    with strategy_cloud(strategy, Model(1.0, 1024, 60.0, 0.0, 86_400.0)) as cloud:
        for seed in (1, 2):
            cloud.reset(seed)
            cloud.ecs.copy_plan = lambda: CopyPlan.steady(600.0)
            run_copy(cloud)
            cpu.append(cloud.fc.invocations[0].cpu_seconds)
    return cpu


def cold_start(strategy: str, repeat: int = 3) -> ColdStart:
    directory, _, module = HANDLERS[strategy]
    import_cpu = statistics.median(import_cost(module, [directory, FUNCTION_DIR])[0] for _ in range(3))
    extras = []
    for _ in range(repeat):
        code = _FIRST_USE_PROBE.format(root=str(ROOT), function=str(FUNCTION_DIR), strategy=strategy)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        first, second = json.loads(out.stdout.strip().splitlines()[-1])
        extras.append(max(0.0, first - second))
    return ColdStart(import_cpu, statistics.median(extras))


# --- running the strategies --------------------------------------------------------------------------------------


def strategy_cloud(strategy: str, model: Model, settings: dict[str, str] | None = None) -> LocalCloud:
    """A local cloud whose function is ``strategy`` with ``settings`` in its environment (start it with ``with``)."""
    directory, handler, _ = HANDLERS[strategy]
    return LocalCloud(code_dir=directory, handler=handler, function_timeout=model.timeout, environment=settings)


def run_copy(cloud: LocalCloud) -> tuple[dict[str, object], float]:
    """One Create on the running cloud, to the end; returns ROS's request and when ROS took the answer (or inf)."""
    source = cloud.seed_image("bench-source")
    request = cloud.ros.new_request("Create", {"ImageId": source.image_id, "DestinationRegionId": DESTINATION})
    cloud.fc.invoke(json.dumps(request).encode(), invocation_type="Async")
    cloud.fc.wait_idle(timeout=7 * 86_400)
    answers = [a for a in cloud.ros.answers if a.request_id == request["RequestId"] and a.accepted]
    return request, (answers[0].at if answers else math.inf)


def measure(cloud: LocalCloud, strategy: str, minutes: float, seed: int, model: Model, cold: ColdStart) -> Outcome:
    plan = CopyPlan.about(minutes, seed)
    copy_seconds = plan.duration
    cloud.reset(seed)
    for stand_in in (cloud.ecs, cloud.fc, cloud.ros):
        stand_in.latency_seconds = model.network_seconds
    cloud.ecs.copy_plan = lambda: plan
    _, answered_at = run_copy(cloud)
    copies = [image for image in cloud.ecs.images(DESTINATION) if image.is_copy]
    available_at = copies[0].available_at if copies else None
    runs = sorted(cloud.fc.invocations, key=lambda run: run.started_at)
    billed = cu = kept = 0.0
    instances: list[list[float]] = []  # [busy until, last request's end] of each instance
    cpu_of: dict[int, float] = {}  # CPU seconds of each run, cold work included
    for run in runs:
        instance = next((i for i in instances if i[0] <= run.started_at <= i[1] + model.keep_alive), None)
        cpu_of[id(run)] = run.cpu_seconds + (0.0 if instance else cold.import_cpu + cold.first_use_cpu)
        duration = min(model.timeout, run.billed_seconds + cpu_of[id(run)] / model.cpu_speed)
        if instance is None:
            instance = [0.0, run.started_at]
            instances.append(instance)
        else:
            kept += (run.started_at - instance[1]) * model.gb * CU_PER_GB_SECOND  # idle since its last request
        instance[0] = instance[1] = run.started_at + duration
        billed += duration
        cu += duration * (model.vcpu * CU_PER_VCPU_SECOND + model.gb * CU_PER_GB_SECOND) + CU_PER_INVOCATION
    kept += len(instances) * model.keep_alive * model.gb * CU_PER_GB_SECOND  # each kept after its last run
    detection = None
    if not any(run.timed_out for run in runs) and available_at is not None and math.isfinite(answered_at):
        answering = max((r for r in runs if r.started_at <= answered_at), key=lambda r: r.started_at)
        detection = answered_at - available_at + cpu_of[id(answering)] / model.cpu_speed
    return Outcome(
        copy_seconds=copy_seconds,
        invocations=len(runs),
        cold_starts=len(instances),
        describe_calls=len(cloud.ecs.calls_to("DescribeImages")),
        billed_seconds=billed,
        cu=cu,
        kept_cu=kept,
        detection_seconds=detection,
    )


TRADEOFF_PRECISIONS = (3.0, 5.0, 8.0, 12.0, 20.0)
PRECISION_SETTING = "COPYIMAGE_PRECISION_SECONDS"
CHOSEN_PRECISION = 8.0  # the function's default, copyimage.waiting.PRECISION_SECONDS


def tradeoff(minutes: float, seeds: int, model: Model, cold: ColdStart) -> Tradeoff:
    """Fewer looks against faster detection: the provider's figures at other settings of the estimator's
    precision, each set as a deployment would set it (COPYIMAGE_PRECISION_SECONDS, read into Settings)."""
    points: dict[str, Figures] = {}
    for precision in TRADEOFF_PRECISIONS:
        with strategy_cloud("provider", model, {PRECISION_SETTING: f"{precision:g}"}) as cloud:
            figures = summarise([measure(cloud, "provider", minutes, seed, model, cold) for seed in range(seeds)])
        points[f"{precision:g}"] = figures
    return Tradeoff(minutes, CHOSEN_PRECISION, points)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 60, 240, 720])
    parser.add_argument("--seeds", type=int, default=20, help="copies per length for the provider")
    parser.add_argument("--baseline-seeds", type=int, default=5, help="copies per length for each baseline")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    deployed = deployed_model()
    parser.add_argument("--cpu", type=float, default=deployed.vcpu, help="vCPU (default: s.yaml's cpu)")
    parser.add_argument("--memory", type=int, default=deployed.memory_mb, help="MB (default: s.yaml's memorySize)")
    parser.add_argument("--keep-alive", type=float, default=60.0, help="seconds an idle instance stays warm")
    parser.add_argument("--network-ms", type=float, default=100.0, help="virtual time each request takes")
    parser.add_argument("--timeout", type=float, default=deployed.timeout, help="the functions' timeout (s.yaml)")
    parser.add_argument("--quick", action="store_true", help="5 and 60 minutes, 5 seeds, 1 per baseline")
    parser.add_argument("--chart", type=Path, default=None, help="save the chart here (e.g. docs/compare.png)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target of issue 10 is missed")
    parser.add_argument("--tradeoff", action="store_true", help="also the provider at other estimator precisions")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.seeds, args.baseline_seeds = [5, 60], 5, 1
    return args


def cold_figures(strategies: Sequence[str]) -> tuple[ColdFigures, dict[str, ColdStart]]:
    """The handler's import against the ECS SDK's, and each strategy's cold start."""
    # The package ships its bytecode (make package, s build): measure with it, whatever PYTHONDONTWRITEBYTECODE says.
    compileall.compile_dir(str(FUNCTION_DIR), quiet=1)
    handler_cpu, sdk_cpu, handler_rss = import_costs()
    colds = {strategy: cold_start(strategy) for strategy in strategies}
    figures = ColdFigures(
        handler_import_cpu_seconds=round(handler_cpu, 3),
        ecs_sdk_import_cpu_seconds=round(sdk_cpu, 3),
        import_ratio=round(handler_cpu / sdk_cpu, 3),
        largest_imports=[(name, round(s, 3)) for name, s in largest_imports("index", [FUNCTION_DIR])],
        handler_import_peak_rss_mb=round(handler_rss, 1),
        first_use_cpu_seconds={s: round(c.first_use_cpu, 3) for s, c in colds.items()},
    )
    return figures, colds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING)
    model = Model(args.cpu, args.memory, args.keep_alive, args.network_ms / 1000, args.timeout)
    started = time.monotonic()
    cold, colds = cold_figures(args.strategies)
    model_figures = ModelFigures(model.vcpu, model.memory_mb, model.keep_alive, args.network_ms, model.timeout)
    results = Results(model_figures, cold)
    for strategy in args.strategies:
        seeds = args.seeds if strategy == "provider" else args.baseline_seeds
        results.strategies[strategy] = {}
        with strategy_cloud(strategy, model) as cloud:
            for minutes in args.minutes:
                outcomes = [measure(cloud, strategy, minutes, seed, model, colds[strategy]) for seed in range(seeds)]
                results.strategies[strategy][f"{minutes:g}"] = summarise(outcomes)
        if strategy == "provider" and args.tradeoff:
            results.tradeoff = tradeoff(max(args.minutes), args.seeds, model, colds[strategy])
    results.elapsed_seconds = round(time.monotonic() - started, 1)

    print_cold_start(results)
    print_table(results, args.minutes)
    if results.tradeoff is not None:
        print_tradeoff(results.tradeoff)
    if args.chart is not None:
        chart(results, args.minutes, args.chart, ROOT)
    missed = check_targets(results, args.minutes) if "provider" in results.strategies else []
    print("\ntargets:", "all met" if not missed else "MISSED: " + "; ".join(missed))
    print(json.dumps(results.to_json()))
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
