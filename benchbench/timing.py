"""The sampling loop: warm up, then time inferences one by one until the median is pinned down.

The backend owns each timed call (``time_once`` returns nanoseconds, with any device sync inside),
this module owns *when to stop*. The clock is injectable so the policy is testable with a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .spec import MeasureConfig
from .stats import median_ci

__all__ = ["Sampling", "sample"]


@dataclass
class Sampling:
    samples_ns: list[int] = field(default_factory=list)
    warmup_count: int = 0
    warmup_s: float = 0.0
    sampling_s: float = 0.0
    stop_reason: str = ""  # converged | max_time | max_count

    def timing(self) -> dict:
        return {
            "warmup_count": self.warmup_count,
            "warmup_s": round(self.warmup_s, 4),
            "sampling_s": round(self.sampling_s, 4),
            "stop_reason": self.stop_reason,
        }


def _ci_rel(samples: list[int]) -> float:
    low, high = median_ci(samples)
    mid = sorted(samples)[len(samples) // 2]
    return (high - low) / 2 / mid if mid > 0 else float("inf")


def sample(
    time_once: Callable[[], int],
    config: MeasureConfig,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Sampling:
    """Warm up, then collect per-inference times (ns) under ``config``'s count/time/CI bounds."""
    out = Sampling()
    start = clock()
    while out.warmup_count < config.warmup_min_count or (clock() - start) < config.warmup_min_s * 1e9:
        time_once()
        out.warmup_count += 1
        if (clock() - start) > config.max_s * 1e9:  # a very slow model: don't spend max_s warming up
            break
    out.warmup_s = (clock() - start) / 1e9

    start = clock()
    next_check = config.min_count
    while True:
        out.samples_ns.append(int(time_once()))
        n = len(out.samples_ns)
        elapsed = (clock() - start) / 1e9
        if n >= config.max_count:
            out.stop_reason = "max_count"
            break
        if elapsed >= config.max_s and n >= 3:
            out.stop_reason = "max_time"
            break
        # The CI is an O(n) scipy call: check it at geometrically spaced counts, not every sample.
        if n >= next_check and elapsed >= config.min_s:
            if _ci_rel(out.samples_ns) <= config.target_ci:
                out.stop_reason = "converged"
                break
            next_check = max(n + 1, int(n * 1.25))
    out.sampling_s = (clock() - start) / 1e9
    return out
