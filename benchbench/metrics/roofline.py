"""A cell's place on its backend's roofline: pure arithmetic on a calibration entry.

Per cell: achieved GFLOP/s = FLOPs / median latency; its share of the backend's peak; the arithmetic
intensity (FLOPs / MAC bytes) against the ridge point (peak / bandwidth, FLOP/byte) says whether the
roofline calls it compute- or memory-bound; and the roofline's attainable GFLOP/s =
min(peak, intensity x bandwidth). The calibration itself, which measures the machine, is
``benchbench.measure.calibration``.
"""

from __future__ import annotations

__all__ = ["roofline_point"]


def roofline_point(flops: int | None, mac_bytes: int | None, median_ms: float | None, entry: dict | None) -> dict:
    """A cell's place on its backend's roofline. Keys are None where an input is missing."""
    achieved = flops / median_ms / 1e6 if flops and median_ms else None
    intensity = flops / mac_bytes if flops and mac_bytes else None
    peak = (entry or {}).get("peak_gflops")
    bw = (entry or {}).get("bandwidth_gbs")
    ridge = peak / bw if peak and bw else None
    return {
        "achieved_gflops": achieved,
        "peak_share": achieved / peak if achieved and peak else None,
        "attainable_gflops": min(peak, intensity * bw) if peak and bw and intensity else None,
        "bound": (None if intensity is None or ridge is None else "compute" if intensity >= ridge else "memory"),
    }
