"""The benchmark's figures, its targets and how they are printed.

The last line of ``roster-pipeline bench`` is machine-readable (``key=value`` pairs, ``nan`` for what was
not measured); everything above it is for a person: per-run tables, per-stage seconds, CPU of the sync
next to the simulator's, and each target with ``ok`` / ``MISSED``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from roster_pipeline.benchmark.dagster_run import RESOURCE_STAGES, STAGES, JobRun
from roster_pipeline.benchmark.measure import Usage
from roster_pipeline.records.catalogue import RESOURCES

NAN = float("nan")
FINAL_KEYS = (
    "full_s",
    "limit_s",
    "ratio_limit",
    "dlt_s",
    "ratio_dlt",
    "naive_ratio",
    "rss_mb",
    "rss_small_mb",
    "delta_ratio",
    "nochange_ratio",
    "checks_overhead",
)
# A simulator using more than this share of one core during a phase is treated as (close to) the bottleneck:
# its Python serves requests on one core, so near 1.0 the loader waits for it rather than the reverse.
SIMULATOR_BUSY_SHARE = 0.8


def ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return NAN
    return numerator / denominator


@dataclass
class Figures:
    """The raw seconds and MB the final line is computed from (nan: not measured)."""

    full_s: float = NAN
    limit_s: float = NAN
    dlt_s: float = NAN
    naive_s: float = NAN
    rss_mb: float = NAN
    rss_small_mb: float = NAN
    delta_s: float = NAN
    nochange_s: float = NAN
    validate_s: float = NAN
    check_s: float = NAN

    def final(self) -> dict[str, float]:
        return {
            "full_s": self.full_s,
            "limit_s": self.limit_s,
            "ratio_limit": ratio(self.full_s, self.limit_s),
            "dlt_s": self.dlt_s,
            "ratio_dlt": ratio(self.dlt_s, self.full_s),
            "naive_ratio": ratio(self.naive_s, self.full_s),
            "rss_mb": self.rss_mb,
            "rss_small_mb": self.rss_small_mb,
            "delta_ratio": ratio(self.delta_s, self.full_s),
            "nochange_ratio": ratio(self.nochange_s, self.full_s),
            "checks_overhead": ratio(self.validate_s + self.check_s, self.full_s),
        }

    def final_line(self) -> str:
        return " ".join(f"{key}={format_value(value)}" for key, value in self.final().items())


def format_value(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def parse_final_line(line: str) -> dict[str, float]:
    """The final line back into numbers (tests and scripts that compare runs)."""
    return {key: float(value) for key, value in (pair.split("=", 1) for pair in line.split())}


@dataclass(frozen=True)
class Target:
    label: str
    key: str
    limit: float
    at_most: bool  # True: value <= limit is ok; False: value >= limit is ok

    def verdict(self, value: float) -> str:
        if math.isnan(value):
            return "n/a (not measured)"
        ok = value <= self.limit if self.at_most else value >= self.limit
        return "ok" if ok else "MISSED"


TARGETS: tuple[Target, ...] = (
    Target("full sync ≤ 1.5× the machine's limit", "ratio_limit", 1.5, at_most=True),
    Target("≥ 3× faster than dlt", "ratio_dlt", 3.0, at_most=False),
    Target("≥ 5× faster than the naive script", "naive_ratio", 5.0, at_most=False),
    Target("peak RSS of the sync process ≤ 300 MB (large)", "rss_mb", 300.0, at_most=True),
    Target("delta after a 1% users change ≤ 5% of the full sync", "delta_ratio", 0.05, at_most=True),
    Target("full sync with no change ≤ 1.1× the first", "nochange_ratio", 1.1, at_most=True),
    Target(
        "checks (validation + references + thresholds) ≤ 20% of the full sync",
        "checks_overhead",
        0.20,
        at_most=True,
    ),
)


def seconds(value: float | None, width: int = 9) -> str:
    return f"{'n/a':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}.2f}"


def usage_line(name: str, usage: Usage) -> str:
    """Wall, CPU and peak RSS of a phase's process, with the simulator's CPU over the same seconds."""
    busy = usage.sim_share
    verdict = (
        ""
        if math.isnan(busy)
        else (
            " ok (not the bottleneck)"
            if busy < SIMULATOR_BUSY_SHARE
            else " MISSED (simulator near one core: it may be the bottleneck)"
        )
    )
    return (
        f"{name}: wall {usage.wall_s:.2f}s, CPU {usage.cpu_s:.2f}s, peak RSS {usage.peak_rss_mb:.0f} MB | "
        f"simulator CPU {usage.sim_cpu_s:.2f}s ({100 * busy:.0f}% of one core){verdict}"
    )


def print_loader(
    name: str,
    usage: Usage,
    records: Mapping[str, int],
    expected: Mapping[str, int] | None,
    requests: int | None = None,
) -> None:
    """One comparison loader: its figures and whether it got every record the simulator holds."""
    print(usage_line(name, usage))
    total = sum(records.values())
    extra = f", {requests} requests" if requests is not None else ""
    rate = total / usage.wall_s if usage.wall_s > 0 else 0.0
    print(f"  {total} records{extra}, {rate:.0f} records/s")
    if expected is not None:
        missing = {k: (records.get(k, 0), v) for k, v in expected.items() if records.get(k, 0) != v}
        print(
            "  record counts match the simulator"
            if not missing
            else f"  COUNTS DIFFER from the simulator: {missing}"
        )


def print_job_run(run: JobRun, header: str) -> None:
    """Per-resource and per-stage seconds of a Dagster run, its steps and the Dagster/process overhead."""
    print(f"\n{header} (Dagster job sync_district, run {run.run_id}, {run.mode})")
    print(usage_line("  process", run.usage))
    print(
        f"{'resource':<18}{'records':>10}{'step s':>9}"
        + "".join(f"{s:>9}" for s in RESOURCE_STAGES)
        + f"{'rec/s':>10}"
    )
    for resource in RESOURCES:
        name = resource.name
        stages = run.stage_seconds.get(name, {})
        step = run.step_seconds.get(name)
        fetched = run.rows_fetched.get(name, 0)
        rate = fetched / step if step else 0.0
        print(
            f"{name:<18}{fetched:>10}{seconds(step)}"
            + "".join(seconds(stages.get(s)) for s in RESOURCE_STAGES)
            + f"{rate:>10.0f}"
        )
    print(
        "stages (s, summed over resources): "
        + "  ".join(f"{s} {seconds(run.stage_total(s), 0)}" for s in STAGES)
    )
    steps = "  ".join(f"{k} {v:.2f}" for k, v in run.step_seconds.items())
    print(f"steps (s): {steps}")
    total = sum(run.rows_fetched.values())
    print(
        f"total: {total} records in {run.wall_s:.1f}s wall = {total / run.wall_s:.0f} records/s; steps "
        f"{run.steps_total:.2f}s, Dagster/process overhead {run.overhead_s:.2f}s"
    )


def print_targets(
    figures: Figures, sim_cpu: Mapping[str, tuple[float, float]], print_fn: Callable[[str], None] = print
) -> None:
    """Each target next to its figure; the simulator's CPU next to the sync's for every phase."""
    values = figures.final()
    print_fn("\ntargets:")
    for target in TARGETS:
        op = "≤" if target.at_most else "≥"
        print_fn(
            f"  {target.label:<72} {target.key}={format_value(values[target.key])} ({op} {target.limit:g}): "
            f"{target.verdict(values[target.key])}"
        )
    print_fn(
        f"  {'small district peak RSS (for comparison)':<72} rss_small_mb={format_value(figures.rss_small_mb)}"
    )
    print_fn(
        "  the simulator is not the bottleneck (CPU seconds: loader process vs simulator, same interval):"
    )
    for phase, (loader_cpu, simulator_cpu) in sim_cpu.items():
        print_fn(f"    {phase:<22} loader {loader_cpu:8.2f}s   simulator {simulator_cpu:8.2f}s")
