"""Where a cold cache's build time goes: every export the reference needs, read from the cache's manifests.

Each build records the seconds of each format's export or quantization (``artifacts.<fmt>.export_s`` in its
build.json, ``benchbench.build.export``). This script finds the build of every cell ``claim --reference``
measures (the zoo's train and deploy builds, the deploy build holding the int8 forms, and the guideline nets) in
the artifact cache and sums those seconds per format, so a cold reference's export time can be read without a
cold cache. What the manifests do not hold (a build worker's start and torch import, the eager model, its counts and reference
outputs) is the rest of ``meta.sweep.build_s`` of a cold run.

    python benchmarks/build_time.py

``--cold DIR`` makes them instead, as a cold ``claim --reference`` does (``Builds.make_all``: every build before the
first measurement, ``--jobs`` side by side, in workers forked from the build server), into the empty cache DIR,
``--chunk`` builds at a time, each chunk deleted once timed (the whole reference's builds hold about 42 GB), and
prints the wall time per chunk and in all. ``--jobs 1 --fresh`` is the way builds were made before: one after the
other, each in a fresh worker that imports torch and the exporters itself. ``--limit K`` makes the first K only.

    python benchmarks/build_time.py --cold /tmp/cold-cache --jobs 2
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from benchbench.build.builds import build_group, input_shape
from benchbench.build.cache import cache_root, read_json
from benchbench.build.export import build_key, build_variant
from benchbench.core.spec import CellSpec


def reference_builds() -> tuple[list[CellSpec], list[CellSpec]]:
    """The cells ``claim --reference`` measures, and one of them per build they share (``build_group``)."""
    from benchbench.cli.cells import cells_from
    from benchbench.cli.parser import build_parser
    from benchbench.cli.reference import REFERENCE_BACKENDS, REFERENCE_MODELS

    args = build_parser().parse_args(["run", "--model", REFERENCE_MODELS, "--backend", REFERENCE_BACKENDS,
                                      "--variant", "all"])
    cells, _ = cells_from(args)
    return cells, list({build_group(c): c for c in cells}.values())


def cold(folder: Path, jobs: int, chunk: int, limit: int | None, fresh: bool) -> int:
    """Make the reference's builds into the empty cache ``folder``, ``chunk`` at a time; print the wall times."""
    import os
    import shutil

    from benchbench.build.builds import Builds, BuildServers
    from benchbench.core.spec import REFERENCE

    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"--cold {folder}: not empty; give a new folder (each chunk's builds are deleted)")
    os.environ["BENCHBENCH_CACHE"] = str(folder)
    cells, groups = reference_builds()
    groups = groups[:limit]
    wanted = {build_group(c) for c in groups}
    cells = [c for c in cells if build_group(c) in wanted]
    config = REFERENCE.replace(build_jobs=jobs)
    print(f"{len(groups)} builds of the reference ({len(cells)} cells) into {folder}, {jobs} at a time"
          + (", each in a fresh worker" if fresh else ", forked from the build server") + f", {chunk} per chunk")
    total, made, failed = 0.0, 0, []
    servers = BuildServers()  # one build server for every chunk, as one sweep has
    if fresh:
        servers.start = lambda threads: None  # noqa: E731  (the old way: every build a fresh worker)
    try:
        for start in range(0, len(groups), chunk):
            part = {build_group(c) for c in groups[start:start + chunk]}
            part_cells = [c for c in cells if build_group(c) in part]
            builds = Builds(config, part_cells, servers)  # its close lets go of its entries, not of the server
            try:
                wall = builds.make_all(part_cells, jobs)
                made += sum(1 for r in builds.records.values() if "build_s" in r)
                failed += [f"{g[0]} [{g[1]}]: {r['status']}" for g, r in builds.records.items() if r["status"] != "ok"]
            finally:
                builds.close()
            total += wall
            print(f"  builds {start + 1}-{start + len(part)}: {wall:.0f} s wall (so far {total / 60:.1f} min)",
                  flush=True)
            for entry in folder.iterdir():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    finally:
        servers.close()
    print(f"{made} builds made in {total / 60:.1f} min of wall time ({jobs} at a time; absolute, this machine)"
          + (f"; not ok: {', '.join(failed)}" if failed else ""))
    return 0


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", type=Path, help="make the builds into this empty cache folder, timing them")
    ap.add_argument("--jobs", type=int, default=2, help="builds side by side (--cold)")
    ap.add_argument("--chunk", type=int, default=16, help="builds per chunk, deleted once timed (--cold)")
    ap.add_argument("--limit", type=int, default=None, help="the first K builds only (--cold)")
    ap.add_argument("--fresh", action="store_true", help="each build in a fresh worker, not a forked one (--cold)")
    args = ap.parse_args()
    if args.cold is not None:
        return cold(args.cold, args.jobs, args.chunk, args.limit, args.fresh)
    per_format: dict[str, list[float]] = defaultdict(list)
    missing, builds, slowest = [], 0, []
    for spec in reference_builds()[1]:
        name = f"{spec.model} [{build_variant(spec.variant)}]"  # a deploy build holds the int8 forms too
        manifest = read_json(cache_root() / build_key(spec.model, spec.variant, input_shape(spec), spec.seed)
                             / "build.json")
        if not manifest:
            missing.append(name)
            continue
        builds += 1
        total = 0.0
        for fmt, entry in (manifest.get("artifacts") or {}).items():
            if isinstance(entry.get("export_s"), (int, float)):
                per_format[fmt].append(entry["export_s"])
                total += entry["export_s"]
        slowest.append((total, name))
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
