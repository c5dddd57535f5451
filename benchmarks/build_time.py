"""Where a cold cache's build time goes: every export the reference needs, read from the cache's manifests.

Each build records the seconds of each format's export or quantization (``artifacts.<fmt>.export_s`` in its
build.json, ``benchbench.build.export``). This script finds the build of every cell ``claim --reference``
measures (the zoo in train, deploy and int8 forms, and the guideline nets) in the artifact cache and sums
those seconds per format, so a cold reference's export time can be read without a cold cache. What the
manifests do not hold (a build worker's start and torch import, the eager model, its counts and reference
outputs) is the rest of ``meta.sweep.build_s`` of a cold run.

    python benchmarks/build_time.py
"""

from __future__ import annotations

import sys
from collections import defaultdict

from benchbench.models import resolve_models

from benchbench.build.builds import input_shape
from benchbench.build.cache import cache_root, read_json
from benchbench.build.export import build_key
from benchbench.core.spec import CellSpec


def main() -> int:
    names, _ = resolve_models("*")
    per_format: dict[str, list[float]] = defaultdict(list)
    missing, builds, slowest = [], 0, []
    for name in names:
        variants = ("deploy",) if name.startswith("g") and "_x" in name else ("train", "deploy", "int8")
        for variant in variants:
            spec = CellSpec(name, variant, "ort")
            try:
                key = build_key(name, variant, input_shape(spec), spec.seed)
            except KeyError:
                continue
            manifest = read_json(cache_root() / key / "build.json")
            if not manifest:
                missing.append(f"{name} [{variant}]")
                continue
            builds += 1
            total = 0.0
            for fmt, entry in (manifest.get("artifacts") or {}).items():
                if isinstance(entry.get("export_s"), (int, float)):
                    per_format[fmt].append(entry["export_s"])
                    total += entry["export_s"]
            slowest.append((total, f"{name} [{variant}]"))
    grand = sum(sum(v) for v in per_format.values())
    print(f"{builds} builds of the reference found in {cache_root()}; {len(missing)} not built"
          + (f" ({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''})" if missing else ""))
    print(f"{'format':<16} {'exports':>7} {'total s':>9} {'share':>6} {'median s':>9} {'max s':>7}")
    for fmt, secs in sorted(per_format.items(), key=lambda kv: -sum(kv[1])):
        secs = sorted(secs)
        print(f"{fmt:<16} {len(secs):>7} {sum(secs):>9.0f} {sum(secs) / grand:>6.0%} {secs[len(secs) // 2]:>9.1f} "
              f"{secs[-1]:>7.1f}")
    print(f"{'all exports':<16} {sum(len(v) for v in per_format.values()):>7} {grand:>9.0f}  "
          f"({grand / 60:.1f} min of export and quantization, absolute wall time from each build)")
    print("slowest builds: " + ", ".join(f"{n} {t:.0f} s" for t, n in sorted(slowest, reverse=True)[:6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
