"""``benchbench doctor``: can this machine resolve a comparison right now, and how fine a one?

Two parts. The machine's state (``benchbench.measure.machine``): load, CPU taken by other processes, steal,
cores against threads, governor and turbo. Then an **A/A comparison**: one artifact in two workers,
measured in lockstep exactly as a train/deploy pair is. Both arms run the same thing, so the true ratio
is 1.00: the interval must contain it, and its half-width is the smallest difference this machine can
resolve now (``benchmarks/aa_check.py`` checks the coverage over many trials).

The A/A comparison runs in several *sessions* (fresh pairs of workers), which measures the machine's
**between-process term**: how far two processes running the same artifact differ persistently, beyond
what their rounds say (:func:`between_process_sd`). It is cached per host, CPU and thread count
(:func:`cached_process_sd`), and every later run adds it to its paired intervals instead of the constant
``benchbench.results.estimates.PROCESS_SD``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchbench.core.spec import CellSpec, MeasureConfig
from benchbench.results.estimates import (
    WAIT_SHARE_LIMIT,
    RatioEstimate,
    quiet_rounds,
    ratio,
)

__all__ = ["AAResult", "aa_check", "between_process_sd", "cached_process_sd", "process_sd_path", "save_process_sd",
           "PROCESS_SD_TTL_S"]

# How long a measured between-process term is trusted: a week (it is a property of the machine and its
# kernel's memory placement, not of the hour; `benchbench doctor` measures it again at any time).
PROCESS_SD_TTL_S = 7 * 24 * 3600


@dataclass
class AAResult:
    spec: CellSpec
    estimate: RatioEstimate | None
    median_ms: float | None
    wait_share: float | None
    reason: str = ""  # why there is no estimate
    within: RatioEstimate | None = None  # the same ratio without the between-process term
    between: dict | None = None  # between_process_sd's reading of the sessions (with two sessions or more)
    cells: tuple = ()  # the two measured cells (A, B)

    @property
    def contains_one(self) -> bool:
        return self.estimate is not None and self.estimate.low <= 1.0 <= self.estimate.high


def aa_check(spec: CellSpec, config: MeasureConfig, servers: dict | None = None) -> AAResult:
    """Measure ``spec`` against itself in two lockstep workers; the ratio's interval should hold 1.

    ``servers`` (a dict the caller owns and closes, as a sweep's) holds the fork servers the workers start
    from, so a session's workers start in milliseconds, as a sweep's do; repeated checks share them. None:
    a dict for this call, closed at its end."""
    from benchbench.build.builds import Builds

    from .group import measure_group

    own = servers is None
    servers = {} if own else servers
    builds = Builds(config, [spec])
    try:
        cells, _ = measure_group([spec, spec], config, builds, servers)
    finally:
        builds.close()
        if own:
            for server in servers.values():
                server.close()
    a, b = cells
    if not (a.ok and b.ok):
        bad = a if not a.ok else b
        return AAResult(spec, None, None, None, f"{bad.status}: {bad.reason}")
    between = between_process_sd(b.blocks, a.blocks, b.samples_ns, a.samples_ns)
    est = ratio(b.blocks, a.blocks, samples_b=b.samples_ns, samples_a=a.samples_ns, process_sd=config.process_sd)
    within = ratio(b.blocks, a.blocks, samples_b=b.samples_ns, samples_a=a.samples_ns, process_sd=0.0)
    waits = [c.stats.get("wait_share") for c in (a, b) if c.stats.get("wait_share") is not None]
    return AAResult(spec, est, a.median_ms, max(waits) if waits else None, within=within, between=between,
                    cells=(a, b))


def between_process_sd(blocks_b: Sequence[dict], blocks_a: Sequence[dict], samples_b=None, samples_a=None,
                       wait_limit: float = WAIT_SHARE_LIMIT) -> dict | None:
    """The between-process sd of the log-ratio B/A from lockstep blocks measured in several sessions (each a
    fresh pair of workers): the spread of the sessions' mean log-ratios beyond what their own rounds explain.

    Per session, the mean m_s of its rounds' log-ratios (disturbed rounds left out, the opening block's edge
    taken out: ``estimates.quiet_rounds``) and that mean's sampling
    variance v_s (the rounds' variance over their count). Sessions differ by both, so the between-process
    variance is var(m_s) - mean(v_s), floored at 0; ``upper80`` is its one-sided 80% bound (chi-square on
    the sessions' spread). None with fewer than two sessions of at least three rounds."""
    quiet = quiet_rounds(blocks_b, blocks_a, wait_limit, samples_b, samples_a)
    logs: dict[int, list[float]] = {}
    for (session, _), log in zip(quiet.units, quiet.logs):
        logs.setdefault(session, []).append(log)
    sessions = [v for v in logs.values() if len(v) >= 3]
    if len(sessions) < 2:
        return None
    means = np.array([np.mean(v) for v in sessions])
    within = float(np.mean([np.var(v, ddof=1) / len(v) for v in sessions]))
    spread = float(np.var(means, ddof=1))
    k = len(sessions) - 1
    from scipy.stats import chi2

    return {"sd": math.sqrt(max(0.0, spread - within)),
            "upper80": math.sqrt(max(0.0, spread * k / chi2.ppf(0.2, k) - within)),
            "sessions": len(sessions), "rounds": sum(len(v) for v in sessions),
            "spread_sd": math.sqrt(spread), "within_sd": math.sqrt(within)}


def _machine_key(threads: int) -> str:
    from benchbench.core.env import host_identity

    ident = {**host_identity(), "threads": threads}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def process_sd_path(threads: int) -> Path:
    """Where the between-process term of this host, CPU and thread count is cached."""
    from benchbench.build.cache import cache_root

    return cache_root() / "doctor" / f"process-sd-t{threads}-{_machine_key(threads)}.json"


def save_process_sd(threads: int, between: dict, spec: CellSpec) -> Path:
    """Cache a measured between-process term (sealed, like the roofline's calibration)."""
    from benchbench.build.cache import ensure_root, seal, write_json

    path = process_sd_path(threads)
    ensure_root()
    path.parent.mkdir(exist_ok=True)
    write_json(path, seal({**between, "measured_at": time.time(), "threads": threads, "measured_with": spec.label()}))
    return path


def cached_process_sd(threads: int) -> dict | None:
    """The cached between-process term of this machine at ``threads`` (``sd``, ``measured_at``, …), or None
    when there is none, it is older than ``PROCESS_SD_TTL_S``, or it is damaged (then it is ignored)."""
    from benchbench.build.cache import read_json, sealed

    path = process_sd_path(threads)
    if not path.exists():
        return None
    entry = read_json(path)
    if not isinstance(entry, dict) or not sealed(entry) or not all(
            isinstance(entry.get(k), (int, float)) for k in ("sd", "upper80", "measured_at")):
        return None
    if time.time() - entry["measured_at"] > PROCESS_SD_TTL_S or not math.isfinite(entry["upper80"]):
        return None
    return entry
