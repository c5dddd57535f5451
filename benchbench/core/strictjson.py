"""Strict JSON out: benchbench writes no NaN or Infinity.

Python's ``json`` writes non-finite floats as the bare tokens ``NaN`` and ``Infinity``, which are not
JSON: ``jq``, JavaScript and most other readers reject the whole file. Every document benchbench
writes goes through :func:`finite`, one pass that turns a non-finite float into ``null``. A null alone
would read as "not measured", so inside an object a ``"<key>_reason"`` string beside it says what the
value was (a zero median makes ``ci_rel`` infinite, for instance). In a list there is no room beside
the value, and it is just null.
"""

from __future__ import annotations

import json
import math
from typing import IO, Any

__all__ = ["finite", "dump", "dumps"]


def finite(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, scalars) with every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None
                out.setdefault(f"{key}_reason", f"not a finite number ({value})")
            else:
                out[key] = finite(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dump(obj: Any, fh: IO[str], **kwargs) -> None:
    """``json.dump`` of ``finite(obj)``; ``allow_nan=False`` makes a missed non-finite value an error."""
    json.dump(finite(obj), fh, allow_nan=False, **kwargs)


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps`` of ``finite(obj)``, strictly."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
