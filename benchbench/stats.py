"""Summary statistics of raw latency samples (nanoseconds in, milliseconds out), via scipy.stats."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["summarize", "median_ci", "mann_whitney", "geometric_mean"]


def median_ci(samples, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median (binomial order statistics, ``scipy.stats.quantile_test``)."""
    from scipy.stats import quantile_test

    x = np.asarray(samples, dtype=float)
    if x.size < 6:  # too few order statistics for a 95% interval
        return float(x.min()), float(x.max())
    ci = quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(confidence)
    low = float(ci.low) if math.isfinite(ci.low) else float(x.min())
    high = float(ci.high) if math.isfinite(ci.high) else float(x.max())
    return low, high


def summarize(samples_ns, noisy_ci: float = 0.05, noisy_cv: float = 0.10) -> dict:
    """Median (the headline), mean, std, min, max, p90, p99, the median's 95% CI, and a noisy flag.

    ``noisy`` is set when the CI's half-width exceeds ``noisy_ci`` of the median or the robust
    coefficient of variation (1.4826 MAD / median) exceeds ``noisy_cv``.
    """
    from scipy.stats import median_abs_deviation

    x = np.asarray(samples_ns, dtype=float) / 1e6
    if x.size == 0:
        return {"count": 0}
    median = float(np.median(x))
    low, high = median_ci(x)
    half = (high - low) / 2
    ci_rel = half / median if median > 0 else math.inf
    robust_cv = float(median_abs_deviation(x, scale="normal")) / median if median > 0 else math.inf
    return {
        "count": int(x.size),
        "median_ms": median,
        "mean_ms": float(x.mean()),
        "std_ms": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "min_ms": float(x.min()),
        "max_ms": float(x.max()),
        "p90_ms": float(np.percentile(x, 90)),
        "p99_ms": float(np.percentile(x, 99)),
        "ci_low_ms": low,
        "ci_high_ms": high,
        "ci_rel": ci_rel,
        "robust_cv": robust_cv,
        "noisy": bool(ci_rel > noisy_ci or robust_cv > noisy_cv),
    }


def mann_whitney(a, b) -> float:
    """Two-sided Mann-Whitney U p-value of two sample sets (nan if either is too small)."""
    from scipy.stats import mannwhitneyu

    if len(a) < 3 or len(b) < 3:
        return math.nan
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def geometric_mean(values) -> float:
    from scipy.stats import gmean

    vals = [v for v in values if v and math.isfinite(v) and v > 0]
    return float(gmean(vals)) if vals else math.nan
