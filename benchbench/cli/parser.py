"""The command line's parser: every command and option. The options that set a cell or the sampling policy
are read off the fields of ``CellSpec`` and ``MeasureConfig`` (``benchbench.core.options``), so each one's
flag, default and help are written once, on its field."""

from __future__ import annotations

import argparse

from benchbench import __version__
from benchbench.core.argtypes import bounded_float, bounded_int, name_list, new_folder_base, percent
from benchbench.core.options import Flag, flags_of
from benchbench.core.spec import MAX_THREADS, PROFILES, CellSpec, MeasureConfig

from .errors import UsageError

__all__ = ["DEFAULT_OUT", "build_parser", "sampling_dests", "flag_for_dest"]

DEFAULT_OUT = "reports/runs"
_SECONDS = bounded_float(0)  # finite and above zero


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line like every other mistake, not usage + message."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default. argparse's ArgumentDefaultsHelpFormatter would print
    'None' where the real default is computed (threads, sampling bounds); those helps say it themselves."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or action.default is argparse.SUPPRESS or action.required
                or "(default" in text):
            return text
        default = action.default
        shown = "off" if action.nargs == 0 and not default else ("none" if default in (None, []) else "%(default)s")
        return f"{text} (default: {shown})"


def _add_flag(p: argparse.ArgumentParser, name: str, default, flag: Flag, help_text: str) -> None:
    names = [flag.flag, *([flag.short] if flag.short else [])]
    metavar = flag.metavar or flag.flag.lstrip("-").upper().replace("-", "_")  # --min-time MIN_TIME
    if flag.repeat:
        p.add_argument(*names, dest=name, type=flag.parse, action="append", default=[], metavar=metavar,
                       help=help_text)
    else:
        p.add_argument(*names, dest=name, type=flag.parse, default=default, metavar=metavar, help=help_text)


def add_spec_flags(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """The cell's options (``CellSpec``'s flagged fields, or those named in ``only``)."""
    for f, flag in flags_of(CellSpec):
        if only is not None and f.name not in only:
            continue
        if flag.default_help:
            _add_flag(p, f.name, None, flag, f"{flag.help} (default: {flag.default_help})")
        else:
            _add_flag(p, f.name, f.default, flag, flag.help)


def _sampling_help(name: str, flag: Flag) -> str:
    """A sampling bound's help, with its default in each ``--sampling`` profile (or the one they share)."""
    values = {profile: getattr(config, name) for profile, config in PROFILES.items()}
    if len(set(values.values())) == 1:
        return f"{flag.help} (default: {values['default']:g})"
    rest = ", ".join(f"{p} {v:g}" for p, v in values.items() if p != "default")
    return f"{flag.help} (default: the --sampling profile's: {values['default']:g}, {rest})"


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """``MeasureConfig``'s flagged fields; unset (None) unless given, so the ``--sampling`` profile decides."""
    for f, flag in flags_of(MeasureConfig):
        _add_flag(p, f.name, None, flag, _sampling_help(f.name, flag))


def sampling_dests() -> list[str]:
    """The argparse destinations of the sampling flags: ``MeasureConfig``'s field names."""
    return [f.name for f, _ in flags_of(MeasureConfig)]


def flag_for_dest(dest: str) -> str:
    """The flag a destination was given as (``min_s`` → ``--min-time``), for messages."""
    for cls in (CellSpec, MeasureConfig):
        for f, flag in flags_of(cls):
            if f.name == dest:
                return flag.flag
    return "--" + dest.replace("_", "-")


def add_measure_args(p: argparse.ArgumentParser, resumable: bool = False) -> None:
    p.add_argument("--model", "-m", required=not resumable, type=name_list,
                   help="names, globs ('repvgg_*'), family names, path/to/file.py:factory, or a model file "
                        "(.onnx, .tflite, OpenVINO .xml); comma-separated, any case "
                        + ("(required, unless --resume)" if resumable else "(required)"))
    p.add_argument("--vs", metavar="FILE", default=None,
                   help="with --model FILE: a second file of the same model, measured in lockstep against it (the "
                        "speedup is FILE → this one); inputs must match in names and shapes")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                   help="the shape of a model file's input, e.g. x=1x3x640x640; needed for its dynamic dims "
                        "(repeatable)")
    p.add_argument("--input-data", metavar="NPZ", default=None,
                   help="a model file's inputs, one array per input name (default: seeded random data)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="with --model FILE.onnx: also measure its int8 form, made by each backend's own quantizer "
                        "(ort: QDQ, openvino: NNCF), in lockstep with the float file, fidelity checked")
    p.add_argument("--calibration-data", metavar="NPZ", default=None,
                   help="with --quantize: the calibration samples, an array (N, *input shape) named as the input "
                        "(default: 32 seeded inputs, apart from the benchmark input)")
    p.add_argument("--backend", "-b", default="torch", type=name_list,
                   help="torch, torch-cuda, ort, ort-cuda, openvino (ov), tflite (litert); comma-separated, any case")
    p.add_argument("--variant", choices=["both", "train", "deploy", "int8", "all"], default="both",
                   help="both: train and deploy side by side, with the deploy speedup; int8: the deploy form "
                        "quantized by each runtime's own quantizer (ort: QDQ, openvino: NNCF, tflite: full-integer); "
                        "all: train, deploy and int8 (guideline and lab nets stay float)")
    add_spec_flags(p)
    p.add_argument("--quick", action="store_const", const="quick", dest="sampling",
                   help="short warm-up and sampling, for smoke runs (= --sampling quick)")
    p.add_argument("--sampling", choices=list(PROFILES), default="default",
                   help="sampling profile: default, quick (smoke runs), reference (the reference report's: "
                        "±2%%, 0.6 s cap per cell and round)")
    p.add_argument("--rounds", type=bounded_int(1), default=1,
                   help="measure every comparison group N times, each in fresh workers, in sweeps of alternating "
                        "direction; intervals are built over every round's blocks")
    p.add_argument("--lockstep", choices=["auto", "backend", "off"], default="auto",
                   help="which cells take turns block by block: auto = train/deploy pairs and guideline tables; "
                        "backend = also one model on every backend; off = each cell alone (default: auto)")
    add_sampling_flags(p)
    p.add_argument("--allow-parity-fail", action="store_true",
                   help="exit 0 even if a cell's outputs disagree with PyTorch eager (they are still flagged)")


def add_cluster_flags(p: argparse.ArgumentParser, device_help: str) -> None:
    """``--scheduler``, how this machine reaches it (TLS files, ``--insecure``, ``--connect-timeout``) and
    ``--device`` (whose help, ``device_help``, says what picking devices does for the command)."""
    p.add_argument("--scheduler", metavar="tls://HOST:PORT", default=None,
                   help="measure on the Dask cluster of this scheduler: one group at a time on each worker with "
                        "the resource measure=1 (pip install 'benchbench[cluster]'; see the README's Many machines). "
                        "tls:// needs --tls-ca-file, --tls-cert and --tls-key; plain tcp:// is for loopback only, "
                        "unless --insecure")
    p.add_argument("--tls-ca-file", metavar="FILE", default=None,
                   help="with a tls:// --scheduler: the cluster's CA certificate (PEM), which signed the scheduler's "
                        "and the workers' certificates")
    p.add_argument("--tls-cert", metavar="FILE", default=None,
                   help="with a tls:// --scheduler: this machine's certificate (PEM), signed by that CA")
    p.add_argument("--tls-key", metavar="FILE", default=None,
                   help="with a tls:// --scheduler: this machine's private key (PEM, without a passphrase)")
    p.add_argument("--insecure", action="store_true",
                   help="allow --scheduler tcp:// to a host other than loopback: unencrypted and unauthenticated, so "
                        "whoever can reach the scheduler can run code on every measuring worker")
    p.add_argument("--connect-timeout", type=_SECONDS, default=10.0, metavar="SECONDS",
                   help="with --scheduler: the longest each step of connecting (TCP, TLS, Dask's handshake, the "
                        "client's registration) may take")
    p.add_argument("--device", type=name_list, default=None, metavar="NAME[,NAME]",
                   help=device_help)


def _backend_options_text() -> str:
    """The --option keys each backend takes, from the runner classes (their modules import no runtime)."""
    from benchbench.runners import get_runner, list_runners

    lines, bare = [], []
    for name in list_runners():
        options = get_runner(name).OPTIONS
        if not options:
            bare.append(name)
            continue
        keys = ", ".join(f"{k}={'|'.join(v) if v else 'VALUE'}" for k, v in options.items())
        lines.append(f"  {name:<12}{keys}")
    if bare:
        lines.append(f"  {', '.join(bare)}: no options")
    return "\n".join(lines)


def _measure_epilog(command: str) -> str:
    return (f"backend options (--option KEY=VALUE):\n{_backend_options_text()}\n\n"
            f"example:\n  benchbench {command} --model vanillanet --backend ort --quick\n\n"
            "The models and backends (and which are installed): benchbench list")


OUT_HELP = "folder in which the run's own new folder is created"
WAIT_HELP = ("if another benchbench is measuring on this machine, warn and measure anyway instead of waiting "
             "for it (recorded as concurrent_run in the run's meta)")
PROFILE_RUNS_HELP = "profiled inferences per op (its time is their median)"
HTML_HELP = "also write the HTML view (one self-contained page that opens offline)"


def build_parser() -> argparse.ArgumentParser:
    """Every command's arguments; each command's handler is named by ``command`` (``benchbench.cli.HANDLERS``)."""
    from .reference import REFERENCE_BACKENDS, REFERENCE_DIR

    parser = _Parser(prog="benchbench", description="The ``benchbench`` command line: run, profile, report, list, "
                     "compare, history, claim, lab, doctor, cache.", formatter_class=_HelpFormatter,
                     epilog="Start with: benchbench list; then benchbench run --help")
    parser.add_argument("--version", action="version", version=f"benchbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=_HelpFormatter, **kwargs)

    p = command("run", help="measure models on backends (train and deploy forms)",
                description="Measure models on backends; writes results.json, results.csv and report.md.",
                epilog=_measure_epilog("run"))
    add_measure_args(p, resumable=True)
    p.add_argument("--out", default=DEFAULT_OUT, type=new_folder_base, help=OUT_HELP)
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="finish an interrupted run in its folder DIR: measure only the comparison groups not "
                        "finished there, with the run's own command line (give no other option)")
    p.add_argument("--no-wait", action="store_true", help=WAIT_HELP)
    add_cluster_flags(p, "with --scheduler: measure every cell on the workers with the resource device:NAME=1, "
                         "once per NAME (compare --pivot device compares them)")
    p.add_argument("--roofline", choices=["auto", "cached", "fresh", "off"], default="auto",
                   help="place cells on this machine's roofline (peak GFLOP/s, bandwidth): auto uses a calibration "
                        "under 24 h old if one is cached and never measures one; cached reuses one or calibrates "
                        "(about a minute); fresh always calibrates; off")
    p.add_argument("--profile", action="store_true",
                   help="also profile each ok cell per operator, in its own worker after its timed blocks (profile.md)")
    p.add_argument("--profile-runs", type=bounded_int(1), default=10, help=PROFILE_RUNS_HELP)
    p.add_argument("--html", action="store_true", help=HTML_HELP + ": report.html")
    p.set_defaults(handler="run")

    p = command("profile", help="measure, then print a per-operator profile of each cell",
                description="run, then a per-operator time table for each cell (profiled after its timed blocks).",
                epilog=_measure_epilog("profile"))
    add_measure_args(p)
    p.add_argument("--out", default=DEFAULT_OUT, type=new_folder_base, help=OUT_HELP)
    p.add_argument("--profile-runs", type=bounded_int(1), default=10, help=PROFILE_RUNS_HELP)
    p.add_argument("--top", type=bounded_int(0), default=25, help="show the slowest N ops per cell (0: all)")
    p.add_argument("--no-wait", action="store_true", help=WAIT_HELP)
    p.add_argument("--html", action="store_true", help=HTML_HELP + ": report.html")
    p.set_defaults(handler="run", profile=True, roofline="off")

    p = command("report", help="rebuild a run folder's results.json, results.csv and report.md; print its table",
                description="Re-render a run folder's views from its journal (cells.jsonl), or from its "
                            "results.json when it has no journal.",
                epilog="example:\n  benchbench report reports/runs/20260101-120000_vanillanet_5_ort")
    p.add_argument("folder", help="a run folder (holding cells.jsonl or results.json)")
    p.add_argument("--html", action="store_true", help=HTML_HELP + ": report.html")
    p.set_defaults(handler="report")

    p = command("list", help="list models and backends")
    p.add_argument("what", nargs="?", choices=["models", "backends", "all"], help="what to list (default: all)")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern for models (default: every model)")
    p.set_defaults(handler="list")

    p = command("compare", help="compare two result files: ratios, Mann-Whitney U, geometric mean",
                epilog="example:\n  benchbench compare A/results.json B/results.json --fail-above 5%")
    p.add_argument("a", help="baseline results.json")
    p.add_argument("b", nargs="?", help="candidate results.json (omit with --pivot)")
    p.add_argument("--pivot", choices=["variant", "backend", "device"], help="compare within one file: train vs "
                   "deploy, or each backend (cluster device) against --baseline (default: compare two files)")
    p.add_argument("--baseline", help="with --pivot backend or device: the reference one (default: the file's first)")
    p.add_argument("--fail-above", type=percent, metavar="PCT",
                   help="exit 1 if any cell is significantly slower by more than PCT, above 0, e.g. 5%% "
                        "(default: never)")
    p.add_argument("--threshold", type=bounded_float(0, low_open=False), default=5.0, metavar="PCT",
                   help="percent change, at least 0, within which cells count as the same")
    p.add_argument("--alpha", type=bounded_float(0, 1), default=0.01,
                   help="significance level of the U test, in (0, 1)")
    p.add_argument("--output", help="also write the Markdown table to this file (default: only print it)")
    p.set_defaults(handler="compare")

    p = command("claim", help="FLOPs vs fragmentation: correlations, held-out models, guideline tables",
                epilog="example:\n  benchbench claim reports/runs/*/results.json")
    p.add_argument("results", nargs="*", help="result files to analyze; none: measure the guideline nets now")
    p.add_argument("--model", "-m", default=None, type=name_list,
                   help="zoo models to measure beside the guideline nets (default: none)")
    p.add_argument("--backend", "-b", default=None, type=name_list,
                   help="backends to measure on, comma-separated (default: ort)")
    p.add_argument("--out", default=DEFAULT_OUT, type=new_folder_base, help="folder for the report's folder")
    add_spec_flags(p, only=("threads",))
    p.add_argument("--quick", action="store_const", const="quick", dest="sampling", default="default",
                   help="short warm-up and sampling, for smoke runs (default: off)")
    p.add_argument("--reference", action="store_true",
                   help=f"regenerate the reference report: every model on {REFERENCE_BACKENDS} with the reference "
                        "sampling, then the fragmentation lab on the same backends predicting it, "
                        f"published to reports/{REFERENCE_DIR.name}/ (beside the --out folder)")
    p.add_argument("--rounds", type=bounded_int(1), default=1,
                   help="measure every comparison group N times, each in fresh workers (intervals use every round)")
    p.add_argument("--html", action="store_true", help=HTML_HELP + ": claim.html (and, when it measures, report.html)")
    p.add_argument("--lab", metavar="LAB", action="append", default=None,
                   help="a benchbench lab run's lab.json (or its folder), repeatable (a float lab and an --int8 "
                        "one): the lab's causal effect of executed ops "
                        "beside the zoo's, in claim.md and claim.json")
    p.add_argument("--predictor", metavar="EVAL", default=None,
                   help="a benchbench predict --evaluate run's predictor_eval.json (or its folder): the kernel-level "
                        "predictor's accuracy per backend beside FLOPs only, the lab and the kernel-sum predictor")
    p.set_defaults(handler="claim", variant="both", input_shape=[], input_data=None, vs=None, lockstep="auto",
                   roofline="auto", profile=False, allow_parity_fail=False,
                   **{f.name: ([] if flag.repeat else f.default) for f, flag in flags_of(CellSpec) if f.name != "threads"},
                   **dict.fromkeys(sampling_dests()))

    _add_lab(command("lab", help="the fragmentation lab: designed nets that separate FLOPs, executed ops and traffic",
                     description="Measure the lab's designed nets, in lockstep blocks each bracketed by the fixed "
                                 "anchor net, and fit latency = compute + executed ops x per-op cost + traffic / "
                                 "bandwidth + a fixed cost per backend. Writes a run folder (as run does) plus "
                                 "lab.json and lab.md.",
                     epilog="example:\n  benchbench lab --backend ort --quick"))

    _add_predict(command(
        "predict", help="predict a model's latency from its kernels, without measuring it (--fit: train the predictor)",
        description="Predict a model's latency on a backend as a fixed cost plus the sum of its kernels' latencies, "
                    "each from a regressor fitted on a designed kernel sweep, with the backend's fusion rules found "
                    "by experiment. --fit measures the sweep and stores one predictor per backend in the cache "
                    "(keyed by machine, runtime versions and threads); --evaluate measures models beside the lab's "
                    "anchor and compares them with their predictions.",
        epilog="examples:\n  benchbench predict --fit --backend ort\n  benchbench predict --model resnet18 --backend "
               "ort\n  benchbench predict --evaluate --backend ort"))

    p = command("history", help="the same cells across runs, in time order: medians with intervals, changes flagged",
                description="Line up the cells of several runs by identity, in the order they were measured: each "
                            "cell's median with its 95% interval per run, and a change flagged where consecutive "
                            "runs' ratio interval lies outside the ±threshold band (as compare decides). Writes "
                            "history.md, history.png and history.html into a new folder under --out.",
                epilog="example:\n  benchbench history reports/runs/*/results.json")
    p.add_argument("results", nargs="+", help="result files (results.json or cells.jsonl) or run folders")
    p.add_argument("--threshold", type=bounded_float(0, low_open=False), default=5.0, metavar="PCT",
                   help="percent change, at least 0, within which a cell counts as unchanged")
    p.add_argument("--alpha", type=bounded_float(0, 1), default=0.01,
                   help="significance level of the U test between runs, in (0, 1)")
    p.add_argument("--changed", action="store_true", help="print only the cells with a flagged change")
    p.add_argument("--fail-on-change", action="store_true", help="exit 1 when any cell changed (a CI gate)")
    p.add_argument("--out", default=DEFAULT_OUT, type=new_folder_base, help="folder for the history's folder")
    p.set_defaults(handler="history")

    p = command("cache", help="show the artifact cache (where, size, entries) or clear it",
                description="Show the build cache ($BENCHBENCH_CACHE, else ~/.cache/benchbench): where it is, its "
                            "size and one line per entry; or clear all of it, or the entries matching a glob.",
                epilog="examples:\n  benchbench cache\n  benchbench cache clear 'vanillanet_*'\n  benchbench cache clear")
    p.add_argument("action", nargs="?", choices=["show", "clear"], default="show", help="what to do")
    p.add_argument("pattern", nargs="?", help="glob over entry or model names, e.g. 'repvgg_*' (default: every entry)")
    p.set_defaults(handler="cache")

    p = sub.add_parser("doctor", help="machine check: load, steal, busy processes, and an A/A comparison")
    p.add_argument("--model", "-m", default="resnet18", type=name_list,
                   help="model of the A/A comparison (default: resnet18)")
    p.add_argument("--backend", "-b", default="ort", type=name_list, help="backend of the A/A comparison (default: ort)")
    p.add_argument("--variant", choices=["train", "deploy"], default="deploy")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=None,
                   help="intra-op threads (default: physical cores)")
    # 16 sessions of 4 s: the term's 80% bound is set by how precisely each session's mean is known (12 of
    # 1 s bounded it at 1.37% where the point estimate was 0; 16 of 4 s at 0.80%, in 2.5 minutes)
    p.add_argument("--max-time", type=_SECONDS, default=64.0,
                   help="A/A sampling time per worker over all sessions, seconds (default: 64)")
    p.add_argument("--sessions", type=bounded_int(2, 64), default=16,
                   help="A/A sessions, each in fresh workers: their spread is the between-process term, cached for "
                        "later runs (default: 16)")
    p.add_argument("--no-aa", action="store_true", help="machine state only, no A/A comparison")
    p.set_defaults(handler="doctor")
    return parser


def _add_lab(p: argparse.ArgumentParser) -> None:
    """``benchbench lab``'s arguments: the run's own measuring options, but cells from the lab's design."""
    p.add_argument("--backend", "-b", default="ort", type=name_list,
                   help="backends to measure on, comma-separated (default: ort)")
    p.add_argument("--quick", action="store_true",
                   help="the 16-point quick design instead of the 32-point one (same bound on correlations)")
    p.add_argument("--int8", action="store_true",
                   help="measure each net's int8 form (ort: QDQ, openvino: NNCF, tflite: full-integer) instead of "
                        "its float one; the fit is named '<backend> int8', as the claim names int8 cells")
    p.add_argument("--points", type=bounded_int(1), default=None, help=argparse.SUPPRESS)  # tests: the first N
    p.add_argument("--zoo", metavar="RESULTS", default=None,
                   help="a zoo run's results.json to predict from the lab fit alone (default: "
                        "reports/reference/results.json when it exists here)")
    add_spec_flags(p, only=("threads", "seed"))
    # The lab's defaults: short rounds (the reference sampling, ±2% or 0.6 s per cell) repeated in fresh workers
    # minutes apart, since its bootstrap resamples rounds and the anchor absorbs drift between them; a long
    # single round would buy precision the fit cannot use.
    _add_block_sampling(p, rounds=3)
    p.add_argument("--profile-runs", type=bounded_int(1), default=5, help=PROFILE_RUNS_HELP)
    p.add_argument("--out", default=DEFAULT_OUT, type=new_folder_base, help=OUT_HELP)
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="finish an interrupted lab run in its folder DIR (give no other option)")
    p.add_argument("--no-wait", action="store_true", help=WAIT_HELP)
    p.add_argument("--html", action="store_true", help=HTML_HELP + ": report.html")
    # What run's other options would say: every design point at its own input, one form, the executed graph's
    # traffic from a profile of each cell (taken by its worker after the block's timed rounds).
    p.set_defaults(handler="lab", model="lab", variant="deploy", vs=None, input_shape=[], input_data=None,
                   batch=1, input_size=None, options=[], lockstep="auto", roofline="off", profile=True,
                   profile_select=_lab_profiled, allow_parity_fail=False)


def _add_block_sampling(p: argparse.ArgumentParser, rounds: int) -> None:
    """The sampling of commands that measure designed nets in anchored blocks (lab, predict): the reference
    profile by default, any sampling flag on top, and ``rounds`` rounds."""
    p.add_argument("--sampling", choices=list(PROFILES), default="reference",
                   help="sampling profile: reference (±2%%, 0.6 s cap per cell and round), default, quick")
    add_sampling_flags(p)
    p.add_argument("--rounds", type=bounded_int(1), default=rounds,
                   help="measure every block N times, each in fresh workers (intervals use every round)")


def _add_predict(p: argparse.ArgumentParser) -> None:
    """``benchbench predict``'s arguments: what to predict, or the sweep's measuring options."""
    p.add_argument("--model", "-m", default=None, type=name_list,
                   help="zoo names, globs, file.py:factory or file.onnx, comma-separated (with --evaluate: the "
                        "models to check; default: the whole zoo)")
    p.add_argument("--backend", "-b", default="ort", type=name_list,
                   help="backends, comma-separated (default: ort)")
    p.add_argument("--variant", choices=["train", "deploy", "both"], default="deploy",
                   help="the form to predict or check (both: train and deploy)")
    p.add_argument("--fit", action="store_true", help="measure the kernel sweep and store one predictor per backend")
    p.add_argument("--evaluate", action="store_true",
                   help="measure the models beside the anchor (or read --results) and compare with their predictions")
    p.add_argument("--results", nargs="+", metavar="RESULTS", default=None,
                   help="results.json of earlier sweeps instead of measuring again: with --fit, kernel sweeps to "
                        "refit from; with --evaluate, a run of the models to check")
    p.add_argument("--predictor", metavar="FILE", default=None,
                   help="a predictor file (or a --fit folder) instead of this machine's cached one")
    p.add_argument("--quick", action="store_true", help="a small sweep (17 kernel nets and the experiments): smoke runs")
    p.add_argument("--no-adapt", action="store_true", help="no adaptive round after the first sweep")
    p.add_argument("--top", type=bounded_int(1), default=8, help="kernels listed per prediction (default: 8)")
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    add_spec_flags(p, only=("threads", "seed"))
    _add_block_sampling(p, rounds=1)
    p.add_argument("--out", default=DEFAULT_OUT, type=new_folder_base, help=OUT_HELP)
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="finish an interrupted predict --fit or --evaluate in its folder DIR: its sweeps measure "
                        "only the groups not finished there, then it fits or checks (give no other option)")
    p.add_argument("--no-wait", action="store_true", help=WAIT_HELP)
    p.add_argument("--html", action="store_true", help=HTML_HELP + ": each sweep's report.html")
    add_cluster_flags(p, "with --fit or --evaluate and --scheduler: measure on the workers with the resource "
                         "device:NAME=1, one predictor per NAME; without them: predict with each NAME's stored "
                         "predictor")
    p.set_defaults(handler="predict", vs=None, input_shape=[], input_data=None, batch=1, input_size=None,
                   options=[], lockstep="auto", roofline="off", profile=False, allow_parity_fail=True,
                   sweep_names=())


def _lab_profiled(spec) -> bool:
    """The lab reads executed-graph traffic from ORT's and OpenVINO's profiles only (TFLite's times no op and
    its traffic is the analytic count; torch does not fuse): profiling the others would cost time for nothing."""
    return spec.backend in ("ort", "openvino")
