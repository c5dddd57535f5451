import os

import pytest

# Keep test processes from oversubscribing the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One artifact cache for the whole test session, so each export happens once."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["BENCHBENCH_CACHE"] = str(path)
    return path
