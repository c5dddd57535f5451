"""One real-backend sweep per test session, shared by pytest-xdist workers (the first computes it).

Module fixtures run once per *worker*, and exports and measurements of real backends cost tens of
seconds, so the sweep's run file is written once under the session's shared temp root, behind a file
lock, and every worker loads it (the pattern pytest-xdist documents for session-wide fixtures).
"""

import os

from filelock import FileLock

from benchbench.measure.sweep import run_sweep
from benchbench.results.load import load_run
from benchbench.results.record import RunResult


def shared_sweep(tmp_path_factory, name, cells, config, after=None, **options):
    """The RunResult of ``cells`` (swept with ``options``, then ``after(run)``), computed once per session."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # shared by this session's workers
    path = root / f"{name}.json"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            run = RunResult(meta={"settings": config.__dict__}, path=root / f"{name}.partial.json")
            run_sweep(cells, config, run, progress=lambda msg: None, **options)
            if after:
                after(run)
            run.save(path)  # written last: a failed sweep leaves no file for the other workers to trust
    return load_run(path)
