"""The layering holds: metrics/ is pure computation, worker and manager code live apart, no import cycles.

Checked two ways: by importing ``benchbench.metrics`` (and using it) with the harness made unimportable,
and statically, from the import statements of every module in the package (module level and inside
functions alike).
"""

import ast
import subprocess
import sys
from pathlib import Path

import benchbench

PKG = Path(benchbench.__file__).parent


def _imports(path: Path) -> set[str]:
    """benchbench modules imported anywhere in a file, as dotted names (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PKG.parent).with_suffix("")
    package = ".".join(rel.parts[:-1]) if rel.name != "__init__" else ".".join(rel.parts[:-1])
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
    modules = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_metrics_import_nothing_above_them():
    graph = _graph()
    upper = {"benchbench.measure.sweep", "benchbench.measure.calibration", "benchbench.processes.manager", "benchbench.measure.worker",
             "benchbench.build.builds", "benchbench.cli", "benchbench.build.export", "benchbench.measure.profile", "benchbench.measure.doctor",
             "benchbench.runners", "benchbench.results.views", "benchbench.analysis"}
    for name, deps in graph.items():
        if name.startswith("benchbench.metrics"):
            bad = {d for d in deps if any(d == u or d.startswith(u + ".") for u in upper)}
            assert not bad, f"{name} imports {bad}"


def test_formats_read_files_and_import_nothing_of_the_harness():
    """A format loads, checks and counts a file; running it is a runner's, measuring it the harness's."""
    graph = _graph()
    allowed = {"benchbench.formats", "benchbench.metrics"}
    for name, deps in graph.items():
        if name.startswith("benchbench.formats"):
            bad = {d for d in deps if not any(d == a or d.startswith(a + ".") for a in allowed)}
            assert not bad, f"{name} imports {bad}"
    # the artifact sources stay below the process machinery; the parent-side builds hold it
    assert "benchbench.processes.manager" not in graph["benchbench.build.files"]
    assert "benchbench.measure.sweep" not in graph["benchbench.build.file_builds"]


def test_worker_and_profile_and_manager_stay_apart():
    graph = _graph()
    assert "benchbench.measure.profile" not in graph["benchbench.measure.worker"]
    assert "benchbench.measure.worker" not in graph["benchbench.measure.profile"]
    assert "benchbench.measure.worker" not in graph["benchbench.processes.manager"]
    assert "benchbench.processes.manager" not in graph["benchbench.measure.worker"]
    assert not (PKG / "worker.py").exists()


def test_no_import_cycles_in_the_core():
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


def test_metrics_work_with_the_harness_unimportable():
    code = (
        "import sys\n"
        "for name in ('benchbench.measure.sweep', 'benchbench.processes.manager', 'benchbench.measure.calibration', 'benchbench.build.builds'):\n"
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


def test_the_executor_seam_sits_below_the_harness_and_only_cluster_knows_dask():
    graph = _graph()
    # the seam: the harness uses it, it never reaches up to the harness, the cli or the cluster
    assert "benchbench.measure.executor" in graph["benchbench.measure.sweep"]
    assert not {d for d in graph["benchbench.measure.executor"]
                if d.split(".")[1] in ("harness", "cli", "cluster", "builds", "_manager")}
    # the cluster sits above the harness; nothing but the cli (lazily, for --scheduler) imports it
    assert not {name for name, deps in graph.items() if "benchbench.measure.cluster" in deps} - {"benchbench.cli"}
    users = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if _dask_imports(p)}
    assert users == {"measure/cluster.py"}, users
