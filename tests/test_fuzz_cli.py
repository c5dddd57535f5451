"""Fuzz the command line in-process: whatever the arguments and whatever the result files hold, ``main``
returns 0, 1 or 2, and a 2 comes with exactly one ``benchbench: error:`` line and no traceback.

Result files are valid documents with one field mutated (wrong types, NaN/Inf/zero/negative/huge
samples, deleted keys), truncated JSON, random bytes, directories and missing paths. ``run`` is fuzzed
with the hidden null backend and a recording stand-in for the sweep, so no worker starts: what is
checked is parsing and validation, and that every accepted value lands in the cells within its bounds.
Budgets are bounded and derandomized, so CI sees the same examples every time.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from benchbench.cli import main
from benchbench.core.spec import MAX_BATCH, MAX_SEED, MAX_THREADS, CellSpec
from benchbench.results.record import CellResult, RunResult

DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
# BENCHBENCH_FUZZ_SCALE=20 fuzzes 20 times longer (locally, to hunt); CI runs the default budget (~30 s).
SCALE = float(os.environ.get("BENCHBENCH_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _check_exit(code, err: str, allowed=(0, 1, 2)) -> None:
    event(f"exit {code}")  # the outcome mix shows in --hypothesis-show-statistics
    assert isinstance(code, int) and code in allowed, (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("benchbench: error: "), err


def _claim_document() -> dict:
    """A valid run that exercises every part of claim: 4 families x 3 models, train and deploy, and a
    guideline table."""
    rng = np.random.default_rng(0)
    cells = []
    for f in range(4):
        for m in range(3):
            for variant in ("train", "deploy"):
                flops, ops = int(10 ** rng.uniform(8, 10)), int(10 ** rng.uniform(1, 3))
                median = 0.05 * ops * (1.3 if variant == "train" else 1.0)
                cell = CellResult(CellSpec(f"fam{f}_m{m}", variant, "ort"), "ok",
                                  samples_ns=(median * 1e6 * (1 + 0.01 * rng.standard_normal(12))).astype(int).tolist(),
                                  model={"family": f"fam{f}", "flops": flops, "params": flops // 100},
                                  metrics={"executed_ops": ops, "graph_ops": ops, "mac_bytes": 10**7, "dag_width": 1,
                                           "joins": ops // 4, "element_ops": flops // 50})
                cells.append(cell)
    for i, ratio in enumerate((1, 2, 6, 12)):
        cells.append(CellResult(CellSpec(f"g1_ratio{ratio}_x1", "deploy", "ort"), "ok",
                                samples_ns=[int(1e6 * (1 + 0.2 * i)) + k for k in range(12)],
                                model={"family": "guideline_g1", "flops": 10**8}))
    cells.append(CellResult(CellSpec("broken", "deploy", "ort"), "crashed", "worker died"))
    return RunResult(meta={"settings": {"noisy_ci": 0.05}}, cells=cells).to_dict()


V1 = json.loads((DATA / "result_v1.json").read_text())
CLAIM_DOC = _claim_document()


def _paths(obj, prefix=()):
    """Every key path into a document; only the first 3 items of a list (samples are long)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, (*prefix, i))


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=5)
_bad_samples = st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, -1e9, 10**16, 1e300, 10**30, "1", None, True])


def _leaf(doc: dict, path: tuple):
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    return parent, path[-1]


@st.composite
def mutated_documents(draw, base: dict) -> tuple[str, bool]:
    """(JSON text, whether a sample was made impossible). One mutation of ``base``, maybe truncated.

    Mutations: any value replaced by any JSON (mostly invalid), a key deleted, one sample made impossible,
    a number replaced by another plausible number or a cell's samples by a few extreme but possible ones
    (these stay valid, and reach the analysis with odd data), or nothing.
    """
    doc = json.loads(json.dumps(base))
    paths = list(_paths(doc))[1:]
    kind = draw(st.sampled_from(["set", "delete", "sample", "number", "samples", "none"]))
    bad_sample = False
    if kind in ("sample", "samples"):
        cell = doc["cells"][draw(st.integers(0, len(doc["cells"]) - 1))]
        samples = cell.setdefault("samples_ns", [])
        if kind == "samples":
            cell["samples_ns"] = draw(st.lists(st.integers(1, 10**15), min_size=1, max_size=5))
        else:
            value = draw(_bad_samples)
            if samples:
                samples[draw(st.integers(0, len(samples) - 1))] = value
            else:
                samples.append(value)
            bad_sample = True
    elif kind == "number":
        numbers = [p for p in paths if type(_leaf(doc, p)[0][_leaf(doc, p)[1]]) in (int, float)]
        parent, key = _leaf(doc, draw(st.sampled_from(numbers)))
        parent[key] = draw(st.one_of(st.integers(0, 10**12), st.floats(0, 1e12)))
    elif kind in ("set", "delete"):
        parent, key = _leaf(doc, draw(st.sampled_from(paths)))
        if kind == "set":
            parent[key] = draw(_values)
        elif isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    text = json.dumps(doc, indent=draw(st.sampled_from([None, 1])))  # NaN and Infinity as bare tokens
    if draw(st.integers(0, 3)) == 0:  # about a quarter: cut short, as by a crash mid-write
        text = text[: draw(st.integers(0, len(text) - 1))]
        bad_sample = False  # the file may now fail as "not JSON" first
    return text, bad_sample


def _number_text():
    return st.one_of(st.integers(-(2**40), 2**40).map(str), st.floats().map(repr),
                     st.sampled_from(["", "nan", "inf", "-inf", "1e400", "5%", "0", "1", "abc", "0.5", "-0"]),
                     st.text(max_size=6))


def _option_value(valid, absent: bool = True):
    """Half absent (or valid), a third valid, the rest anything: most examples get past argument parsing."""
    return st.integers(0, 9).flatmap(
        lambda k: (st.none() if absent else valid) if k < 5 else (valid if k < 8 else _number_text()))


def _file(tmp: Path, name: str, content) -> str:
    path = tmp / name
    if content == "directory":
        path.mkdir()
    elif content == "missing":
        pass
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


_other_files = st.one_of(st.just("directory"), st.just("missing"), st.binary(max_size=200),
                         st.just(json.dumps(V1)))


@settings(FUZZ, max_examples=int(200 * SCALE))
@given(a=mutated_documents(V1),
       b=st.sampled_from(["valid", "valid", "mutated", "other"]).flatmap(
           lambda k: {"valid": st.just(json.dumps(V1)), "mutated": mutated_documents(V1).map(lambda t: t[0]),
                      "other": _other_files}[k]),
       alpha=_option_value(st.floats(1e-6, 0.5).map(str)),
       threshold=_option_value(st.floats(0, 100).map(str)),
       fail_above=_option_value(st.floats(0.01, 100).map(lambda v: f"{v}%")),
       pivot=st.sampled_from([None, None, None, "variant", "backend", "both"]),  # both: --pivot missing, one file
       output=st.sampled_from([None, None, "ok", "ok", "missing_dir", "directory"]))
def test_fuzz_compare(a, b, alpha, threshold, fail_above, pivot, output):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        argv = ["compare", _file(tmp, "a.json", a[0])]
        if pivot is None:
            argv.append(_file(tmp, "b.json", b))
        elif pivot != "both":
            argv += ["--pivot", pivot]
        for flag, value in (("--alpha", alpha), ("--threshold", threshold), ("--fail-above", fail_above)):
            if value is not None:
                argv.append(f"{flag}={value}")
        if output:
            argv += ["--output", {"ok": str(tmp / "t.md"), "missing_dir": str(tmp / "no" / "t.md"),
                                  "directory": str(tmp)}[output]]
        code, out, err = _cli(argv)
        _check_exit(code, err)
        if a[1]:  # an impossible sample is never compared
            assert code == 2, err
            if alpha is threshold is fail_above is None and output in (None, "ok"):  # nothing else to refuse first
                assert "samples_ns" in err or "number too large" in err, err  # (the parser sees no path)
        if code != 2:
            assert "Geometric mean" in out or "No cells matched" in out
            if output == "ok":
                assert (tmp / "t.md").read_text().strip() == out.strip()


@settings(FUZZ, max_examples=int(100 * SCALE))
@given(doc=mutated_documents(CLAIM_DOC), extra=st.integers(0, 9), other=_other_files)
def test_fuzz_claim(doc, extra, other):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = tmp / "out"
        out_is_file = extra == 0  # a tenth: --out onto a file; another tenth: a second result file
        if out_is_file:
            out.write_text("")
        argv = ["claim", _file(tmp, "r.json", doc[0]), "--out", str(out)]
        if extra == 1:
            argv.insert(2, _file(tmp, "other.json", other))
        code, _, err = _cli(argv)
        _check_exit(code, err, allowed=(0, 2))
        if doc[1] or out_is_file:
            assert code == 2, err
        if code == 0:
            claim_json = next(out.glob("*/claim.json")).read_text()
            json.loads(claim_json, parse_constant=lambda token: pytest.fail(f"claim.json holds {token}"))


@settings(FUZZ, max_examples=int(40 * SCALE))
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300),
                         st.sampled_from(["[" * 5000, "{}", "[]", "null", "1e400", "9" * 5000, '{"schema": "benchbench/result"}'])))
def test_fuzz_raw_result_files(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = _file(Path(tmp), "x.json", content)
        for argv in (["compare", path, path], ["claim", path, "--out", tmp]):
            code, _, err = _cli(argv)
            _check_exit(code, err, allowed=(2,))


@pytest.fixture(scope="module")
def recorded_sweeps():
    """run_sweep replaced by a recorder: the cells and config each accepted command line would measure."""
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("benchbench.measure.sweep.run_sweep",
                   lambda cells, config, run, **kw: calls.append((cells, config, kw)) or run)
        yield calls


def _run_option(valid):
    return _option_value(valid, absent=False)


_run_options = {
    "--threads": _run_option(st.integers(1, MAX_THREADS).map(str)),
    "--batch": _run_option(st.integers(1, MAX_BATCH).map(str)),
    "--seed": _run_option(st.integers(0, MAX_SEED).map(str)),
    "--input-size": _run_option(st.one_of(st.integers(1, 8192).map(str),
                                          st.tuples(st.integers(1, 8192), st.integers(1, 8192)).map("{0[0]}x{0[1]}".format))),
    "--min-time": _run_option(st.floats(0.01, 5).map(str)),
    "--max-time": _run_option(st.floats(0.01, 20).map(str)),
    "--target-ci": _run_option(st.floats(0.001, 0.999).map(str)),
    "--cell-timeout": _run_option(st.floats(1, 1000).map(str)),
    "--rounds": _run_option(st.integers(1, 3).map(str)),
    "--model": st.sampled_from([TINY, TINY, f"{TINY},{TINY}", ",", " , ", "", "no_such_model"]),
    "--backend": st.sampled_from(["null", "NULL", "Null", ",", "null,", "nul"]),
    "--option": st.sampled_from(["latency_ms=1", "latency_ms=1", "fail=bogus", "nokey", "=x", "layout=nhwc"]),
}


@settings(FUZZ, max_examples=int(120 * SCALE))
@given(chosen=st.dictionaries(st.sampled_from(sorted(_run_options)), st.none(), max_size=6), data=st.data())
def test_fuzz_run_arguments(recorded_sweeps, tmp_path_factory, chosen, data):
    argv = ["run", "--model", TINY, "--backend", "null", "--roofline", "off",
            "--out", str(tmp_path_factory.getbasetemp() / "fuzz_runs")]
    for flag in chosen:
        argv.append(f"{flag}={data.draw(_run_options[flag], label=flag)}")
    before = len(recorded_sweeps)
    code, _, err = _cli(argv)
    _check_exit(code, err, allowed=(0, 2))
    if code == 2:
        assert len(recorded_sweeps) == before  # refused before anything was measured
        return
    cells, config, kw = recorded_sweeps[-1]
    assert cells
    for c in cells:
        assert 1 <= c.threads <= MAX_THREADS and 1 <= c.batch <= MAX_BATCH and 0 <= c.seed <= MAX_SEED
        assert c.input_size is None or all(1 <= s <= 8192 for s in c.input_size)
        assert c.backend == "null" and c.model == TINY
    assert all(math.isfinite(v) and v > 0 for v in (config.min_s, config.max_s, config.cell_timeout_s))
    assert config.min_s <= config.max_s and 0 < config.target_ci < 1
    assert kw["rounds"] >= 1
