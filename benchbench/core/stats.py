"""Summary statistics of raw latency samples (nanoseconds in, milliseconds out).

The median's confidence interval and the MAD are computed with numpy alone: the measure worker calls
them inside its sampling loop, and importing ``scipy.stats`` there cost ~1.2 s per cell (every cell
is a fresh process). ``tests/test_timing.py`` checks them against ``scipy.stats``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

__all__ = ["summarize", "median_ci", "serial_median_ci", "hodges_lehmann", "hodges_lehmann_centre",
           "hodges_lehmann_shift", "sign_autocorrelation", "student_t_quantile", "mann_whitney", "geometric_mean"]

# 1 / Phi^-1(3/4): scales the median absolute deviation to a normal distribution's sigma.
_MAD_TO_SIGMA = 1.482602218505602


def _binomial_half_cdf(n: int) -> np.ndarray:
    """CDF of Binomial(n, 1/2) at k = 0..n, from log binomial coefficients (stable for large n)."""
    k = np.arange(1, n + 1, dtype=float)
    log_comb = np.concatenate([[0.0], np.cumsum(np.log((n - k + 1) / k))])
    return np.cumsum(np.exp(log_comb + n * math.log(0.5)))


def median_ci(samples, confidence: float = 0.95, log_scale: bool = False) -> tuple[float, float]:
    """Distribution-free CI of the median from binomial order statistics.

    The same interval as ``scipy.stats.quantile_test(x, q=median, p=0.5).confidence_interval()``:
    the order statistics at ``ppf(a) - 1`` and ``isf(a)`` of Binomial(n, 1/2), ``a = (1 - confidence) / 2``.
    Below 6 values, where no such interval reaches 95%, a t interval (:func:`_few_values_interval`; on the log
    scale with ``log_scale``, for latencies).
    """
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    if n < 6:  # too few order statistics for a 95% interval
        return _few_values_interval(x, confidence, log_scale)
    a = (1 - confidence) / 2
    cdf = _binomial_half_cdf(n)
    # The relative slack absorbs rounding in the summed CDF at exact ties, as scipy's ppf/isf do.
    low_index = int(np.searchsorted(cdf, a * (1 - 1e-12), side="left")) - 1
    high_index = int(np.argmax(1.0 - cdf <= a * (1 + 1e-12)))
    low = x[low_index] if low_index >= 0 else x[0]
    high = x[high_index] if high_index < n else x[-1]
    return float(low), float(high)


def _few_values_interval(x: np.ndarray, confidence: float, log_scale: bool = False) -> tuple[float, float]:
    """An interval for the centre of fewer than 6 values (``x`` sorted), where no distribution-free one reaches
    95%: their range covers the median with probability 1 - 2^(1-n) (50% for two values, 94% for five), so it is
    widened to the t interval of their mean (``confidence``, n - 1 degrees of freedom), which holds for normal
    values; the range itself where that is wider. With ``log_scale`` (latencies), positive values are read on the
    log scale, so the interval stays positive and holds for log-normal values. One value: the value (no spread to
    read)."""
    n = x.size
    low, high = float(x[0]), float(x[-1])
    if n < 2:
        return low, high
    positive = log_scale and low > 0
    y = np.log(x) if positive else x
    half = student_t_quantile(1 - (1 - confidence) / 2, n - 1) * float(np.std(y, ddof=1)) / math.sqrt(n)
    mean = float(np.mean(y))
    t_low, t_high = (math.exp(mean - half), math.exp(mean + half)) if positive else (mean - half, mean + half)
    return min(low, t_low), max(high, t_high)


def sign_autocorrelation(series, segments=None) -> float:
    """Lag-1 autocorrelation of the signs of ``series`` (in time order) about its median, clipped to [0, 0.9].

    The median's interval counts values above and below it; when neighbours in time lean the same way
    (a slow phase of the machine covers several rounds), those counts vary more than independent draws
    would. The signs, not the values, are what matter, and they are robust to outliers.

    ``segments`` (one label per value, e.g. the worker session each round came from) confines it to the
    correlation *within* segments: signs about each segment's own median, and no pair across a boundary.
    A persistent offset between segments (two processes differ) would otherwise read as serial
    correlation; that term is accounted for apart (``estimates.PROCESS_SD``).
    """
    x = np.asarray(series, dtype=float)
    if x.size < 8:
        return 0.0
    labels = np.zeros(x.size, dtype=int) if segments is None else np.asarray(segments)
    signs, owner = [], []
    for label in dict.fromkeys(labels.tolist()):
        part = x[labels == label]
        s = np.sign(part - np.median(part))
        s = s[s != 0]
        signs.append(s)
        owner.append(np.full(s.size, len(owner)))
    s, owner = np.concatenate(signs), np.concatenate(owner)
    pairs = owner[:-1] == owner[1:]  # neighbours in time within one segment
    if s.size < 8 or s.std() == 0 or pairs.sum() < 6:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):  # neighbours that never vary: no correlation to read
        rho = float(np.corrcoef(s[:-1][pairs], s[1:][pairs])[0, 1])
    return min(max(rho, 0.0), 0.9) if rho == rho else 0.0


def serial_median_ci(series, confidence: float = 0.95, segments=None, log_scale: bool = False
                     ) -> tuple[float, float, float]:
    """CI of the median of ``series`` (in time order) that allows for serial correlation (within
    ``segments``, when given: :func:`sign_autocorrelation`).

    With no positive lag-1 correlation of the signs this is ``median_ci``. Otherwise the ranks of the
    interval widen by the AR(1) variance inflation ``(1 + rho) / (1 - rho)`` (normal approximation to
    the rank distribution). Returns (low, high, rho).
    """
    rho = sign_autocorrelation(series, segments)
    if rho <= 0.0:
        low, high = median_ci(series, confidence, log_scale)
        return low, high, 0.0
    x = np.sort(np.asarray(series, dtype=float))
    n = x.size
    z = _normal_quantile(1 - (1 - confidence) / 2)
    spread = z * math.sqrt(n * (1 + rho) / (1 - rho)) / 2
    low_index = max(0, int(math.floor(n / 2 - spread)) - 1)
    high_index = min(n - 1, int(math.ceil(n / 2 + spread)))
    return float(x[low_index]), float(x[high_index]), rho


@functools.lru_cache(maxsize=512)  # a sweep asks for the same few n, every round
def _signed_rank_cdf(n: int) -> np.ndarray:
    """CDF of the Wilcoxon signed-rank statistic T+ (0..n(n+1)/2) for n untied, symmetric, independent values:
    the counts of the subsets of {1..n} by their sum, over 2^n."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for k in range(1, n + 1):
        counts[k:] = counts[k:] + counts[:-k].copy()  # subsets that hold k: each sum moves up by k
    return np.cumsum(counts) / 2.0 ** n


def hodges_lehmann(series, confidence: float = 0.95, segments=None) -> tuple[float, float, float, float]:
    """The Hodges-Lehmann estimate of ``series``' centre (the median of its Walsh averages, (x_i + x_j) / 2 for
    i <= j) and its distribution-free interval (the Walsh averages at the signed-rank test's critical ranks),
    widened for serial correlation as :func:`serial_median_ci` widens the median's. Returns (estimate, low,
    high, rho).

    It assumes the values spread symmetrically about their centre, as a log-ratio of two arms timed in turn
    does (an A/A one by construction). For such data it is nearly as efficient as the mean (95% for normal
    values, where the median is 64%: the same interval from about two thirds of the rounds) and, like the
    median, not carried away by outliers while they are fewer than 29% of the values (the median holds to 50%).
    The interval is exact from the signed-rank distribution for up to ``_EXACT_RANKS`` values, a normal
    approximation beyond, and under serial correlation
    (its variance times the AR(1) inflation (1 + rho) / (1 - rho), where rho is the values' lag-1 correlation
    read from their signs' (:func:`sign_autocorrelation`, r_s) as sin(pi r_s / 2), at most 0.9)."""
    values = np.asarray(series, dtype=float)  # in time order, for the serial correlation
    x = np.sort(values)
    n = x.size
    total = n * (n + 1) // 2
    walsh = _walsh_order_statistics(x)
    estimate = _middle(walsh, total)
    if n < 6:  # too few Walsh averages for a 95% interval: as median_ci gives
        return (estimate, *_few_values_interval(x, confidence), 0.0)
    # The signed-rank statistic moves with the values, not only their signs: its serial correlation is the
    # values' own, which the signs' understate (2/pi arcsin rho for normal pairs); invert that relation.
    rho = min(math.sin(math.pi / 2 * sign_autocorrelation(values, segments)), 0.9)
    alpha = (1 - confidence) / 2
    if rho <= 0.0 and n <= _EXACT_RANKS:
        # the interval from the i-th smallest to the i-th largest Walsh average (0-based) misses the centre on
        # each side with probability P(T+ <= i): the largest i with that at most alpha
        outside = int(np.searchsorted(_signed_rank_cdf(n), alpha * (1 + 1e-12), side="right")) - 1
    else:
        sd = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 * (1 + rho) / (1 - rho))
        outside = int(math.floor(total / 2 - 0.5 - _normal_quantile(1 - alpha) * sd))
    outside = min(max(outside, 0), (total - 1) // 2)
    return estimate, walsh(outside), walsh(total - 1 - outside), rho


def hodges_lehmann_centre(series) -> float:
    """The Hodges-Lehmann estimate alone (the median of the Walsh averages): :func:`hodges_lehmann`'s first value,
    without its interval."""
    x = np.sort(np.asarray(series, dtype=float))
    return _middle(_walsh_order_statistics(x), x.size * (x.size + 1) // 2)


def hodges_lehmann_shift(x, y) -> float:
    """The two-sample Hodges-Lehmann shift of ``x`` over ``y``: the median of all differences x_i - y_j (as
    ``np.median(np.subtract.outer(x, y))``, in O((m + n) log) time and memory past ``_SORTED_WALSH`` values)."""
    a, b = np.sort(np.asarray(x, dtype=float)), np.sort(np.asarray(y, dtype=float))
    return _middle(_shift_order_statistics(a, b), a.size * b.size)


def _middle(order_statistic: Callable[[int], float], total: int) -> float:
    """The median of ``total`` values given their k-th smallest (past the sorted sizes each is a selection: each
    asked for once)."""
    middle = order_statistic(total // 2)
    return middle if total % 2 else (middle + order_statistic(total // 2 - 1)) / 2


_EXACT_RANKS = 120  # values up to which the signed-rank distribution is counted exactly (a few ms)
_SORTED_WALSH = 300  # values up to which all Walsh averages are sorted; past that, selected (see below)


def _walsh_order_statistics(x: np.ndarray) -> Callable[[int], float]:
    """For ``x`` sorted: a function giving the k-th smallest (0-based) of its Walsh averages (x_i + x_j) / 2, i <= j.

    Up to ``_SORTED_WALSH`` values, by sorting all n(n+1)/2 of them. Past that, by selection, because a sweep asks
    for a ratio's interval after every round and sorting costs O(n^2 log n) (75 ms at 1000 rounds, 0.7 s at 4000):
    bisect on the value t, counting the averages <= t in O(n log n) (for each i, the j >= i with x_j <= 2t - x_i),
    until at most 4n averages lie between the bounds, then sort only those."""
    n = x.size
    if n <= _SORTED_WALSH:
        i, j = np.triu_indices(n)
        walsh = np.sort((x[i] + x[j]) / 2)
        return lambda k: float(walsh[k])
    index = np.arange(n)

    def upto(t: float) -> np.ndarray:  # per i, one past the last j with (x_i + x_j) / 2 <= t
        cut = np.searchsorted(x, 2 * t - x, side="right")
        # 2t - x_i is rounded: settle the boundary by the averages themselves, as computed where they are sorted
        # (rounding is monotone, so the j that pass form a prefix; a run of equal x_j passes or fails as one)
        for _ in range(n):
            up = (cut < n) & ((x + x[np.minimum(cut, n - 1)]) / 2 <= t)
            down = (cut > 0) & ((x + x[np.maximum(cut - 1, 0)]) / 2 > t)
            if not (up.any() or down.any()):
                break
            cut = np.where(up, np.searchsorted(x, x[np.minimum(cut, n - 1)], side="right"), cut)
            cut = np.where(down, np.searchsorted(x, x[np.maximum(cut - 1, 0)], side="left"), cut)
        return np.maximum(cut, index)

    def select(k: int) -> float:
        # no average is <= the lower bound, all are <= the upper; per i, the averages <= t are j in [i, upto(t))
        return _bisect_select(k, float(np.nextafter(x[0], -np.inf)), float(x[-1]), upto,
                              lambda cut: int((cut - index).sum()), 4 * n,
                              lambda cut_lo, cut_hi: _pairs(x, x, index, cut_lo, cut_hi - cut_lo, np.add) / 2)

    return select


def _shift_order_statistics(x: np.ndarray, y: np.ndarray) -> Callable[[int], float]:
    """For ``x`` and ``y`` sorted: a function giving the k-th smallest (0-based) of the differences x_i - y_j.

    Up to as many differences as ``_SORTED_WALSH`` values have Walsh averages, by sorting them all. Past that, as
    :func:`_walsh_order_statistics` selects: bisect on the value t, counting the differences <= t in
    O(m log n) (for each i, the j with y_j >= x_i - t: a suffix of y), until at most 4(m + n) lie between the
    bounds, then sort only those. The opener's edge is read this way after every round of a sweep
    (``estimates.position_adjusted``): at 4000 rounds in 0.05x the outer product's time
    (``benchmarks/estimator_speed.py``)."""
    m, n = x.size, y.size
    if m * n <= _SORTED_WALSH * (_SORTED_WALSH + 1) // 2:
        diffs = np.sort(np.subtract.outer(x, y).ravel())
        return lambda k: float(diffs[k])

    def first(t: float) -> np.ndarray:  # per i, the first j with x_i - y_j <= t (the j past it all pass)
        cut = np.searchsorted(y, x - t, side="left")
        # x_i - t is rounded: settle the boundary by the differences themselves (subtraction is monotone in y_j,
        # so the j that pass form a suffix; a run of equal y_j passes or fails as one)
        for _ in range(n):
            down = (cut > 0) & (x - y[np.maximum(cut - 1, 0)] <= t)
            up = (cut < n) & (x - y[np.minimum(cut, n - 1)] > t)
            if not (up.any() or down.any()):
                break
            cut = np.where(down, np.searchsorted(y, y[np.maximum(cut - 1, 0)], side="left"), cut)
            cut = np.where(up, np.searchsorted(y, y[np.minimum(cut, n - 1)], side="right"), cut)
        return cut

    index = np.arange(m)

    def select(k: int) -> float:
        # no difference is <= the lower bound, all are <= the upper; per i, those <= t are j in [first(t), n)
        return _bisect_select(k, float(np.nextafter(x[0] - y[-1], -np.inf)), float(x[-1] - y[0]), first,
                              lambda cut: int((n - cut).sum()), 4 * (m + n),
                              lambda cut_lo, cut_hi: _pairs(x, y, index, cut_hi, cut_lo - cut_hi, np.subtract))

    return select


def _bisect_select(k: int, lo: float, hi: float, cut: Callable[[float], np.ndarray], count: Callable[[np.ndarray], int],
                   limit: int, between: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> float:
    """The k-th smallest (0-based) of the values of a row-sorted table (Walsh averages, two-sample differences),
    by bisection on the value: ``cut(t)`` marks, per row, the edge between its values <= t and the others,
    ``count`` counts those <= t from it, and ``between(cut(lo), cut(hi))`` gives the values in (lo, hi]. ``lo``
    must be below every value and ``hi`` at or above every one. The bounds close in until at most ``limit`` values
    lie between them (or meet in floating point), and only those are sorted."""
    below, cut_hi = 0, cut(hi)
    while count(cut_hi) - below > limit:
        mid = (lo + hi) / 2
        if not lo < mid < hi:  # the bounds met in floating point: enumerate what lies between
            break
        cut_mid = cut(mid)
        counted = count(cut_mid)
        if counted > k:
            hi, cut_hi = mid, cut_mid
        else:
            lo, below = mid, counted
    values = np.sort(between(cut(lo), cut_hi))
    return float(values[k - below])


def _pairs(x: np.ndarray, y: np.ndarray, rows: np.ndarray, start: np.ndarray, lengths: np.ndarray, op) -> np.ndarray:
    """``op(x[i], y[j])`` for each row i of ``rows`` and j in [start[i], start[i] + lengths[i])."""
    r = np.repeat(rows, lengths)
    c = np.repeat(start - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
    return op(x[r], y[c])


def _normal_quantile(p: float) -> float:
    """Phi^-1(p) by bisection on erf (numpy only; see the module note on scipy)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@functools.lru_cache(maxsize=256)  # a sweep asks the same few, every round
def student_t_quantile(p: float, df: int) -> float:
    """Student's t quantile at ``p`` (> 0.5) with ``df`` degrees of freedom: bisection on the CDF, the density
    integrated by Simpson's rule (numpy only; see the module note on scipy)."""
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)

    def cdf(x: float) -> float:
        grid = np.linspace(0.0, x, 2001)
        y = scale * (1 + grid * grid / df) ** (-(df + 1) / 2)
        return 0.5 + (x / 2000 / 3) * float(y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum())

    lo, hi = 0.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def summarize(samples_ns, noisy_ci: float = 0.05, noisy_cv: float = 0.10) -> dict:
    """Median (the headline), mean, std, min, max, p90, p99, the median's 95% CI, and a noisy flag.

    ``noisy`` is set when the CI's half-width exceeds ``noisy_ci`` of the median or the robust
    coefficient of variation (1.4826 MAD / median) exceeds ``noisy_cv``.
    """
    x = np.asarray(samples_ns, dtype=float) / 1e6
    if x.size == 0:
        return {"count": 0}
    median = float(np.median(x))
    low, high = median_ci(x, log_scale=True)
    half = (high - low) / 2
    ci_rel = half / median if median > 0 else math.inf
    robust_cv = _MAD_TO_SIGMA * float(np.median(np.abs(x - median))) / median if median > 0 else math.inf
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
    """Geometric mean of the finite positive values (nan if none)."""
    vals = [v for v in values if v and math.isfinite(v) and v > 0]
    return float(np.exp(np.mean(np.log(vals)))) if vals else math.nan
