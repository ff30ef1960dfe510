"""The benchmark's report: the table per copy length, the trade-off lines, and the chart (matplotlib, optional)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.figures import Figures, Results, Tradeoff

STRATEGIES = ("provider", "sleep60", "poll5", "fixed300")


def print_cold_start(results: Results) -> None:
    cold = results.cold_start
    print(
        f"cold start: handler import {cold.handler_import_cpu_seconds} CPU-s, ECS SDK alone "
        f"{cold.ecs_sdk_import_cpu_seconds} (ratio {cold.import_ratio}), peak RSS "
        f"{cold.handler_import_peak_rss_mb} MB; first use adds {cold.first_use_cpu_seconds}"
    )
    print("largest imports:", ", ".join(f"{name} {s:.3f} s" for name, s in cold.largest_imports))


def print_table(results: Results, lengths: Sequence[float]) -> None:
    header = (
        f"{'strategy':<10}{'runs':>5}{'invoc.':>8}{'cold':>6}{'Describe':>9}{'billed s':>10}{'billed %':>9}"
        f"{'CNY':>10}{'+kept CNY':>10}{'detect p90':>11}{'failed':>7}"
    )
    for minutes in lengths:
        key = f"{minutes:g}"
        print(f"\ncopy of {key} min")
        print(header)
        for strategy in STRATEGIES:
            f = results.strategies.get(strategy, {}).get(key)
            if f is None:
                continue
            detect = "-" if f.detection_p90_seconds is None else f"{f.detection_p90_seconds:.1f}"
            print(
                f"{strategy:<10}{f.runs:>5}{f.invocations:>8.1f}{f.cold_starts:>6.1f}"
                f"{f.describe_calls:>9.1f}{f.billed_seconds:>10.1f}{100 * f.billed_fraction:>8.2f}%"
                f"{f.cost_cny:>10.5f}{f.cost_cny_with_retention:>10.5f}{detect:>11}{f.failed_runs:>7}"
            )


def print_tradeoff(trade: Tradeoff) -> None:
    print(f"\nprovider at other estimator precisions, {trade.minutes:g}-minute copies (chosen {trade.chosen:g} s):")
    for precision, f in trade.points.items():
        print(
            f"  {precision:>4} s: DescribeImages mean {f.describe_calls:.1f}, most {f.describe_calls_max}; "
            f"detection p90 {f.detection_p90_seconds} s; {f.invocations:.1f} invocations; CNY {f.cost_cny:.5f}"
        )


def chart(results: Results, lengths: Sequence[float], path: Path, root: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -r bench/requirements.txt): no chart")
        return False
    panels = 3 if results.tradeoff is not None else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.4))
    _strategy_panels(results, lengths, axes[0], axes[1])
    if results.tradeoff is not None:
        _tradeoff_panel(results.tradeoff, axes[2])
    model = results.model
    figure.suptitle(
        f"{model.vcpu:g} vCPU, {model.memory_mb} MB, keep-alive {model.keep_alive:g} s, "
        f"{model.network_ms:g} ms per request; sleep60 is stopped at a {model.timeout:g} s timeout"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"chart: {path.relative_to(root) if path.is_relative_to(root) else path}")
    return True


def _strategy_panels(results: Results, lengths: Sequence[float], cost_axis: Any, detect_axis: Any) -> None:
    """Cost (dashed: with the instance kept a minute) and detection against copy length, per strategy."""
    for strategy in STRATEGIES:
        figures: dict[str, Figures] = results.strategies.get(strategy, {})
        if not figures:
            continue
        xs = [m for m in lengths if f"{m:g}" in figures]
        failed = sum(figures[f"{m:g}"].failed_runs for m in xs)
        runs = sum(figures[f"{m:g}"].runs for m in xs)
        label = strategy if not failed else f"{strategy}: {failed} of {runs} never answered"
        (line,) = cost_axis.plot(xs, [figures[f"{m:g}"].cost_cny for m in xs], marker="o", label=label)
        kept = [figures[f"{m:g}"].cost_cny_with_retention for m in xs]
        cost_axis.plot(xs, kept, linestyle="--", linewidth=0.8, color=line.get_color())
        points = [(m, figures[f"{m:g}"].detection_p90_seconds) for m in xs]
        shown = [(m, d) for m, d in points if d is not None]
        detect_axis.plot([m for m, _ in shown], [d for _, d in shown], marker="o", label=label, color=line.get_color())
    cost_axis.set(
        xscale="log",
        yscale="log",
        xlabel="copy (minutes)",
        ylabel="CNY per copy",
        title="Cost on FC 3.0, list price (dashed: + 1-min instance retention)",
    )
    detect_axis.set(
        xscale="log", yscale="log", xlabel="copy (minutes)", ylabel="seconds (p90)", title="Copy Available -> ROS"
    )
    for axis in (cost_axis, detect_axis):
        axis.set_xticks(list(lengths), [f"{m:g}" for m in lengths])
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()


def _tradeoff_panel(trade: Tradeoff, axis: Any) -> None:
    """The provider's looks against detection, one point per estimator precision."""
    points = [(float(p), f) for p, f in trade.points.items()]
    xs = [f.describe_calls_max for _, f in points]
    ys = [f.detection_p90_seconds for _, f in points]
    axis.plot(xs, ys, marker="o", color="tab:blue")
    for (precision, _), x, y in zip(points, xs, ys, strict=True):
        label = f"{precision:g} s" + (" (chosen)" if precision == trade.chosen else "")
        axis.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5))
    axis.axvline(60, color="grey", linestyle=":", linewidth=1)
    axis.axhline(10, color="grey", linestyle=":", linewidth=1)
    axis.set(
        xlabel="DescribeImages calls (most of 20 copies)",
        ylabel="detection p90 (s)",
        title=f"Provider, {trade.minutes:g}-min copies: estimator precision",
    )
    axis.grid(True, alpha=0.3)
