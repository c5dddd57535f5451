"""Warm-up: run inferences until both a count and a time bound are met, before anything is timed.

The backend owns each timed call (``time_once`` returns nanoseconds, with any device sync inside).
What happens after warm-up, the timed blocks, is the lockstep scheduler's (``benchbench.measure.scheduler``).
The clock is injectable so the policy is testable with a fake one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchbench.core.spec import MeasureConfig

__all__ = ["WarmUp", "warm_up"]


@dataclass(frozen=True)
class WarmUp:
    count: int
    seconds: float
    estimate_ns: int  # median of the warm-up inferences: sizes the timed blocks


def warm_up(
    time_once: Callable[[], int],
    config: MeasureConfig,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> WarmUp:
    """At least ``warmup_min_count`` runs and ``warmup_min_s`` seconds; a very slow model stops at ``max_s``."""
    times: list[int] = []
    start = clock()
    while len(times) < config.warmup_min_count or (clock() - start) < config.warmup_min_s * 1e9:
        times.append(int(time_once()))
        if (clock() - start) > config.max_s * 1e9:  # don't spend a whole cell's budget warming up
            break
    # The second half only: the first inferences after prepare are the slowest (caches, lazy init).
    tail = times[len(times) // 2:] or times
    return WarmUp(len(times), (clock() - start) / 1e9, int(statistics.median(tail)))
