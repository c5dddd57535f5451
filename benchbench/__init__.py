"""benchbench: on-device inference benchmarking of train vs deploy forms.

``import benchbench`` is cheap and needs no backend: torch and the runtimes are imported lazily by
the parts that use them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
