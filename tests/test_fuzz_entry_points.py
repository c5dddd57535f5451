"""Fuzz every entry point of the command line with hostile paths, names, file contents, locales and signals.

The rule under test: every user mistake is exactly one ``benchbench: error: ...`` line on stderr and a
documented exit code (2 for a mistake in what was asked, 3 for the environment), never a traceback, never a
hang, and nothing is written outside the example's own temporary folder.

* **Paths** for every option and argument that takes one (``run --model/--vs/--input-data/--out/--resume``,
  ``report DIR``, ``compare A B --output``, ``claim FILES --out``): absent, a folder, a FIFO, ``/dev/zero``, a
  symlink loop, a dangling symlink, a name past NAME_MAX or PATH_MAX, under a regular file, non-UTF-8 bytes
  (``os.fsdecode``), control characters, empty, relative to the working directory, and regular files whose
  content is drawn: valid documents, JSON fragments, truncated or mutated result files and journals, random
  bytes, huge numbers, valid or broken ONNX, OpenVINO IR, TFLite, ``.npz`` and Python files.
* **Names** (``--model``, ``--backend``, ``list``/``cache`` patterns, ``doctor``, ``compare --baseline``):
  zoo names in any case, unicode, control characters, globs.
* **Streams**: stdout and stderr as a C locale gives them (ASCII, strict) or UTF-8.

In-process, ``benchbench.cli.main(argv)`` runs with the measuring sweep replaced by a recorder (as
tests/test_cli_input.py does), the machine-state probe shortened and calibration skipped: what is fuzzed is
input handling. A sample goes through real subprocesses under the C, POSIX and C.UTF-8 locales, some
interrupted by SIGINT or SIGTERM. Budgets are derandomized; ``BENCHBENCH_FUZZ_SCALE=N`` runs N times more
examples (the long run: ``BENCHBENCH_FUZZ_SCALE=12 pytest tests/test_fuzz_entry_points.py``).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from _onnx_files import matmul_model
from _sweeping import default_signals
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from benchbench.cli import main
from benchbench.processes.manager import module_command

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
TINY = f"{DATA / 'tiny.py'}:tiny"
V1_TEXT = (DATA / "result_v1.json").read_text(encoding="utf-8")
SCALE = float(os.environ.get("BENCHBENCH_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
DOCUMENTED = {0, 1, 2, 3, 129, 130, 143}


def _examples(n: int) -> int:
    return max(1, int(n * SCALE))


# --- the files the examples draw from (made once) ------------------------------------------------------------

def _onnx_bytes() -> bytes:
    model = matmul_model()
    return model.SerializeToString()


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _journal_text() -> str:
    """A run folder's journal holding the two cells of result_v1.json, with a command line --resume can read."""
    from benchbench.results.journal import Journal
    from benchbench.results.load import load_run

    run = load_run(DATA / "result_v1.json")
    for cell in run.cells:  # the model as the stored command line names it, so that --resume matches it
        cell.spec = dataclasses.replace(cell.spec, model=TINY)
    run.meta["argv"] = ["benchbench", "run", "--model", TINY, "--backend", "null", "--threads", "2", "--quick",
                        "--roofline", "off"]
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.create(Path(tmp) / "cells.jsonl", run.meta)
        journal.append_group(run.meta, 0, [], run.cells)
        journal.close()
        return (Path(tmp) / "cells.jsonl").read_text(encoding="utf-8")


class _Stock(dict):
    def __repr__(self) -> str:  # hypothesis prints a failing example's arguments: not megabytes of files
        return "<stock files>"


@pytest.fixture(scope="module")
def stock():
    """Valid files of every kind the examples start from."""
    pytest.importorskip("onnx")
    onnx_bytes = _onnx_bytes()
    out = _Stock({"onnx": onnx_bytes, "journal": _journal_text(), "v1": V1_TEXT,
           "npz": _npz_bytes(x=np.ones((1, 64), np.float32)), "npz2": _npz_bytes(x=np.ones((2, 64), np.float32)),
           "py": (DATA / "tiny.py").read_text(encoding="utf-8"), "xml": None, "bin": None})
    try:
        import openvino as ov

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "m.onnx").write_bytes(onnx_bytes)
            ov.save_model(ov.convert_model(str(Path(tmp) / "m.onnx"), input=[("x", [1, 64])]), str(Path(tmp) / "m.xml"))
            out["xml"], out["bin"] = (Path(tmp) / "m.xml").read_bytes(), (Path(tmp) / "m.bin").read_bytes()
    except ImportError:
        pass
    return out


# --- the stand-ins: nothing is measured, the machine is not sampled for long ------------------------------

class _Calls(list):
    def __repr__(self) -> str:
        return f"<{len(self)} recorded sweeps>"


@pytest.fixture(scope="module")
def stand_ins():
    calls = []
    from benchbench.measure import machine

    real_state = machine.machine_state
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("benchbench.measure.sweep.run_sweep", lambda cells, config, run, **kw: calls.append(cells) or run)
        mp.setattr("benchbench.measure.machine.machine_state",
                   lambda window_s=1.0, threads=None: real_state(0.01, threads))
        mp.setattr("benchbench.measure.calibration.calibrate_run", lambda *a, **kw: None)

        class _NoAA:
            estimate, reason = None, "not measured in the fuzz"

        mp.setattr("benchbench.measure.doctor.aa_check", lambda spec, config: _NoAA())
        yield _Calls(calls)


# --- paths ------------------------------------------------------------------------------------------------------

_KINDS = ["regular", "regular", "regular", "regular", "absent", "absent_nested", "under_file", "directory", "fifo",
          "dev_zero", "dev_null", "proc", "root", "loop", "dangling", "too_long", "too_long_total", "non_utf8",
          "control", "empty", "relative", "symlink", "spaces"]
_EXTS = {"result": [".json", ".json", ".json", "", ".txt"], "model": [".onnx", ".onnx", ".onnx", ".tflite", ".xml",
                                                                       ".py", ".ONNX", ""],
         "npz": [".npz", ".npz", ".npy", ""], "out": [""], "folder": [""]}


def _contents(stock: dict, role: str, ext: str):
    """What a regular file of this role holds: mostly something close to valid, else anything."""
    v1 = stock["v1"]
    fragments = ["{}", "[]", "null", "1e400", "9" * 5000, "[" * 5000, '{"schema": "benchbench/result"}',
                 '{"schema": "benchbench/result", "schema_version": 99}', '{"kind": "header"}', "\"\\udce9\"",
                 "NaN", "-Infinity", '{"a": 1e309}', "\ufeff{}"]
    common = [st.binary(max_size=300), st.sampled_from(fragments), st.text(max_size=80), st.just(b"")]
    if role == "result":
        mutated = st.tuples(st.integers(0, len(v1)), st.sampled_from(["cut", "flip", "num"])).map(
            lambda t: v1[:t[0]] if t[1] == "cut" else (v1[:t[0]] + "}" + v1[t[0] + 1:] if t[1] == "flip"
                                                       else v1.replace("279595", "1" + "0" * 30, 1)))
        return st.sampled_from(["valid"] * 4 + ["mutated", "mutated", "other"]).flatmap(
            lambda k: {"valid": st.just(v1), "mutated": mutated}.get(k, st.one_of(*common)))
    if role == "journal":
        j = stock["journal"]
        cut = st.integers(0, len(j)).map(lambda n: j[:n])
        junk = st.binary(max_size=60).map(lambda b: j.encode() + b)
        swap = st.sampled_from(['"kind":"group"', '"kind":"cell"', '"index":0', '"version":1', '"status":"ok"',
                                '"samples_ns":[']).flatmap(
            lambda key: st.sampled_from(['"kind":"x"', '"index":"0"', '"index":true', '"version":2', "",
                                         '"status":"lost"', '"samples_ns":[-1,']).map(lambda new: j.replace(key, new, 1)))
        return st.sampled_from(["valid"] * 4 + ["cut", "junk", "swap", "swap", "other"]).flatmap(
            lambda k: {"valid": st.just(j), "cut": cut, "junk": junk, "swap": swap}.get(k, st.one_of(*common)))
    if role == "npz":
        good = [stock["npz"], stock["npz2"], _npz_bytes(x=np.ones((1, 64), np.complex64)),
                _npz_bytes(x=np.ones((0, 64), np.float32)), _npz_bytes(y=np.ones(3)), _npz_bytes(x=np.array(["a"])),
                _npz_bytes(x=np.ones((1, 64), np.int64)), _npz_bytes(x=np.ones((1, 64)) * 1e300)]
        cut = st.sampled_from(good).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
        return st.one_of(st.sampled_from(good), cut, *common)
    def mostly(valid, *others):
        return st.sampled_from(["valid"] * 5 + ["other"] * 2).flatmap(
            lambda k: st.just(valid) if k == "valid" else st.one_of(*others))

    if ext.lower() == ".onnx":
        o = stock["onnx"]
        return mostly(o, st.integers(0, len(o)).map(lambda n: o[:n]), *common)
    if ext == ".xml" and stock["xml"]:
        x = stock["xml"]
        return mostly(x, st.integers(0, len(x)).map(lambda n: x[:n]), *common)
    if ext == ".py":
        return mostly(stock["py"], st.just("def tiny(:\n"), st.just("raise SystemExit(3)\n"),
                      st.just("import no_such_module\n"), *common)
    return st.one_of(*common)


class Sandbox:
    """The example's own folder: every path drawn lies in it (or is a device or file only read)."""

    def __init__(self, root: Path, draw, stock: dict):
        self.root, self.draw, self.stock, self.n = root, draw, stock, 0
        self.cwd = root / "cwd"
        self.cwd.mkdir()

    def _name(self, ext: str) -> str:
        self.n += 1
        return f"f{self.n}{ext}"

    def _fill(self, path: Path, role: str, ext: str) -> None:
        content = self.draw(_contents(self.stock, role, ext), label=f"content of {path.name[:40]}")
        if isinstance(content, str):
            content = content.encode("utf-8", errors="surrogatepass")
        path.write_bytes(content)
        if ext == ".xml":  # IR keeps its weights beside it, mostly
            if not _chance(self.draw, "no .bin", 20) and self.stock["bin"]:
                path.with_suffix(".bin").write_bytes(self.stock["bin"])

    def path(self, role: str, odd: int = 55, ext: str | None = None) -> str:
        """A path for an argument of this role (result, model, npz, out, folder, journal): a regular file or
        folder, or ``odd`` % of the time any other kind; with the suffix ``ext``, or one drawn for the role."""
        kind = self.draw(st.sampled_from(_KINDS), label=f"{role} kind") if _chance(self.draw, f"odd {role}?", odd) \
            else "regular"
        if ext is None:
            ext = self.draw(st.sampled_from(_EXTS.get(role, [""])), label=f"{role} suffix")
        event(f"{role}: {kind}")
        r = self.root
        if kind == "regular":
            if role in ("out", "folder"):
                p = r / self._name("")
                p.mkdir()
                return str(p)
            p = r / self._name(ext)
            self._fill(p, role, ext)
            return str(p)
        if kind == "absent":
            return str(r / self._name(ext))
        if kind == "absent_nested":
            return str(r / "no" / "such" / self._name(ext))
        if kind == "under_file":
            f = r / self._name(".txt")
            f.write_text("x", encoding="utf-8")
            return str(f / self._name(ext))
        if kind == "directory":
            p = r / self._name(ext)
            p.mkdir()
            return str(p)
        if kind == "fifo":
            p = r / self._name(ext)
            os.mkfifo(p)
            return str(p)
        if kind in ("dev_zero", "dev_null", "proc", "root"):
            if role in ("out",):  # never a path outside the sandbox for something that writes
                return str(r / self._name(""))
            return {"dev_zero": "/dev/zero", "dev_null": "/dev/null", "proc": "/proc/self/status", "root": "/"}[kind]
        if kind == "loop":
            p = r / self._name(ext)
            os.symlink(p.name, p)
            return str(p)
        if kind == "dangling":
            p = r / self._name(ext)
            os.symlink(r / "nowhere", p)
            return str(p)
        if kind == "too_long":
            return str(r / ("n" * 300 + ext))
        if kind == "too_long_total":
            return str(r.joinpath(*["d" * 200] * 25) / ("x" + ext))
        if kind in ("non_utf8", "control", "spaces"):
            stem = {"non_utf8": os.fsdecode(b"caf\xe9-\xff\xfe"), "control": "a\nb\tc\x1b[31m\x7f",
                    "spaces": " lead -dash "}[kind]
            p = r / (stem + self._name(ext))
            if not _chance(self.draw, "absent", 30):
                if role in ("out", "folder"):
                    p.mkdir()
                else:
                    self._fill(p, role, ext)
            return str(p)
        if kind == "empty":
            return ""
        if kind == "relative":
            name = self._name(ext)
            if role in ("out", "folder"):
                (self.cwd / name).mkdir()
            else:
                self._fill(self.cwd / name, role, ext)
            return name
        if kind == "symlink":
            target = r / self._name(ext)
            if role in ("out", "folder"):
                target.mkdir()
            else:
                self._fill(target, role, ext)
            p = r / self._name(ext)
            os.symlink(target, p)
            return str(p)
        raise AssertionError(kind)

    def run_folder(self) -> str:
        """A run folder: a journal (whole, cut, mutated, a FIFO, a folder), a results.json, both or neither."""
        kind = self.draw(st.sampled_from(["journal", "journal", "results", "both", "empty", "fifo_journal",
                                          "fifo_results", "dir_journal", "other"]), label="run folder")
        event(f"run folder: {kind}")
        if kind == "other":
            return self.path("folder")
        folder = self.root / self._name("")
        folder.mkdir()
        if kind in ("journal", "both"):
            self._fill(folder / "cells.jsonl", "journal", "")
        if kind in ("results", "both"):
            self._fill(folder / "results.json", "result", ".json")
        if kind == "fifo_journal":
            os.mkfifo(folder / "cells.jsonl")
        if kind == "fifo_results":
            os.mkfifo(folder / "results.json")
        if kind == "dir_journal":
            (folder / "cells.jsonl").mkdir()
        return str(folder)


# --- names and numbers ---------------------------------------------------------------------------------------

_weird_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=16)
_names = st.one_of(st.sampled_from(["vanillanet_5", "VanillaNet_5", "vanillanet", "repvgg_a0", "resnet18", "g1_*",
                                    "repvgg_*", "*", "[", "[!a]*", "?", "**", "résnet18", "ＶanillaNet", "x\ny",
                                    "a\x1b[31m", " ", ",", "tiny"]), _weird_text)
_backends = st.one_of(st.sampled_from(["null", "NULL", "ort", "ORT", "ov", "openvino", "tflite", "litert", "torch",
                                       "torch-cuda", "ort-cuda", "null,ort", "nul", "ønnx", ",", "null\n"]),
                      _weird_text)
_numbers = st.one_of(st.integers(-5, 5000).map(str), st.sampled_from(["", "nan", "inf", "1e400", "0x10", "٣", "1_0",
                                                                      " 2 ", "9" * 400]), _weird_text)
_shapes = st.sampled_from(["x=1x64", "x=2x64", "x=1x64", "x=", "x=0x64", "x=1x64x1", "x=1", "y=1x64", "=1x64",
                           "x==1", "x=1x" + "9" * 30, "x=1×64", "x=-1x64", "X=1x64", "weird"]).flatmap(
    lambda v: _weird_text if v == "weird" else st.just(v))


def _chance(draw, label: str, percent: int) -> bool:
    """True about ``percent`` % of the time (hypothesis favours small and boundary integers, so the drawn one
    is hashed into 0..99 first); 0, the value it shrinks to, gives False for any ``percent`` up to 50."""
    return (draw(st.integers(0, 1 << 16), label=label) * 2654435761 + 49) % 100 >= 100 - percent


def _opt(draw, flag: str, strategy, percent: int = 50) -> list[str]:
    return [flag, draw(strategy, label=flag)] if _chance(draw, f"{flag}?", percent) else []


# --- running one example ----------------------------------------------------------------------------------

# Nothing may be written outside the example's folder. An audit hook (PEP 578) sees every open for writing,
# mkdir, rename, remove, ... that Python code does while an example runs, and records any outside it.
_WATCH: dict = {"root": None, "outside": []}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link", "os.truncate",
                 "os.chmod", "os.chown", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
                 "shutil.copytree", "shutil.make_archive"}


# Libraries' own caches, made on first import whatever benchbench asks (matplotlib's font cache, for claim's
# plots): not benchbench writing where it was not told to.
_THIRD_PARTY_CACHES = [str(Path.home() / ".config" / "matplotlib"), str(Path.home() / ".cache" / "matplotlib"),
                       os.environ.get("MPLCONFIGDIR", "/nonexistent")]


def _audit(event: str, args: tuple) -> None:
    root = _WATCH["root"]
    if root is None:
        return
    if event == "open":
        if len(args) < 3 or not isinstance(args[2], int) or not args[2] & _WRITE_FLAGS:
            return
        paths = args[:1]
    elif event in _WRITE_EVENTS:
        paths = args[:2] if event in ("os.rename", "os.symlink", "os.link", "shutil.move", "shutil.copyfile",
                                      "shutil.copytree") else args[:1]
    else:
        return
    for path in paths:
        if not isinstance(path, (str, bytes, os.PathLike)):
            continue  # a file descriptor
        full = os.path.abspath(os.fsdecode(path))
        if full == root or full.startswith(root + os.sep) or full == "/dev/null" or "__pycache__" in full:
            continue
        if any(full == p or full.startswith(p + os.sep) for p in _THIRD_PARTY_CACHES):
            continue
        _WATCH["outside"].append(f"{event} {full}")


sys.addaudithook(_audit)


def _checkout_listing() -> set[str]:
    """For subprocesses, which no audit hook sees: the checkout's top level and its reports/runs."""
    names = set()
    for folder in (ROOT, ROOT / "reports" / "runs"):
        with contextlib.suppress(OSError):
            names |= {f"{folder.name}/{n}" for n in os.listdir(folder)}
    return {n for n in names if not n.split("/")[-1].startswith((".pytest_cache", ".hypothesis", "__pycache__",
                                                                  ".coverage"))}


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("the command blocked for 120 s")


def _in_process(argv: list[str], root: Path, encoding: str, env: dict | None = None) -> tuple[int, str, str]:
    """``main(argv)`` in ``root/cwd`` with the example's own cache and lock, stdout and stderr encoded as a
    locale would (``ascii``: LC_ALL=C), under a 120 s alarm."""
    out_raw, err_raw = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_raw, encoding=encoding, errors="strict", write_through=True)
    err = io.TextIOWrapper(err_raw, encoding=encoding, errors="strict", write_through=True)
    saved_env = {k: os.environ.get(k) for k in ("BENCHBENCH_CACHE", "BENCHBENCH_LOCK")}
    os.environ.update({"BENCHBENCH_CACHE": str(root / "cache"), "BENCHBENCH_LOCK": str(root / "measure.lock"),
                       **(env or {})})
    cwd = os.getcwd()
    os.chdir(root / "cwd")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(120)
    _WATCH["root"], _WATCH["outside"] = str(root), []
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        _WATCH["root"] = None
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        os.chdir(cwd)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out_raw.getvalue().decode(encoding), err_raw.getvalue().decode(encoding)


def _check(code, err: str, allowed=frozenset({0, 1, 2, 3})) -> None:
    """The rule: a documented code; no traceback; a refusal (2, 3) is exactly one ``benchbench: error:`` line
    and nothing but benchbench's own lines; success prints no error line."""
    event(f"exit {code}")
    assert isinstance(code, int) and code in allowed, (code, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    lines = err.splitlines()
    errors = [ln for ln in lines if ln.startswith("benchbench: error: ")]
    if code in (2, 3):
        model_errors = [ln for ln in lines if ln.startswith("benchbench: model error: ")]
        assert len(errors) == 1 or (code == 2 and model_errors and not errors), err[-2000:]
        event(f"refused: {re.sub(r'/tmp/bb-fuzz-[^/ ]+', '<tmp>', (errors or model_errors)[0])[19:70]}")
    else:
        assert not errors, err[-2000:]
    strays = [ln for ln in lines if ln and not ln.startswith(("benchbench: ", "note: ", "[", "interrupted"))]
    assert not strays, err[-2000:]  # a third party writing to stderr around benchbench's line


def _example(stock, data, build_argv, *, extra_env=None, allowed=frozenset({0, 1, 2, 3})):
    """One example: a fresh sandbox, argv drawn by ``build_argv(sandbox)``, run in-process, checked."""
    with tempfile.TemporaryDirectory(prefix="bb-fuzz-") as tmp:
        root = Path(tmp).resolve()
        box = Sandbox(root, data.draw, stock)
        argv = build_argv(box)
        encoding = data.draw(st.sampled_from(["ascii", "utf-8"]), label="stream encoding")
        env = extra_env(box) if extra_env else None
        code, out, err = _in_process(argv, root, encoding, env)
        _check(code, err, allowed)
        assert not _WATCH["outside"], f"written outside the example's folder: {_WATCH['outside'][:5]}"
    return code, out, err


# --- the in-process fuzz -----------------------------------------------------------------------------------

@settings(FUZZ, max_examples=_examples(160))
@given(data=st.data())
def test_fuzz_run_and_profile_paths(stock, stand_ins, data):
    """run and profile with model files (.onnx, .tflite, .xml, file.py:factory) of every path kind and content,
    --vs, --input-data, --input-shape, --out, --resume, and names and numbers beside them."""

    def argv(box: Sandbox) -> list[str]:
        command = data.draw(st.sampled_from(["run", "run", "run", "profile"]), label="command")
        mode = data.draw(st.sampled_from(["onnx", "onnx", "xml", "py", "any"]), label="model mode")
        model = box.path("model", odd=25, ext={"onnx": ".onnx", "xml": ".xml", "py": ".py"}.get(mode))
        if model.endswith(".py") or _chance(data.draw, "factory?", 5):
            model += data.draw(st.sampled_from([":tiny", ":tiny", ":nope", ":", ":tiny:x"]), label="factory")
        models = data.draw(st.sampled_from([[model], [model], [model, TINY], [model, "vanillanet_5"]]), label="models")
        backend = data.draw(st.sampled_from(["ort", "ort", "ort", "ort,openvino", "openvino", "null", "tflite",
                                             "ort,tflite", "other"]), label="backend")
        if mode == "xml" and backend == "ort":
            backend = "openvino"
        if mode == "py" and backend == "ort":
            backend = "null"
        if backend == "other":
            backend = data.draw(_backends, label="other backend")
        args = [command, "--model", ",".join(models), "--backend", backend, *(["--roofline", "off"]
                                                                              if command == "run" else [])]
        args += ["--out", box.path("out") if _chance(data.draw, "out?", 25) else str(box.root / "runs")]
        file = mode != "py"
        if _chance(data.draw, "input-data?", 45 if file else 5):
            args += ["--input-data", box.path("npz", odd=35)]
        for _ in range(data.draw(st.integers(0, 2), label="shapes") if file or _chance(data.draw, "shape?", 5) else 0):
            args += ["--input-shape", data.draw(_shapes, label="--input-shape")]
        if _chance(data.draw, "vs?", 15 if file else 3):
            args += ["--vs", box.path("model", odd=35, ext=data.draw(st.sampled_from([".onnx", ".onnx", ".xml"]),
                                                                       label="vs suffix"))]
        if command == "run" and _chance(data.draw, "resume?", 8):
            args += ["--resume", box.run_folder()]
        args += _opt(data.draw, "--batch", _numbers, 8) + _opt(data.draw, "--input-size", _numbers, 8)
        args += _opt(data.draw, "--variant", st.sampled_from(["both", "train", "deploy", "Both", ""]), 5)
        args += _opt(data.draw, "--option", st.sampled_from(["layout=nhwc", "x=1", "latency_ms=1", "=", "k"]), 5)
        return args

    before = len(stand_ins)
    code, _, err = _example(stock, data, argv)
    if code == 2:
        assert len(stand_ins) == before or "model error" in err  # refused before anything was measured


@settings(FUZZ, max_examples=_examples(70))
@given(data=st.data())
def test_fuzz_report_and_resume(stock, stand_ins, data):
    """report DIR and run --resume DIR: folders whose journal and results.json are whole, cut short, mutated,
    FIFOs or folders, and paths of every kind."""

    def argv(box: Sandbox) -> list[str]:
        folder = box.path("folder") if _chance(data.draw, "any path?", 15) else box.run_folder()
        if not _chance(data.draw, "resume?", 40):
            return ["report", folder]
        extra = data.draw(st.sampled_from([[], [], ["--no-wait"], ["--threads", "3"], ["--out", str(box.root)],
                                           ["--model", TINY]]), label="resume extra")
        return ["run", "--resume", folder, *extra]

    _example(stock, data, argv)


@settings(FUZZ, max_examples=_examples(100))
@given(data=st.data())
def test_fuzz_compare_and_claim_paths(stock, stand_ins, data):
    """compare A [B] (--output, --pivot, --baseline) and claim FILES (--out): every path kind and content."""

    def argv(box: Sandbox) -> list[str]:
        if data.draw(st.booleans(), label="compare?"):
            args = ["compare", box.path("result")]
            pivot = data.draw(st.sampled_from([None, None, "variant", "backend", "device"]), label="pivot")
            if pivot is None or _chance(data.draw, "b anyway", 15):
                args.append(box.path("result"))
            if pivot:
                args += ["--pivot", pivot] + _opt(data.draw, "--baseline", _backends, 50)
            if _chance(data.draw, "output?", 40):
                args += ["--output", box.path("out") if _chance(data.draw, "out kind", 50) else
                         str(box.root / box._name(".md"))]
            args += _opt(data.draw, "--fail-above", _numbers, 20) + _opt(data.draw, "--threshold", _numbers, 10)
            return args
        files = [box.path("result") for _ in range(data.draw(st.integers(1, 3), label="claim files"))]
        return ["claim", *files, "--out", box.path("out") if _chance(data.draw, "claim out", 30)
                else str(box.root / "claims")]

    _example(stock, data, argv)


@settings(FUZZ, max_examples=_examples(60))
@given(data=st.data())
def test_fuzz_names(stock, stand_ins, data):
    """Names everywhere a name goes: run/profile --model and --backend, list and cache patterns, doctor, claim
    --model/--backend (which measures the guideline nets first, with the sweep stood in)."""

    def argv(box: Sandbox) -> list[str]:
        which = data.draw(st.sampled_from(["run", "run", "list", "cache", "doctor", "claim"]), label="command")
        if which == "run":
            return ["run", "--model", data.draw(_names, label="model"), "--backend", data.draw(_backends, label="b"),
                    "--roofline", "off", "--variant", "deploy", "--out", str(box.root / "runs")]
        if which == "list":
            return ["list", *data.draw(st.sampled_from([[], ["models"], ["backends"], ["all"], ["Models"]]), label="w"),
                    *([data.draw(_names, label="pattern")] if _chance(data.draw, "pattern?", 60) else [])]
        if which == "cache":
            return ["cache", *data.draw(st.sampled_from([[], ["show"], ["clear"], ["purge"]]), label="action"),
                    *([data.draw(_names, label="pattern")] if _chance(data.draw, "pattern?", 60) else [])]
        if which == "doctor":
            return ["doctor", "--model", data.draw(_names, label="model"), "--backend", data.draw(_backends, label="b"),
                    *_opt(data.draw, "--threads", _numbers, 30), *_opt(data.draw, "--max-time", _numbers, 30)]
        return ["claim", "--out", str(box.root / "claims"), *_opt(data.draw, "--model", _names, 50),
                *_opt(data.draw, "--backend", _backends, 50), *_opt(data.draw, "--threads", _numbers, 20)]

    _example(stock, data, argv)


# --- a sample through real subprocesses: locales and signals ---------------------------------------------

def _started(pid: int, timeout: float = 120) -> bool:
    """True once benchbench's main() has installed its handlers (SIGTERM among the caught signals), False if
    the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        except OSError:
            return False
        caught = [ln for ln in status.splitlines() if ln.startswith("SigCgt:")]
        if caught and int(caught[0].split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            return True
        if "State:\tZ" in status:
            return False
        time.sleep(0.005)
    return False


def _locale_env(name: str, root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k not in ("LANG", "LANGUAGE")}
    return {**env, "LC_ALL": name, "LANG": name, "PYTHONUTF8": "0", "PYTHONIOENCODING": "",
            "PYTHONWARNDEFAULTENCODING": "1", "BENCHBENCH_CACHE": str(root / "cache"),
            "BENCHBENCH_LOCK": str(root / "measure.lock")}


@settings(FUZZ, max_examples=_examples(16))
@given(data=st.data())
def test_fuzz_subprocesses_under_locales_and_signals(stock, data):
    """The real command in a fresh interpreter under C, POSIX or C.UTF-8, some interrupted by SIGINT or SIGTERM
    shortly after main() starts. Besides the rule, no text file is opened without naming its encoding
    (PYTHONWARNDEFAULTENCODING: an EncodingWarning from benchbench's own code fails)."""
    before = _checkout_listing()
    with tempfile.TemporaryDirectory(prefix="bb-fuzz-") as tmp:
        root = Path(tmp).resolve()
        box = Sandbox(root, data.draw, stock)
        which = data.draw(st.sampled_from(["compare", "report", "list", "claim", "run", "help"]), label="command")
        if which == "compare":
            argv = ["compare", box.path("result"), box.path("result"), "--output", str(root / "t.md")]
        elif which == "report":
            argv = ["report", box.run_folder()]
        elif which == "list":
            argv = ["list", "models", data.draw(_names, label="pattern")]
        elif which == "claim":
            argv = ["claim", box.path("result"), "--out", str(root / "claims")]
        elif which == "run":  # the model file and its input data checked, then refused before measuring:
            # --device without --scheduler is found only after the cells are made
            argv = ["run", "--model", box.path("model"), "--backend", "ort", "--input-data", box.path("npz"),
                    "--out", str(root / "runs"), "--device", "x"]
        else:
            argv = [data.draw(st.sampled_from(["run", "compare", "claim", "report"]), label="help of"), "--help"]
        locale = data.draw(st.sampled_from(["C", "POSIX", "C.UTF-8"]), label="locale")
        sig = data.draw(st.sampled_from([None, None, signal.SIGINT, signal.SIGTERM]), label="signal")
        delay = data.draw(st.sampled_from([0.0, 0.05, 0.2, 0.5]), label="delay")
        event(f"subprocess {which} {locale} {sig and signal.Signals(sig).name}")
        proc = subprocess.Popen(module_command("benchbench", *argv), cwd=root / "cwd", env=_locale_env(locale, root),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signals)
        sent = False
        try:
            if sig is not None and _started(proc.pid):
                time.sleep(delay)
                if proc.poll() is None:
                    proc.send_signal(sig)
                    sent = True
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        text = err.decode("utf-8", errors="replace")
        warnings = [ln for ln in text.splitlines() if "EncodingWarning" in ln]
        own = [ln for ln in warnings if any(part in ln for part in ("/benchbench/", "/models/", "/runners/"))]
        assert not own, text[-2000:]
        text = "\n".join(ln for ln in text.splitlines() if ln not in warnings and not ln.startswith("  "))
        if sent and proc.returncode >= 128:
            event(f"exit {proc.returncode} (interrupted)")
            assert proc.returncode == 128 + sig, text[-2000:]
            assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-2000:]
            assert len([ln for ln in text.splitlines() if "interrupted" in ln]) == 1, text[-2000:]
        else:
            _check(proc.returncode, text, frozenset({0, 1, 2, 3}))
        if which == "help":
            assert proc.returncode in (0, 128 + (sig or 0)) and (sent or out.rstrip())
    assert _checkout_listing() == before


# --- a static check beside the fuzz: every text file names its encoding -----------------------------------

def _calls_without_encoding(path: Path) -> list[str]:
    """Text I/O calls that leave the encoding to the locale: builtin open() and os.fdopen()/io.open() not in a
    binary mode, read_text(), write_text(), and subprocess calls with text=True."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or "encoding" in {k.arg for k in node.keywords}:
            continue
        func = node.func
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        where = f"{path.relative_to(ROOT)}:{node.lineno} {name}()"
        if name in ("read_text", "write_text"):
            found.append(where)
        elif (isinstance(func, ast.Name) and name == "open") or (owner in ("os", "io") and name in ("fdopen", "open")
                                                                 and not (owner == "os" and name == "open")):
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"),
                                                               None)
            if not (isinstance(mode, ast.Constant) and isinstance(mode.value, str) and "b" in mode.value):
                found.append(where)
        elif name in ("run", "Popen", "check_output") and {"text", "universal_newlines"} & {k.arg for k in node.keywords}:
            found.append(where + " with text=True")
    return found


def test_every_text_file_names_its_encoding():
    """Under LC_ALL=C Python's default encoding is ASCII: a report with µ or ± written without an encoding
    fails half-way (report.md was left empty). Every text read and write in benchbench, models and runners
    says encoding="utf-8"."""
    missing = []
    for folder in ("benchbench", "models", "runners"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            missing += _calls_without_encoding(path)
    assert not missing, "text I/O without an encoding: " + "; ".join(missing)
