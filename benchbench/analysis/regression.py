"""Small pieces the claim's regressions share: cluster-robust covariances, and a log-scale sd read from an
interval."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Z95", "cluster_sandwich", "log_sd_of_interval"]

Z95 = 1.96  # the normal quantile of a two-sided 95% interval, to the two decimals every interval here uses


def cluster_sandwich(scores: np.ndarray, resid: np.ndarray, groups: np.ndarray, bread: np.ndarray) -> np.ndarray:
    """``bread @ meat @ bread`` with meat = Σ over clusters of (scoresᵀ resid)(scoresᵀ resid)ᵀ: the cluster-robust
    covariance before any small-sample factor. ``scores`` are the design rows as they enter the normal equations
    (demeaned, or times the weights); a cluster whose scores are all zero adds nothing."""
    meat = np.zeros((scores.shape[1], scores.shape[1]))
    for g in np.unique(groups):
        m = groups == g
        s = scores[m].T @ resid[m]
        meat += np.outer(s, s)
    return bread @ meat @ bread


def log_sd_of_interval(low: float, high: float) -> float:
    """The sd on the log scale of a quantity whose 95% interval is [low, high] (log-normal): width / (2 z)."""
    return (math.log(high) - math.log(low)) / (2 * Z95)
