"""The layering holds: each stage imports only what the table below allows, nothing imports in a cycle, the
leaves work with the upper stages made unimportable, and only the cluster module knows Dask.

The imports are read statically, from every import statement of every module (module level and inside
functions alike), over the whole installed package: ``benchbench/`` and the repository's ``models/`` and
``runners/``, which install as ``benchbench.models`` and ``benchbench.runners``. docs/architecture.md
describes the same rules in words.
"""

import ast
import subprocess
import sys
from pathlib import Path

import benchbench.models
import benchbench.runners
import pytest

import benchbench

PKG = Path(benchbench.__file__).parent
# Where each installed sub-package's source lives: models/ and runners/ sit at the repository's top in a
# checkout (an editable install) and inside benchbench/ in an installed wheel, so ask the import system.
ROOTS = {"benchbench": PKG, "benchbench.models": Path(benchbench.models.__file__).parent,
         "benchbench.runners": Path(benchbench.runners.__file__).parent}

# Which layers each layer may import (its own always). A layer is a sub-package of benchbench; the package's
# own __init__ and __main__ are the top. Read down the data flow: registry (models) → build → measure →
# results → analysis; the leaves (core, metrics, formats) serve everyone and import no stage.
ALLOWED = {
    "core": set(),
    "metrics": {"core"},
    "formats": {"core", "metrics"},
    "models": {"core"},
    "runners": {"core", "metrics", "formats", "models"},
    "processes": {"core"},
    "results": {"core"},
    "build": {"core", "metrics", "formats", "models", "runners", "processes"},
    "measure": {"core", "metrics", "formats", "models", "runners", "processes", "build", "results"},
    "analysis": {"core", "metrics", "results"},
    "cli": {"core", "metrics", "formats", "models", "runners", "processes", "build", "measure", "results",
            "analysis", "top"},
    "api": {"core", "results", "measure", "analysis", "build", "models", "runners", "cli"},
    "top": {"core", "cli", "results", "measure", "analysis", "build", "models", "runners", "api"},
}


def _module_name(path: Path, package: str, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _modules() -> dict[str, Path]:
    out = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            if package == "benchbench" and path.relative_to(root).parts[0] in ("models", "runners"):
                continue
            out[_module_name(path, package, root)] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """benchbench modules imported anywhere in a file, as dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("benchbench")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("benchbench"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] not in ("__main__",) else "top"


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that the ALLOWED table forbids, as 'a imports b (layer x may not import layer y)'."""
    bad = []
    for name, deps in sorted(graph.items()):
        mine = layer(name)
        assert mine in ALLOWED, f"{name}: layer '{mine}' is not in the table; add it (and docs/architecture.md)"
        for dep in sorted(deps):
            theirs = layer(dep)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{name} imports {dep} ({mine} may not import {theirs})")
    return bad


def test_every_import_follows_the_table():
    graph = _graph()
    assert {layer(m) for m in graph} >= {"core", "build", "measure", "results", "models", "runners"}
    assert not violations(graph), "\n".join(violations(graph))


@pytest.mark.parametrize("module,planted,what", [
    ("benchbench.models.resnet", "benchbench.measure.sweep", "models may not import measure"),
    ("benchbench.results.views", "benchbench.build.export", "results may not import build"),
    ("benchbench.core.spec", "benchbench.results.record", "core imports nothing"),
    ("benchbench.analysis.claim", "benchbench.measure.group", "analysis may not import measure"),
    ("benchbench.runners.ort", "benchbench.build.cache", "runners may not import build"),
])
def test_a_planted_bad_import_is_caught(module, planted, what):
    """Each rule bites: plant a forbidden import and the check names it."""
    graph = _graph()
    graph[module] = graph[module] | {planted}
    found = violations(graph)
    assert any(f"{module} imports {planted}" in v for v in found), what


def test_no_import_cycles():
    graph = _graph()
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its submodules is not a cycle of concepts
            if not dep.startswith(node + "."):
                visit(dep)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_formats_read_files_and_import_nothing_of_the_harness():
    """A format loads, checks and counts a file; running it is a runner's, measuring it the measure stage's."""
    graph = _graph()
    for name, deps in graph.items():
        if layer(name) == "formats":
            assert {layer(d) for d in deps} <= {"formats", "core", "metrics"}, f"{name} imports {deps}"


def test_the_executor_seam_sits_below_the_sweep_and_only_cluster_knows_dask():
    graph = _graph()
    # one group is measured below both executors; neither reaches back into the sweep
    assert "benchbench.measure.group" in graph["benchbench.measure.executor"]
    assert "benchbench.measure.group" in graph["benchbench.measure.cluster.executor"]
    cluster = [m for m in graph if m.startswith("benchbench.measure.cluster")]
    for name in ("benchbench.measure.group", "benchbench.measure.executor", *cluster):
        assert "benchbench.measure.sweep" not in graph[name], name
    assert "benchbench.measure.executor" in graph["benchbench.measure.sweep"]
    # nothing but the command line (lazily, for --scheduler) imports the cluster
    importers = {name for name, deps in graph.items() if any(d.startswith("benchbench.measure.cluster") for d in deps)}
    assert not importers - {"benchbench.cli.run", *cluster}, importers
    users = {name for name, path in _modules().items() if _dask_imports(path)}
    assert users and all(u.startswith("benchbench.measure.cluster.") for u in users), users


def test_worker_and_manager_stay_apart():
    graph = _graph()
    assert "benchbench.measure.worker" not in graph["benchbench.processes.manager"]
    assert "benchbench.processes.manager" not in graph["benchbench.measure.worker"]
    assert "benchbench.measure.profile" not in graph["benchbench.measure.worker"]


def test_metrics_work_with_the_upper_stages_unimportable():
    code = (
        "import sys\n"
        "for name in ('benchbench.measure', 'benchbench.processes', 'benchbench.build', 'benchbench.results'):\n"
        "    sys.modules[name] = None  # any import of them now raises ImportError\n"
        "import benchbench.metrics as m\n"
        "p = m.roofline_point(2e9, 1e8, 40.0, {'peak_gflops': 100.0, 'bandwidth_gbs': 10.0})\n"
        "assert p['bound'] == 'compute', p\n"
        "print(m.cell_metrics({'flops': 2e9}, {'mac_bytes': 1e8}, {}, {}, 40.0, None)['arithmetic_intensity'])\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "20.0"


def _dask_imports(path: Path) -> set[str]:
    """Top-level packages of Dask imported anywhere in a file."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        out |= {n.split(".")[0] for n in names if n.split(".")[0] in ("dask", "distributed")}
    return out
