"""Parity: does a backend compute what PyTorch eager float32 computes, on the same seeded input?

Pure computation on arrays; the measuring worker calls it after the last block.
"""

from __future__ import annotations

__all__ = ["PARITY_RTOL", "PARITY_MIN_COSINE", "FIDELITY_MIN_SQNR_DB", "FIDELITY_AGAINST", "FIDELITY_AGAINST_FILE",
           "parity", "fidelity"]

# Parity passes when max |out - ref| <= PARITY_RTOL * max |ref| and cosine similarity >= PARITY_MIN_COSINE,
# for every output. float32 kernels that reorder sums (Winograd, blocked GEMM) stay far inside this.
PARITY_RTOL = 1e-3
PARITY_MIN_COSINE = 0.9999


def _non_finite(name: str, arr) -> str | None:
    import numpy as np

    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    if nan or inf:
        parts = [f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else ""]
        return f"{name} has {' and '.join(p for p in parts if p)} of {arr.size} values"
    return None


def parity(outputs, reference) -> dict:
    """Worst-case agreement of a backend's outputs with the reference. NaN or Inf in either fails,
    and the reason says where: a model whose outputs are all Inf does not pass as "equal"."""
    import numpy as np

    if outputs is None:
        return {"checked": False, "reason": "the backend computes no outputs"}
    if len(outputs) != len(reference):
        return {"checked": True, "passed": False, "reason": f"{len(outputs)} outputs vs {len(reference)} expected"}
    worst = {"max_abs_err": 0.0, "max_rel_err": 0.0, "cosine": 1.0}
    for i, (out, ref) in enumerate(zip(outputs, reference)):
        out = np.asarray(out, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64)
        if out.size != ref.size:
            return {"checked": True, "passed": False, "reason": f"output shape {out.shape} vs {ref.shape}"}
        bad = _non_finite(f"output {i} of the backend", out) or _non_finite(f"output {i} of the reference", ref)
        if bad:
            return {"checked": True, "passed": False, "reason": f"non-finite values: {bad}", "non_finite": True}
        out, ref = out.reshape(-1), ref.reshape(-1)
        err = float(np.max(np.abs(out - ref))) if out.size else 0.0
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        denom = float(np.linalg.norm(out) * np.linalg.norm(ref))
        cosine = float(out @ ref / denom) if denom > 0 else float(np.array_equal(out, ref))
        worst["max_abs_err"] = max(worst["max_abs_err"], err)
        worst["max_rel_err"] = max(worst["max_rel_err"], err / scale if scale > 0 else (0.0 if err == 0 else 1.0))
        worst["cosine"] = min(worst["cosine"], cosine)
    passed = bool(worst["max_rel_err"] <= PARITY_RTOL and worst["cosine"] >= PARITY_MIN_COSINE)
    return {"checked": True, "passed": passed, **worst, "rtol": PARITY_RTOL, "min_cosine": PARITY_MIN_COSINE}


# Fidelity of an int8 form against the float deploy form. An int8 output never matches float to 1e-3, so what
# is asked is how much of the signal survives: SQNR = 10 log10(Σ ref² / Σ (out - ref)²) over every output
# element. Healthy per-channel int8 models of the zoo sat at 25-45 dB in a sweep of 47 models here, and
# deliberately broken calibrations (constant inputs) fell below 15 dB in nearly every case; 15 dB (a noise
# power 3% of the signal's) separates the two. The cosine is reported beside it.
FIDELITY_MIN_SQNR_DB = 15.0


FIDELITY_AGAINST = "the float deploy form in PyTorch eager, on the benchmark input (not a calibration input)"
FIDELITY_AGAINST_FILE = ("the float file on the reference backend, on the benchmark input (not a calibration "
                         "input)")


def fidelity(outputs, reference, min_sqnr_db: float = FIDELITY_MIN_SQNR_DB, against: str = FIDELITY_AGAINST) -> dict:
    """SQNR (dB) and cosine of an int8 form's outputs against the float reference (``against`` says which),
    pooled over every output; passes at ``min_sqnr_db`` or more. Non-finite values or mismatched shapes fail, as
    for parity."""
    import math

    import numpy as np

    if outputs is None:
        return {"checked": False, "reason": "the backend computes no outputs"}
    if len(outputs) != len(reference):
        return {"checked": True, "passed": False, "mode": "fidelity",
                "reason": f"{len(outputs)} outputs vs {len(reference)} expected"}
    outs, refs = [], []
    for i, (out, ref) in enumerate(zip(outputs, reference)):
        out, ref = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        if out.size != ref.size:
            return {"checked": True, "passed": False, "mode": "fidelity",
                    "reason": f"output shape {out.shape} vs {ref.shape}"}
        if bad := _non_finite(f"output {i} of the backend", out):
            return {"checked": True, "passed": False, "mode": "fidelity", "reason": f"non-finite values: {bad}",
                    "non_finite": True}
        outs.append(out.reshape(-1))
        refs.append(ref.reshape(-1))
    out, ref = np.concatenate(outs), np.concatenate(refs)
    noise, power = float(np.sum((out - ref) ** 2)), float(np.sum(ref ** 2))
    sqnr = math.inf if noise == 0 else (10 * math.log10(power / noise) if power > 0 else -math.inf)
    denom = float(np.linalg.norm(out) * np.linalg.norm(ref))
    cosine = float(out @ ref / denom) if denom > 0 else float(np.array_equal(out, ref))
    return {"checked": True, "passed": bool(sqnr >= min_sqnr_db), "mode": "fidelity",
            "sqnr_db": sqnr if math.isfinite(sqnr) else (999.0 if sqnr > 0 else -999.0), "cosine": cosine,
            "min_sqnr_db": min_sqnr_db, "against": against}
