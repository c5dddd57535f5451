"""benchbench from Python (a notebook, a script): load results, get DataFrames, compare runs, follow cells.

    import benchbench
    res = benchbench.load("reports/reference")        # a run folder, a results.json or a cells.jsonl
    df = res.to_pandas()                               # one row per cell
    benchbench.compare("runs/a", "runs/b")             # one row per matched cell: ratio, interval, verdict
    benchbench.compare(res, pivot="variant")           # train vs deploy inside one run, paired by round
    benchbench.history(["runs/a", "runs/b", "runs/c"]).changes()

``import benchbench`` stays light: this module is imported on first use of these names, and pandas only by
the methods that return DataFrames (``pip install 'benchbench[pandas]'``).
"""

from __future__ import annotations

from pathlib import Path

from .results.history import History, history, load_any, require_pandas
from .results.record import CellResult, RunResult

__all__ = ["Results", "run", "load", "compare", "history", "History"]


class Results:
    """A run's results: its cells and meta, as files hold them (``RunResult``), with table views.

    Wraps a RunResult from anywhere: ``load`` (a folder or a file), or one a sweep returns in memory.
    """

    def __init__(self, run: RunResult, exit_code: int | None = None):
        if not isinstance(run, RunResult):
            raise TypeError(f"Results wraps a RunResult, not {type(run).__name__}; use benchbench.load(path)")
        self.run = run
        self.exit_code = exit_code  # what `benchbench run` would have exited with (``run``); None when loaded

    @property
    def cells(self) -> list[CellResult]:
        return self.run.cells

    @property
    def meta(self) -> dict:
        return self.run.meta

    @property
    def path(self) -> Path | None:
        return self.run.path

    def __len__(self) -> int:
        return len(self.run.cells)

    def __iter__(self):
        return iter(self.run.cells)

    def __repr__(self) -> str:
        ok = sum(c.ok for c in self.run.cells)
        where = f" from {self.run.path}" if self.run.path else ""
        when = (self.run.meta.get("environment") or {}).get("time")
        return f"<benchbench.Results{where}: {len(self)} cells, {ok} ok" + (f", measured {when}" if when else "") + ">"

    def rows(self) -> list[dict]:
        """One flat dict per cell: the spec's fields (``label``, ``model``, ``variant``, ``backend``, ``batch``,
        ``threads``, ``seed``, ``input_size``, ``options``, ``device``, ``source``), status and reason, the
        statistics (``median_ms`` with ``ci_low_ms``/``ci_high_ms``, percentiles, ``noisy``), the speedup with its
        interval (on deploy / after rows), model counts, memory, parity and every scalar metric (``metric_*``):
        the CSV's columns (``views.rows``) and the spec's."""
        from .results.views import rows

        out = []
        for r, c in zip(rows(self.run), self.run.cells):
            s = c.spec
            spec = {"label": s.label(), "model": s.model, "variant": s.variant, "backend": s.backend, "batch": s.batch,
                    "threads": s.threads, "seed": s.seed,
                    "input_size": "x".join(map(str, s.input_size)) if s.input_size else None,
                    "options": ",".join(f"{k}={v}" for k, v in s.options) or None,
                    "device": s.device, "source": s.source.path if s.source else None}
            out.append({**spec, **{k: v for k, v in r.items() if k not in spec}, "group": c.group, "fault": c.fault})
        return out

    def to_pandas(self):
        """``rows()`` as a pandas DataFrame, one row per cell (needs ``benchbench[pandas]``)."""
        pd = require_pandas()
        return pd.DataFrame(self.rows())

    def speedups(self) -> dict:
        """Speedup per candidate cell's key (``spec.key()`` of the deploy, int8 or after cell: train/deploy,
        deploy/int8, before/after), as RatioEstimates."""
        from .results.views import speedups

        return speedups(self.run)

    def report_html(self) -> str:
        """The run as one self-contained HTML page (``results.html.report_html``)."""
        from .results.html import report_html

        return report_html(self.run)

    def write_report_html(self, folder: str | Path) -> Path:
        from .results.html import write_report_html

        return write_report_html(self.run, folder)


def run(models, backends="torch", **options) -> Results:
    """Run a sweep from Python, as ``benchbench run`` would with the same options; returns its Results (with
    ``exit_code``, the code the command would exit with, and ``path``, the run's results.json).

    ``models`` and ``backends`` are names (or lists of names, globs, ``file.py:factory`` specs, model files);
    every other keyword is a ``run`` option with dashes as underscores: ``variant="deploy"``, ``threads=2``,
    ``quick=True``, ``sampling="reference"``, ``rounds=3``, ``input_size=128``, ``out="reports/runs"``,
    ``html=True``, ``option={"precision": "bf16"}`` (``--option``, also as a list of ``"k=v"``). A mistake in
    what is asked raises the one-line error the command would print (``benchbench.cli.errors.UsageError``,
    ``UnknownNameError``, ...) before anything runs."""
    from .cli.parser import build_parser
    from .cli.run import measure

    argv = ["run", "--model", _names(models), "--backend", _names(backends)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, dict):
            argv += [x for k, v in value.items() for x in (flag, f"{k}={v}")]
        elif isinstance(value, (list, tuple)) and key in ("option", "input_shape"):
            argv += [x for v in value for x in (flag, str(v))]
        elif isinstance(value, (list, tuple)):
            argv += [flag, "x".join(map(str, value)) if key == "input_size" else _names(value)]
        else:
            argv += [flag, str(value)]
    args = build_parser().parse_args(argv)
    args.argv = argv
    code, measured = measure(args)
    return Results(measured, exit_code=code)


def _names(value) -> str:
    return value if isinstance(value, str) else ",".join(map(str, value))


def load(path_or_dir) -> Results:
    """Results from a run folder (its journal, else its results.json; ``reports/reference`` too), a
    ``results.json``, a ``cells.jsonl``, or a RunResult. ``SchemaError`` (one line) for anything else."""
    return Results(load_any(path_or_dir))


def _comparison_rows(comparisons, pair: str | None = None) -> list[dict]:
    out = []
    for c in comparisons:
        cell = c.a or c.b
        est = c.estimate
        out.append({**({"pair": pair} if pair is not None else {}),
                    "cell": c.label, "model": cell.spec.model, "variant": cell.spec.variant,
                    "backend": cell.spec.backend, "batch": cell.spec.batch, "threads": cell.spec.threads,
                    "a_status": c.a.status if c.a else None, "b_status": c.b.status if c.b else None,
                    "a_median_ms": c.a.median_ms if c.a and c.a.ok else None,
                    "b_median_ms": c.b.median_ms if c.b and c.b.ok else None,
                    "ratio": est.value if est else None, "low": est.low if est else None,
                    "high": est.high if est else None, "paired": c.paired if est else None,
                    "p_value": c.p_value, "verdict": c.verdict})
    return out


def compare(a, b=None, threshold: float = 0.05, alpha: float = 0.01, pivot: str | None = None,
            baseline: str | None = None):
    """The latency ratio B/A of every matched cell with its 95% interval and verdict (``compare.compare_runs``)
    as a DataFrame: ``cell``, spec fields, ``a_median_ms``, ``b_median_ms``, ``ratio``, ``low``, ``high``,
    ``paired``, ``p_value``, ``verdict`` (faster / slower / same / unresolved, or why not comparable).

    ``a`` and ``b`` are anything ``load`` takes. Two runs were measured apart, so their cells are compared
    unpaired (the quotient of their intervals, and the U test on block medians). With ``pivot`` (``variant``,
    ``backend`` or ``device``) and no ``b``, one run is split into pairs that differ only in that field, as
    ``benchbench compare --pivot`` does; cells measured in one lockstep group are then paired by round, and a
    ``pair`` column names each pair (``train → deploy``).
    """
    from .results.compare import compare_runs
    from .results.compare import pivot as split

    pd = require_pandas()
    run_a = load_any(a)
    if pivot is not None:
        if b is not None:
            raise ValueError("compare takes a second run or pivot=, not both")
        rows = []
        for label, side_a, side_b in split(run_a, pivot, baseline):
            rows += _comparison_rows(compare_runs(side_a, side_b, threshold, alpha, paired=True), label)
        return pd.DataFrame(rows)
    if b is None:
        raise ValueError("compare needs a second run, or pivot='variant' (or 'backend', 'device') for one run")
    run_b = load_any(b)
    # Group indices are per run: the same index in two runs does not mean the cells ran together.
    return pd.DataFrame(_comparison_rows(compare_runs(run_a, run_b, threshold, alpha)))
