"""The benchmark's results, typed: one strategy's figures per copy length, the estimator trade-off, and the run.

``Results.to_json`` gives the JSON object ``bench.compare`` prints last (the shape the README's figures came from).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

CNY_PER_CU = 0.00011  # tier 1, list price


@dataclass(frozen=True)
class Outcome:
    """One strategy on one copy."""

    copy_seconds: float
    invocations: int
    cold_starts: int
    describe_calls: int
    billed_seconds: float
    cu: float  # the model: active time and invocations; the time between invocations costs nothing
    kept_cu: float  # on top: the memory of instances kept after their last request (FC's 1-minute release)
    detection_seconds: float | None  # None: never answered (the function was stopped at its timeout)


@dataclass(frozen=True)
class Figures:
    """One strategy over the copies of one length (means unless ``_max``)."""

    runs: int
    failed: bool  # some copy was never answered (the function was stopped at its timeout)
    failed_runs: int
    invocations: float
    cold_starts: float
    describe_calls: float
    describe_calls_max: int
    billed_seconds: float
    billed_seconds_max: float
    billed_fraction: float
    billed_fraction_max: float
    cu: float
    cost_cny: float
    kept_cu: float
    cost_cny_with_retention: float
    detection_p90_seconds: float | None
    detection_max_seconds: float | None


@dataclass(frozen=True)
class Tradeoff:
    """The provider at several estimator precisions (seconds, as text) on copies of ``minutes``."""

    minutes: float
    chosen: float
    points: dict[str, Figures]


@dataclass(frozen=True)
class ModelFigures:
    vcpu: float
    memory_mb: int
    keep_alive: float
    network_ms: float
    timeout: float
    cny_per_cu: float = CNY_PER_CU


@dataclass(frozen=True)
class ColdFigures:
    handler_import_cpu_seconds: float
    ecs_sdk_import_cpu_seconds: float
    import_ratio: float
    largest_imports: list[tuple[str, float]]
    handler_import_peak_rss_mb: float
    first_use_cpu_seconds: dict[str, float]


@dataclass
class Results:
    model: ModelFigures
    cold_start: ColdFigures
    strategies: dict[str, dict[str, Figures]] = field(default_factory=dict)  # strategy -> copy minutes -> figures
    tradeoff: Tradeoff | None = None
    elapsed_seconds: float = 0.0

    @property
    def import_ratio(self) -> float:
        return self.cold_start.import_ratio

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"model": asdict(self.model), "cold_start": asdict(self.cold_start)}
        for strategy, by_length in self.strategies.items():
            out[strategy] = {key: asdict(figures) for key, figures in by_length.items()}
        if self.tradeoff is not None:
            out["tradeoff"] = asdict(self.tradeoff)
        out["import_ratio"] = self.import_ratio
        out["elapsed_seconds"] = self.elapsed_seconds
        return out


def p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summarise(outcomes: list[Outcome]) -> Figures:
    detections = [o.detection_seconds for o in outcomes if o.detection_seconds is not None]
    cu = statistics.mean(o.cu for o in outcomes)
    kept = statistics.mean(o.kept_cu for o in outcomes)
    fractions = [o.billed_seconds / o.copy_seconds for o in outcomes]
    failed = sum(o.detection_seconds is None for o in outcomes)
    return Figures(
        runs=len(outcomes),
        failed=failed > 0,
        failed_runs=failed,
        invocations=round(statistics.mean(o.invocations for o in outcomes), 1),
        cold_starts=round(statistics.mean(o.cold_starts for o in outcomes), 1),
        describe_calls=round(statistics.mean(o.describe_calls for o in outcomes), 1),
        describe_calls_max=max(o.describe_calls for o in outcomes),
        billed_seconds=round(statistics.mean(o.billed_seconds for o in outcomes), 1),
        billed_seconds_max=round(max(o.billed_seconds for o in outcomes), 1),
        billed_fraction=round(statistics.mean(fractions), 5),
        billed_fraction_max=round(max(fractions), 5),
        cu=round(cu, 2),
        cost_cny=round(cu * CNY_PER_CU, 6),
        kept_cu=round(kept, 2),
        cost_cny_with_retention=round((cu + kept) * CNY_PER_CU, 6),
        detection_p90_seconds=round(p90(detections), 1) if detections else None,
        detection_max_seconds=round(max(detections), 1) if detections else None,
    )


def check_targets(results: Results, lengths: Sequence[float]) -> list[str]:
    """The issue's figures for this provider; returns the ones missed."""
    missed = []
    provider, poll5 = results.strategies["provider"], results.strategies.get("poll5", {})
    for minutes in lengths:
        key = f"{minutes:g}"
        figures = provider[key]
        if minutes >= 60:
            missed += _long_copy_misses(key, minutes, figures, poll5.get(key))
        elif minutes <= 5:
            if figures.detection_max_seconds is None or figures.detection_max_seconds > 10:
                missed.append(f"{key} min: detection {figures.detection_max_seconds} s > 10 s")
            if figures.billed_seconds_max > 30:
                missed.append(f"{key} min: billed {figures.billed_seconds_max} s > 30 s")
    if results.import_ratio > 1.1:
        missed.append(f"handler import {results.import_ratio:.2f} times the ECS SDK's > 1.1")
    return missed


def _long_copy_misses(key: str, minutes: float, figures: Figures, poll5: Figures | None) -> list[str]:
    missed = []
    detection = figures.detection_p90_seconds
    if figures.billed_fraction_max > 0.01:
        missed.append(f"{key} min: billed {100 * figures.billed_fraction_max:.2f}% > 1%")
    if detection is None or detection > 10:
        missed.append(f"{key} min: detection p90 {detection} s > 10 s")
    most = 30 if minutes <= 60 else 60
    if figures.describe_calls_max > most:
        missed.append(f"{key} min: {figures.describe_calls_max} DescribeImages > {most}")
    if poll5 is not None:
        if poll5.cu < 10 * figures.cu:
            missed.append(f"{key} min: only {poll5.cu / figures.cu:.1f} times cheaper than poll5")
        if detection is not None and detection > (poll5.detection_p90_seconds or 0) + 5:
            missed.append(f"{key} min: detection more than 5 s later than poll5's")
    return missed
