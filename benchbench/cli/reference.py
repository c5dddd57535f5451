"""``benchbench claim --reference``: what the committed reference report measures, and how it is published."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import UsageError

__all__ = ["REFERENCE_MODELS", "REFERENCE_BACKENDS", "REFERENCE_DIR", "REFERENCE_MARKER", "reference_allocation",
           "group_ratios", "ratios_settled", "reference_settled", "reference_profiled", "reference_args",
           "check_reference_dest", "publish_reference"]

# `benchbench claim --reference`: what the committed reference report measures, and where it lands.
REFERENCE_MODELS = "*"  # the whole zoo and the guideline nets
REFERENCE_BACKENDS = "torch,ort,tflite,openvino"
REFERENCE_DIR = Path("reports") / "reference"
# Every compared cell of the reference sweep is measured in lockstep (train/deploy pairs, guideline
# tables), so a slow phase of the machine hits both sides of a ratio alike, and in several rounds minutes
# apart, so a slow phase of the sweep is spread over every cell instead of landing on a few families.
# Sequential allocation: every group gets LEAST_ROUNDS rounds, and a third only while one of its ratios
# is unsettled (``reference_settled``). Re-reading the 3-round reference of 2026-12 with its first two
# rounds only (benchmarks/verdict_sessions.py) kept every backend's verdict interval within 1.09x of
# all three rounds' and all 48 guideline verdicts; with one round ORT's was 1.47x and 14 verdicts moved.
LEAST_ROUNDS, MOST_ROUNDS = 2, 3
# The zoo's groups sample 0.3 s per cell and round (the reference's minimum), the guideline tables the full 0.6 s.
# The claim's verdicts read the zoo through a regression over models, where a cell's own noise is a small part of
# the interval; the guideline verdicts read each table's ratios directly. Re-reading the 3-round reference with
# the zoo's cells cut to the first half of each round's lockstep rounds and two rounds (benchmarks/verdict_sessions.py
# --share 0.5 --zoo-only) kept every backend's verdict interval within 0.92-1.07x of two full rounds' and all 48
# guideline verdicts (0.98-1.01x, re-read on 2026-12-07 with the intervals of fewer than 6 blocks that hold);
# cutting the guideline nets too moved 12 of them. Cutting the zoo further does not pay:
# 0.15 s and no third round for a zoo group (tried 2026-12-07) took the sweep from 24.8 to 21.7 minutes, but the
# zoo groups' own ratios (each form against the train form), which the report gives per model, widened: re-read on
# one run, median half-width ±3.1% -> ±6.6%, 90th percentile ±11.1% -> ±38.2%, ratios whose interval holds 1.00
# 78 -> 109 of 354, and torch's verdict interval 1.29x (benchmarks/verdict_sessions.py --share 0.5 --zoo-only;
# docs/measurement.md §7).
ZOO_MAX_S = 0.3
# Per-op profiles of every zoo cell feed the claim's time shares and kernel-sum predictor; profiled
# inferences per op (fewer than run --profile's default: 400 cells, and an op's median over 5 is stable).
REFERENCE_PROFILE_RUNS = 5


def group_ratios(cells) -> Iterator:
    """A group's ratios, as the report reads them: each measured cell's to the group's first measured cell (a
    zoo model's forms against its train form, a guideline row against the table's first row), one at a time."""
    from benchbench.results.estimates import cell_ratio

    measured = [c for c in cells if c.ok]
    return (e for c in measured[1:] if (e := cell_ratio(c, measured[0])) is not None)


def ratios_settled(ratios: Iterable) -> bool:
    """Whether every ratio either decides its direction (its 95% interval excludes 1.00) or is pinned to the
    reference's ±2% (``REFERENCE.target_ci``); stops at the first that does neither."""
    from benchbench.core.spec import REFERENCE

    return all(e.excludes() != 0 or e.half_width <= REFERENCE.target_ci for e in ratios)


def reference_settled(cells) -> bool:
    """Whether a reference group needs no further round: its ratios (``group_ratios``) are settled
    (``ratios_settled``). A group of one cell is settled: the claim reads its latency, which two rounds already
    spread over the sweep."""
    return ratios_settled(group_ratios(cells))


def reference_allocation():
    """The reference sweep's rounds: two per group, a third for the groups ``reference_settled`` refuses; and its
    sampling per group: ``ZOO_MAX_S`` for the zoo's, the reference profile's cap for the guideline tables'."""
    from benchbench.core.spec import REFERENCE
    from benchbench.measure.sweep import Allocation

    return Allocation(MOST_ROUNDS, LEAST_ROUNDS, reference_settled,
                      note=f"{LEAST_ROUNDS} rounds per group, a {MOST_ROUNDS}rd while a ratio is unsettled (its "
                           f"interval holds 1.00 and is wider than ±2%); zoo groups sample {ZOO_MAX_S} s per cell "
                           f"and round, guideline tables {REFERENCE.max_s} s",
                      max_s=lambda spec: ZOO_MAX_S if _kind(spec.model) == "zoo" else REFERENCE.max_s)


def _kind(model: str) -> str:
    from benchbench.models import model_info

    try:
        return model_info(model).kind
    except KeyError:  # not a registered model: measured like a zoo model
        return "zoo"


def reference_args(args) -> None:
    """Turn ``claim --reference`` into the reference sweep's settings; refuse what would change it."""
    if args.results or args.model or args.backend is not None or args.sampling != "default" or args.rounds != 1 \
            or getattr(args, "lab", None):
        raise UsageError("--reference measures a fixed set (every model on torch, ort, tflite, openvino, then the "
                         "lab); drop result files, --model, --backend, --quick, --rounds and --lab, or leave out "
                         "--reference")
    args.model, args.backend, args.sampling, args.roofline = REFERENCE_MODELS, REFERENCE_BACKENDS, "reference", "fresh"
    args.variant = "all"  # train, deploy and int8: the claim reads the int8 forms apart from the float ones
    args.html = True  # report.html, claim.html and the published folder's index.html
    # profile the zoo cells after the sweep (time shares, kernel-sum predictor); the guideline nets need none
    args.profile, args.profile_runs = True, REFERENCE_PROFILE_RUNS
    args.profile_select = reference_profiled


def reference_profiled(spec) -> bool:
    """The reference profiles zoo cells on backends with a per-op timer (the claim's time shares and kernel
    sums need times; an untimed op list adds nothing to the executed-op counts every cell has)."""
    from benchbench.runners import get_runner

    return (_kind(spec.model) != "guideline" and spec.variant != "int8"  # time shares are float's
            and get_runner(spec.backend).op_timer)


# Written into every folder `claim --reference` publishes: only a folder holding it is ever replaced.
REFERENCE_MARKER = ".benchbench-reference"


def check_reference_dest(dest: Path) -> None:
    """Refuse to publish over a folder benchbench did not create (``UsageError``): ``dest`` (and its staging
    folder) must be absent, or hold ``REFERENCE_MARKER``."""
    for path in (dest, dest.with_name(dest.name + ".new")):
        if (path.exists() or path.is_symlink()) and not (path.is_dir() and not path.is_symlink()
                                                         and (path / REFERENCE_MARKER).is_file()):
            raise UsageError(f"{path} exists and was not published by benchbench (no {REFERENCE_MARKER} in it); "
                             "move it away, or it would be replaced")


def publish_reference(run_dir: Path, dest: Path) -> Path:
    """Replace ``dest`` with a finished run folder (results, reports, claim, plots); the run folder stays.
    Only a folder that an earlier publish created is replaced (``check_reference_dest``)."""
    import shutil

    check_reference_dest(dest)
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run_dir, staging)
    (staging / REFERENCE_MARKER).write_text("Published by `benchbench claim --reference`; the next publish replaces "
                                            "this folder.\n", encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest
