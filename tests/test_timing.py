"""The warm-up policy, driven by a fake clock (no real time passes); the median's interval vs scipy.

The timed blocks after warm-up are the lockstep scheduler's: tests/test_lockstep.py.
"""

from benchbench.core.spec import MeasureConfig
from benchbench.measure.timing import warm_up


class FakeClock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


def _timer(clock, durations_ns):
    it = iter(durations_ns)

    def time_once():
        d = next(it)
        clock.now += d
        return d

    return time_once


def _forever(pattern):
    while True:
        yield from pattern


def test_warm_up_needs_both_count_and_time():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=3, warmup_min_s=0.01, max_s=10)
    out = warm_up(_timer(clock, _forever([1_000_000])), cfg, clock)  # 1 ms runs
    assert out.count == 10 and out.estimate_ns == 1_000_000  # 10 ms of 1 ms runs reaches warmup_min_s
    out = warm_up(_timer(clock, _forever([20_000_000])), cfg, clock)  # 20 ms runs: the count decides
    assert out.count == 3


def test_warm_up_estimate_ignores_the_slow_first_runs():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=6, warmup_min_s=0, max_s=10)
    out = warm_up(_timer(clock, iter([50_000_000, 9_000_000, 2_000_000, 2_000_000, 2_000_000, 2_000_000])), cfg, clock)
    assert out.estimate_ns == 2_000_000


def test_slow_model_stops_warming_up_at_max_time():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=5, warmup_min_s=100, max_s=1)
    out = warm_up(_timer(clock, _forever([2_000_000_000])), cfg, clock)  # 2 s per inference
    assert out.count == 1


def test_median_ci_and_robust_cv_match_scipy():
    """stats.py computes them with numpy (the worker must not import scipy); scipy is the reference."""
    import numpy as np
    from scipy.stats import median_abs_deviation, quantile_test

    from benchbench.core.stats import hodges_lehmann, median_ci, summarize

    rng = np.random.default_rng(0)
    for n in [6, 7, 19, 20, 21, 64, 101, 1000, 4097]:
        x = rng.lognormal(0.0, 0.3, n) * 1e6  # ns-scale, skewed like latencies
        ci = quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(0.95)
        low, high = median_ci(x)
        assert low == (ci.low if np.isfinite(ci.low) else x.min()), n
        assert high == (ci.high if np.isfinite(ci.high) else x.max()), n
        cv = summarize(x)["robust_cv"]
        assert abs(cv - median_abs_deviation(x / 1e6, scale="normal") / np.median(x / 1e6)) < 1e-12
    # too few samples for order statistics: the t interval of the mean (mean 0, sd 2, t(0.975, 2) = 4.303), and
    # on the log scale for latencies (log_scale), so that it stays above zero
    low, high = median_ci([2, -2, 0])
    assert abs(low + 4.303 * 2 / 3 ** 0.5) < 1e-3 and abs(high - 4.303 * 2 / 3 ** 0.5) < 1e-3
    logs = np.log([5, 1, 3])
    half = 4.303 * np.std(logs, ddof=1) / 3 ** 0.5
    low, high = median_ci([5, 1, 3], log_scale=True)
    assert abs(low - np.exp(logs.mean() - half)) < 1e-3 and abs(high - np.exp(logs.mean() + half)) < 1e-2
    assert 0 < low < 1 and high > 5
    assert median_ci([0.01, 0.5]) == hodges_lehmann([0.01, 0.5])[1:3]  # log-ratios: on their own scale


def test_sign_autocorrelation_within_segments_ignores_offsets_between_them():
    """Planted truth: 4 segments of 12 independent values, each segment shifted by its own offset. Pooled, the
    offsets read as strong serial correlation; within segments there is none to find. A real AR(1) series
    (rho 0.7) is still seen with its segments given."""
    import numpy as np

    from benchbench.core.stats import sign_autocorrelation

    rng = np.random.default_rng(3)
    offsets = np.repeat([-3.0, 2.0, -1.0, 3.0], 12)
    x = offsets + rng.standard_normal(48)
    segments = np.repeat([1, 2, 3, 4], 12)
    assert sign_autocorrelation(x) > 0.3
    assert sign_autocorrelation(x, segments) < 0.2
    ar = np.zeros(48)
    for i in range(1, 48):
        ar[i] = 0.9 * ar[i - 1] + rng.standard_normal()
    assert sign_autocorrelation(ar, segments) > 0.3


def test_student_t_quantile_matches_scipy():
    from scipy.stats import t

    from benchbench.core.stats import student_t_quantile

    for df in (1, 2, 3, 4, 7, 15, 63, 500):
        for p in (0.9, 0.975, 0.995):
            assert abs(student_t_quantile(p, df) / t.ppf(p, df) - 1) < 1e-6, (p, df)


def test_hodges_lehmann_is_the_median_of_walsh_averages_with_the_signed_rank_interval():
    """Against its definition and scipy: the estimate is the median of all (x_i + x_j) / 2, i <= j; the exact
    signed-rank distribution is the one counted by brute force; and the interval is the set of centres that
    scipy's exact two-sided Wilcoxon test does not reject at 5% (just inside each end: kept; just outside:
    rejected)."""
    import itertools

    import numpy as np
    from scipy.stats import wilcoxon

    from benchbench.core.stats import _signed_rank_cdf, hodges_lehmann, median_ci

    for n in (1, 4, 9):
        sums = [sum(c) for r in range(n + 1) for c in itertools.combinations(range(1, n + 1), r)]
        brute = np.cumsum(np.bincount(sums, minlength=n * (n + 1) // 2 + 1)) / 2 ** n
        assert np.allclose(_signed_rank_cdf(n), brute)
    rng = np.random.default_rng(11)
    for n in (6, 9, 15, 30, 60):
        x = rng.standard_t(3, n)
        estimate, low, high, rho = hodges_lehmann(x)
        walsh = [(x[i] + x[j]) / 2 for i in range(n) for j in range(i, n)]
        assert estimate == np.median(walsh) and low < estimate < high
        if rho == 0.0:
            eps = 1e-9
            assert wilcoxon(x - (low + eps), method="exact").pvalue > 0.05, n
            assert wilcoxon(x - (high - eps), method="exact").pvalue > 0.05, n
            if n > 6:  # at six values even the extremes are not rejected: the interval is the range
                assert wilcoxon(x - (low - eps), method="exact").pvalue <= 0.05, n
                assert wilcoxon(x - (high + eps), method="exact").pvalue <= 0.05, n
    assert hodges_lehmann([3.0, 1.0, 2.0])[1:3] == median_ci([3.0, 1.0, 2.0])  # too few values: as median_ci


def test_fewer_than_six_values_get_an_interval_that_holds_the_centre_95_percent_of_the_time():
    """Planted truth: 2 to 5 values (a ratio's rounds, a cell's blocks) drawn around a known centre, normal and
    heavy-tailed (t, 4 degrees of freedom). No distribution-free 95% interval exists there; the range, which both
    intervals gave before, holds the centre in 1 - 2^(1-n) of draws (50% at two values). The interval they give
    now holds it in at least 93% of 4000 draws at every n, for both the median's and the Hodges-Lehmann
    interval, and so does the median's on the log scale for log-normal latencies (where it stays positive); one
    value gives the value itself."""
    import numpy as np

    from benchbench.core.stats import hodges_lehmann, median_ci

    rng = np.random.default_rng(5)
    for draw in (lambda n: rng.normal(0.3, 0.05, n), lambda n: 0.3 + 0.05 * rng.standard_t(4, n)):
        for n in (2, 3, 4, 5):
            held_median = held_hl = held_range = 0
            for _ in range(4000):
                x = draw(n)
                low, high = median_ci(x)
                held_median += low <= 0.3 <= high
                _, low, high, _ = hodges_lehmann(x)
                held_hl += low <= 0.3 <= high
                held_range += x.min() <= 0.3 <= x.max()
            assert held_median >= 0.93 * 4000 and held_hl >= 0.93 * 4000, (n, held_median, held_hl)
            assert held_range <= (1 - 2.0 ** (1 - n)) * 4000 + 100, (n, held_range)  # the old interval fell short
    for n in (2, 3, 4, 5):  # latencies (log-normal, median 10 ms), read on the log scale: positive, and as sure
        held = 0
        for _ in range(4000):
            low, high = median_ci(10 * np.exp(rng.normal(0, 0.2, n)), log_scale=True)
            assert low > 0
            held += low <= 10 <= high
        assert held >= 0.93 * 4000, (n, held)
    assert median_ci([0.7]) == (0.7, 0.7)


def test_hodges_lehmann_covers_like_the_median_from_fewer_values_and_shrugs_off_outliers():
    """Planted truths (centre 0), 400 trials of 60 values each: on heavy-tailed independent values (t, 3 degrees of
    freedom) and on an AR(1) series (rho 0.5), the interval holds the centre in about 95% of trials (the series
    through its serial widening, as the median's: from 40 values both read rho low, and HL held 90%); on normal values it is narrower than the median's interval by about the square root
    of their efficiencies (0.64 / 0.95); a tenth of the values a hundred times wilder moves it little."""
    import math

    import numpy as np

    from benchbench.core.stats import hodges_lehmann, serial_median_ci

    rng = np.random.default_rng(5)
    trials, n = 400, 60
    held_t3 = held_ar = 0
    widths = []
    for _ in range(trials):
        _, low, high, _ = hodges_lehmann(rng.standard_t(3, n))
        held_t3 += low <= 0 <= high
        e = rng.standard_normal(n)
        ar = np.empty(n)
        ar[0] = e[0]
        for i in range(1, n):
            ar[i] = 0.5 * ar[i - 1] + math.sqrt(1 - 0.25) * e[i]
        _, low, high, _ = hodges_lehmann(ar)
        held_ar += low <= 0 <= high
        normal = rng.standard_normal(n)
        _, low, high, _ = hodges_lehmann(normal)
        m_low, m_high, _ = serial_median_ci(normal)
        widths.append((high - low) / (m_high - m_low))
    assert held_t3 >= 0.93 * trials, f"{held_t3}/{trials}"
    assert held_ar >= 0.92 * trials, f"{held_ar}/{trials}"
    assert 0.7 < np.median(widths) < 0.92, np.median(widths)
    x = rng.standard_normal(200)
    wild = x.copy()
    wild[::10] *= 100
    assert abs(hodges_lehmann(wild)[0] - hodges_lehmann(x)[0]) < 0.15


def test_walsh_averages_selected_past_the_sorting_limit_are_the_sorted_ones():
    """Past ``_SORTED_WALSH`` values the Walsh averages are selected by bisection instead of sorted (a sweep asks
    after every round); on data with many ties, and on values so close that 2t - x rounds, every order statistic
    asked for is the one a full sort gives."""
    import numpy as np

    from benchbench.core.stats import _SORTED_WALSH, _walsh_order_statistics

    rng = np.random.default_rng(2)
    for trial in range(40):
        n = int(rng.integers(_SORTED_WALSH + 1, 2 * _SORTED_WALSH))
        x = np.round(rng.standard_t(2, n), trial % 4) if trial % 3 else 5 + 1e-3 * rng.standard_normal(n)
        x = np.sort(x)
        i, j = np.triu_indices(n)
        walsh = np.sort((x[i] + x[j]) / 2)
        select = _walsh_order_statistics(x)
        for k in [0, walsh.size // 2, walsh.size - 1, *rng.integers(0, walsh.size, 6)]:
            assert select(int(k)) == walsh[k], (trial, k)


def test_two_sample_differences_selected_past_the_sorting_limit_are_the_sorted_ones():
    """The two-sample shift (the opener's edge, read after every round of a sweep) selects its order statistics
    past the sorting limit: on unequal sizes, many ties, values so close that x - t rounds, and one side far
    from the other, every order statistic asked for, and the median, are those of the full outer product."""
    import numpy as np

    from benchbench.core.stats import _SORTED_WALSH, _shift_order_statistics, hodges_lehmann_shift

    rng = np.random.default_rng(3)
    for trial in range(40):
        m, n = (int(v) for v in rng.integers(2, 3 * _SORTED_WALSH, 2))
        if trial % 3 == 0:
            x, y = 5 + 1e-3 * rng.standard_normal(m), 5 + 1e-3 * rng.standard_normal(n)
        else:
            x, y = np.round(rng.standard_t(2, m), trial % 4), np.round(rng.standard_t(2, n) + trial % 5, trial % 4)
        x, y = np.sort(x), np.sort(y)
        diffs = np.sort(np.subtract.outer(x, y).ravel())
        select = _shift_order_statistics(x, y)
        for k in [0, diffs.size // 2, diffs.size - 1, *rng.integers(0, diffs.size, 6)]:
            assert select(int(k)) == diffs[k], (trial, m, n, k)
        assert hodges_lehmann_shift(rng.permutation(x), y) == float(np.median(diffs))
