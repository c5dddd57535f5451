"""``benchbench claim``: FLOPs vs fragmentation, from result files or from a sweep of the guideline nets (and,
with ``--reference``, the reference report, regenerated and published: the zoo and guideline sweep, then the
fragmentation lab predicting it, then the claim with the lab beside the zoo)."""

from __future__ import annotations

import time
from pathlib import Path

from benchbench.core.atomic import write_atomic

from .errors import UsageError
from .reference import (
    REFERENCE_BACKENDS,
    REFERENCE_DIR,
    check_reference_dest,
    publish_reference,
    reference_allocation,
    reference_args,
)
from .run import measure, run_dir

__all__ = ["cmd_claim", "read_json_file"]


def cmd_claim(args) -> int:
    from benchbench.analysis.claim import analyze, check_claimable
    from benchbench.analysis.claim_report import backend_summary, claim_markdown, guideline_tables
    from benchbench.core import strictjson
    from benchbench.results.journal import WriteError
    from benchbench.results.load import load_run

    started = time.monotonic()
    if args.reference:
        reference_args(args)
        check_reference_dest(Path(args.out).parent / REFERENCE_DIR.name)  # before an hour of measuring, not after
    code, lab = 0, None
    if args.lab:  # read before measuring: a wrong file costs no sweep
        lab_path, lab = read_labs(args.lab)
    predictor = read_predictor_eval(args.predictor) if args.predictor else None
    if args.results:
        runs = [load_run(p) for p in args.results]
        for run in runs:
            check_claimable(run)
        out_dir = run_dir(Path(args.out), "claim")
    else:
        args.backend = args.backend or "ort"
        args.model = ",".join(filter(None, [args.model, "g*"]))  # the guideline nets, plus any zoo models
        code, run = measure(args, rounds=reference_allocation() if args.reference else None)
        if code >= 128:  # interrupted: the cells so far are saved, but no analysis of a partial sweep
            return code
        runs, out_dir = [run], run.path.parent
    lab_s = None
    if args.reference:  # the lab too, after the zoo it predicts; its own run folder inside the reference's
        lab_started = time.monotonic()
        lab_code, lab_path, lab = reference_lab(args, run, out_dir)
        if lab_code >= 128:
            return lab_code
        code, lab_s = max(code, lab_code), time.monotonic() - lab_started
    start = time.monotonic()
    analysis = analyze(runs)
    if lab is not None:
        from benchbench.analysis.claim_lab import lab_comparison

        analysis["lab"] = {"source": str(lab_path), "comparison": lab_comparison(analysis, lab), "fit": lab}
    if predictor is not None:
        analysis["predictor"] = predictor
    if not args.results:  # a run this command measured: its meta records what the claim took, as the sweep's does
        _record_times(runs[0], analysis_s=time.monotonic() - start, total_s=time.monotonic() - started, lab_s=lab_s)
    try:
        write_atomic(out_dir / "claim.md", claim_markdown(analysis, out_dir, runs))
        write_atomic(out_dir / "claim.json", strictjson.dumps({k: v for k, v in analysis.items() if k != "observations"},
                                                             indent=1, default=str))
    except OSError as exc:  # the run's own folder: a full disk or a folder made read-only, not a request
        raise WriteError(f"cannot write the claim into {out_dir}: {exc.strerror or exc}") from None
    if args.html:  # claim.html; the published reference also gets its front page
        from benchbench.analysis.claim_html import write_claim_html
        from benchbench.analysis.index_page import write_index_html

        write_claim_html(analysis, runs, out_dir)
        if args.reference:
            write_index_html(out_dir, analysis=analysis, meta=runs[0].meta)
    verdicts = [line for backend, a in analysis["per_backend"].items() for line in backend_summary(backend, a)]
    print("\n".join(["", "At equal FLOPs, do more executed ops cost latency? (family-level verdict per backend)"]
                    + (verdicts or ["  (no zoo cells measured: the guideline nets only fill the tables)"])))
    if analysis["guidelines"]:  # the x1 tables here; every width is in claim.md
        print("\n" + "\n".join(guideline_tables(analysis["guidelines"], multipliers=(1,))))
    print(f"\nwrote {out_dir / 'claim.md'} (with plots in {out_dir / 'plots'})"
          + (f"\n      {out_dir / 'claim.html'}" if args.html else ""))
    if args.reference:
        print(f"published the reference report: {publish_reference(out_dir, Path(args.out).parent / REFERENCE_DIR.name)}")
    # the measuring run's own code (1 broken cells or parity failures, 2 a model error, 3 the environment):
    # the analysis is written either way, but a claim over broken cells does not pass for a clean one
    return code


def reference_lab(args, zoo_run, out_dir: Path, backends: str | None = None, points: int | None = None):
    """The lab that ``claim --reference`` runs after its sweep: the full design on the reference's backends
    (``backends``, ``points``: tests' smaller versions), in its own run folder under ``out_dir/lab``, predicting the
    zoo just measured. Returns (exit code, the relative path of its lab.json, the lab analysis or None)."""
    from .lab import reference_lab_args, run_lab

    lab_args = reference_lab_args(out_dir / "lab", backends or REFERENCE_BACKENDS, threads=args.threads,
                                  points=points, no_wait=getattr(args, "no_wait", False))
    code, run, lab = run_lab(lab_args, zoo_run)
    return code, (run.path.parent / "lab.json").relative_to(out_dir), lab


def _record_times(run, analysis_s: float, total_s: float, lab_s: float | None = None) -> None:
    """The analysis's seconds and the whole command's up to it (calibration, sweep, profiling, the lab, views,
    analysis) in the run's meta, and results.json written again with them (the views before it were written
    without); a meta line in the run's journal too, which ``benchbench.load`` and the index page read."""
    from benchbench.results.journal import JOURNAL, WriteError, record_meta

    run.meta["claim"] = {"analysis_s": round(analysis_s, 1), "total_s": round(total_s, 1)}
    if lab_s is not None:
        run.meta["claim"]["lab_s"] = round(lab_s, 1)
    try:
        run.save()
    except OSError as exc:
        raise WriteError(f"cannot write {run.path}: {exc.strerror or exc}") from None
    journal = Path(run.path).with_name(JOURNAL)
    if journal.is_file():
        record_meta(journal, run.meta)


def read_predictor_eval(path: str) -> dict:
    """``--predictor``: a ``benchbench predict --evaluate`` run's predictor_eval.json (or its folder), read with the
    result files' safety checks and summarized per backend for the claim (the cells stay in that file)."""
    file, doc = read_json_file(path, "predictor_eval.json", "--predictor", "predictor check")
    if not isinstance(doc, dict) or not isinstance(doc.get("backends"), dict) or not all(
            isinstance(v, dict) and "within_10pct_rel" in v for v in doc["backends"].values()):
        raise UsageError(f"--predictor {file}: not a predictor check (benchbench predict --evaluate writes "
                         "predictor_eval.json into its run folder)")
    return {"source": str(file), "backends": {b: {k: v for k, v in s.items() if k != "cells"}
                                              for b, s in doc["backends"].items()}}


def read_labs(paths: list[str]) -> tuple[str, dict]:
    """The lab.json of each ``--lab`` (a float lab and an ``--int8`` one, say) as one: their fits side by side,
    each backend from one file only; the files' names joined, as the source."""
    read = [read_lab(p) for p in paths]
    if len(read) == 1:
        return str(read[0][0]), read[0][1]
    merged = {**read[0][1], "backends": {}}
    for file, doc in read:
        for backend, fit in doc["backends"].items():
            if backend in merged["backends"]:
                raise UsageError(f"--lab: two lab files fit {backend} ({file} and an earlier one); give each "
                                 "backend's lab once")
            merged["backends"][backend] = fit
    return ", ".join(str(f) for f, _ in read), merged


def read_lab(path: str) -> tuple[Path, dict]:
    """A ``benchbench lab`` run's lab.json (``path`` is the file or its run folder), checked for its shape;
    a one-line error for anything else."""
    file, doc = read_json_file(path, "lab.json", "--lab", "lab file")
    if not isinstance(doc, dict) or not isinstance(doc.get("backends"), dict) \
            or not all(isinstance(v, dict) and "per_op_us" in v for v in doc["backends"].values()):
        raise UsageError(f"--lab {file}: not a lab.json (benchbench lab writes one into its run folder)")
    return file, doc


def read_json_file(path: str, name: str, flag: str, what: str) -> tuple[Path, object]:
    """The JSON document ``flag`` names (the file, or ``name`` in the run folder given), read with the result
    files' safety checks (type, size; ``SchemaError`` in one line); a one-line error when it is not JSON."""
    from benchbench.results.load import parse_json, read_result_bytes

    file = Path(path)
    if file.is_dir():
        file = file / name
    data = read_result_bytes(file, what)
    try:
        return file, parse_json(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise UsageError(f"{flag} {file}: not JSON") from None
