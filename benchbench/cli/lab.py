"""``benchbench lab``: measure the fragmentation lab's design as an ordinary run, then fit it.

The cells come from the design (``cli.cells.lab_cells``): the designed nets in lockstep blocks, each block led by
its own copy of the anchor net, on every backend asked for. Measuring, the journal, ``--resume`` and the views are
``run``'s. After the sweep (and the profiles that give ORT's and OpenVINO's executed-graph traffic), the lab fit
(``benchbench.analysis.lab``) is written beside the results: ``lab.json`` and ``lab.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchbench.core.atomic import write_atomic

from .errors import one_line
from .run import measure

__all__ = ["cmd_lab", "run_lab", "reference_lab_args", "lab_json", "DEFAULT_ZOO"]

# The zoo that --zoo defaults to, when the command runs in a checkout that has it.
DEFAULT_ZOO = Path("reports/reference/results.json")


def _zoo(args):
    """The zoo run whose cells the lab fit predicts (``--zoo``, else the reference when it is here), or None.
    Read before measuring, so that a wrong file costs no sweep (its error is one line, as for any result file)."""
    from benchbench.results.load import load_run

    path = Path(args.zoo) if args.zoo else (DEFAULT_ZOO if DEFAULT_ZOO.is_file() else None)
    if path is None:
        return None
    return load_run(path)


def lab_json(run, zoo=None, reps: int | None = None) -> dict:
    """lab.json's content for a measured lab run (and the zoo run it predicts, when given)."""
    from benchbench.analysis.lab import BOOTSTRAP, lab_analysis
    from benchbench.analysis.lab_records import lab_records, zoo_records
    from benchbench.core.labpoints import cache_sizes

    caches = cache_sizes()
    lab = lab_records([run.to_dict()], caches)
    zoo_recs = zoo_records([zoo.to_dict()], caches) if zoo is not None else []
    out = lab_analysis(lab, zoo_recs, reps=reps or BOOTSTRAP)
    out["caches"] = caches
    out["zoo"] = str(zoo.path) if zoo is not None and zoo.path else None
    return out


def _summary(analysis: dict) -> list[str]:
    """The terminal's lines: per backend, the per-op cost with its interval and the design's bound."""
    lines = ["", "The lab fit per backend (per-op cost at fixed FLOPs and traffic, 95% bootstrap interval):"]
    for backend, r in analysis["backends"].items():
        zoo = r.get("zoo_within_10pct")
        lines.append(f"  {backend}: {r['per_op_us']:.3g} µs per executed op [{r['per_op_us_low']:.3g}, "
                     f"{r['per_op_us_high']:.3g}] ({r['n_points']} points, {r['reading'].replace('_', '-')}); design "
                     f"max |r| {r['design_max_abs_corr']:.2f}"
                     + (f"; zoo cells within ±10% from the lab alone: {zoo:.0%}" if zoo is not None else ""))
    if not analysis["backends"]:
        lines.append("  (no backend has enough measured lab points to fit)")
    return lines


def run_lab(args, zoo=None) -> tuple[int, object, dict | None]:
    """Measure the lab's design (``args`` as ``benchbench lab`` parses them), then fit it and write lab.json and
    lab.md into the run folder. Returns (exit code, run, analysis); the analysis is None when interrupted (the
    finished cells are saved; ``--resume`` finishes them, then fits)."""
    from benchbench.analysis.lab_report import lab_markdown
    from benchbench.core import strictjson
    from benchbench.results.journal import WriteError

    code, run = measure(args)
    if code >= 128:
        return code, run, None
    folder = run.path.parent
    analysis = lab_json(run, zoo)
    try:
        write_atomic(folder / "lab.json", strictjson.dumps(analysis, indent=1, default=str))
        write_atomic(folder / "lab.md", lab_markdown(analysis, level=1))
    except OSError as exc:
        raise WriteError(f"cannot write the lab's files into {folder}: {exc.strerror or exc}") from None
    return code, run, analysis


def reference_lab_args(out: Path, backends: str, threads: int | None = None, points: int | None = None,
                       no_wait: bool = False):
    """``benchbench lab``'s arguments for the lab that ``claim --reference`` runs: the full design on ``backends``
    with the lab's own defaults (the reference sampling in 3 rounds, 5 profiled inferences per op)."""
    from .parser import build_parser

    argv = ["lab", "--backend", backends, "--out", str(out)]
    argv += (["--threads", str(threads)] if threads else []) + (["--points", str(points)] if points else [])
    args = build_parser().parse_args(argv + (["--no-wait"] if no_wait else []))
    args.argv = argv  # recorded in the lab run's meta: `benchbench lab --resume` finishes it as a lab run
    return args


def cmd_lab(args) -> int:
    """``benchbench lab --backend B[,B...] [--quick]``: measure the design, then write lab.json and lab.md."""
    code, run, analysis = run_lab(args, _zoo(args))
    if analysis is None:  # interrupted
        return code
    folder = run.path.parent
    print("\n".join(_summary(analysis)))
    print(f"\nwrote {folder / 'lab.json'}\n      {folder / 'lab.md'}", file=sys.stdout)
    if not analysis["backends"]:
        print(one_line(f"benchbench: no lab fit: too few lab cells measured ok in {folder}"), file=sys.stderr)
    return code
