"""The sampling policy, driven by a fake clock (no real time passes)."""

from benchbench.spec import MeasureConfig
from benchbench.timing import sample


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


def test_steady_latency_converges_after_minimums():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=3, warmup_min_s=0.01, min_count=20, min_s=0.1, max_s=10, target_ci=0.01)
    out = sample(_timer(clock, _forever([1_000_000])), cfg, clock)  # 1 ms, no jitter
    assert out.stop_reason == "converged"
    assert out.warmup_count == 10  # 10 ms of 1 ms runs reaches warmup_min_s
    assert len(out.samples_ns) >= 100  # min_s = 0.1 s of 1 ms samples
    assert len(out.samples_ns) < 200


def test_noisy_latency_runs_to_max_time():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=1, warmup_min_s=0, min_count=5, min_s=0.01, max_s=0.5, target_ci=0.001)
    out = sample(_timer(clock, _forever([1_000_000, 3_000_000])), cfg, clock)  # bimodal: CI never tight
    assert out.stop_reason == "max_time"
    assert 0.5e9 <= sum(out.samples_ns) <= 0.51e9


def test_max_count_bounds_fast_models():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=1, warmup_min_s=0, min_count=5, min_s=100, max_s=1000, max_count=50)
    out = sample(_timer(clock, _forever([1000])), cfg, clock)
    assert out.stop_reason == "max_count" and len(out.samples_ns) == 50


def test_slow_model_gets_at_least_three_samples():
    clock = FakeClock()
    cfg = MeasureConfig(warmup_min_count=1, warmup_min_s=0, min_count=20, min_s=1, max_s=1)
    out = sample(_timer(clock, _forever([2_000_000_000])), cfg, clock)  # 2 s per inference
    assert out.stop_reason == "max_time" and len(out.samples_ns) == 3


def test_median_ci_and_robust_cv_match_scipy():
    """stats.py computes them with numpy (the worker must not import scipy); scipy is the reference."""
    import numpy as np
    from scipy.stats import median_abs_deviation, quantile_test

    from benchbench.stats import median_ci, summarize

    rng = np.random.default_rng(0)
    for n in [6, 7, 19, 20, 21, 64, 101, 1000, 4097]:
        x = rng.lognormal(0.0, 0.3, n) * 1e6  # ns-scale, skewed like latencies
        ci = quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(0.95)
        low, high = median_ci(x)
        assert low == (ci.low if np.isfinite(ci.low) else x.min()), n
        assert high == (ci.high if np.isfinite(ci.high) else x.max()), n
        cv = summarize(x)["robust_cv"]
        assert abs(cv - median_abs_deviation(x / 1e6, scale="normal") / np.median(x / 1e6)) < 1e-12
    assert median_ci([5, 1, 3]) == (1.0, 5.0)  # too few samples: the range
