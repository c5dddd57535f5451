import os

import pytest

# Keep test processes from oversubscribing the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _own_measuring_lock(tmp_path_factory):
    """The suite's runs take a measuring lock of their own, not the machine's: a benchbench measuring on this
    machine (another session, a developer's sweep) must not make the suite wait, nor the suite it. One lock
    for the whole test session, shared by the xdist workers (their base folders share a parent), so the
    suite's own runs still measure one at a time. Tests of the lock set BENCHBENCH_LOCK themselves."""
    if "BENCHBENCH_LOCK" not in os.environ:
        base = tmp_path_factory.getbasetemp()
        shared = base.parent if base.name.startswith("popen-gw") else base
        os.environ["BENCHBENCH_LOCK"] = str(shared / "measure.lock")
    yield


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One artifact cache for the whole test session, so each export happens once."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["BENCHBENCH_CACHE"] = str(path)
    return path
