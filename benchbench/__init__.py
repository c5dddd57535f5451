"""benchbench: on-device inference benchmarking of train vs deploy forms.

``import benchbench`` is cheap and needs no backend: torch and the runtimes are imported lazily by
the parts that use them.
"""

__version__ = "0.1.0"
# The Python API (benchbench.api) is imported on first use of its names, so that `import benchbench` stays light.
_API = ("run", "load", "compare", "history", "Results")
__all__ = ["__version__", "run", "load", "compare", "history", "Results"]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'benchbench' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_API})
