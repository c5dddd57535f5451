"""``benchbench doctor``: can this machine resolve a comparison right now, and how fine a one?

Two parts. The machine's state (``benchbench.measure.machine``): load, CPU taken by other processes, steal,
cores against threads, governor and turbo. Then an **A/A comparison**: one artifact in two workers,
measured in lockstep exactly as a train/deploy pair is. Both arms run the same thing, so the true ratio
is 1.00: the interval must contain it, and its half-width is the smallest difference this machine can
resolve now (``benchmarks/aa_check.py`` checks the coverage over many trials).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.results.estimates import RatioEstimate, ratio

__all__ = ["AAResult", "aa_check"]


@dataclass
class AAResult:
    spec: CellSpec
    estimate: RatioEstimate | None
    median_ms: float | None
    wait_share: float | None
    reason: str = ""  # why there is no estimate
    within: RatioEstimate | None = None  # the same ratio without the between-process term

    @property
    def contains_one(self) -> bool:
        return self.estimate is not None and self.estimate.low <= 1.0 <= self.estimate.high


def aa_check(spec: CellSpec, config: MeasureConfig) -> AAResult:
    """Measure ``spec`` against itself in two lockstep workers; the ratio's interval should hold 1."""
    from benchbench.build.builds import Builds

    from .group import measure_group

    builds = Builds(config, [spec])
    try:
        cells, _ = measure_group([spec, spec], config, builds)
    finally:
        builds.close()
    a, b = cells
    if not (a.ok and b.ok):
        bad = a if not a.ok else b
        return AAResult(spec, None, None, None, f"{bad.status}: {bad.reason}")
    est = ratio(b.blocks, a.blocks, samples_b=b.samples_ns, samples_a=a.samples_ns)
    within = ratio(b.blocks, a.blocks, samples_b=b.samples_ns, samples_a=a.samples_ns, process_sd=0.0)
    waits = [c.stats.get("wait_share") for c in (a, b) if c.stats.get("wait_share") is not None]
    return AAResult(spec, est, a.median_ms, max(waits) if waits else None, within=within)
