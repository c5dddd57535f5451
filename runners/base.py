"""The runner protocol: what every backend implements.

Lifecycle inside a worker process: ``load_runtime()`` → ``prepare()`` → ``run()``/``time_once()``
many times → ``outputs()`` → ``teardown()`` (always, in ``finally``). ``metadata()`` and
``executed_ops()`` may be called after ``prepare``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = ["Runner", "UnsupportedModel", "BackendUnavailable"]


class UnsupportedModel(Exception):
    """The backend cannot load or run this model (recorded as status ``unsupported``)."""


class BackendUnavailable(Exception):
    """The backend's package or device is absent here (recorded as status ``unavailable``)."""


class Runner:
    """Base class. Subclasses set the class attributes and implement ``prepare`` and ``run``."""

    name: ClassVar[str]  # the backend's name (--backend NAME); a class without its own is not a backend
    aliases: ClassVar[tuple[str, ...]] = ()  # other names --backend accepts, in any case (not inherited)
    hidden: ClassVar[bool] = False  # test-only runners are left out of `benchbench list`
    op_timer: ClassVar[bool] = True  # profile_ops() times each op (False: it lists them untimed)
    artifact: ClassVar[str]  # what prepare() takes: "torch" (a model spec), "onnx", "tflite" or "none"
    # Formats of a user's own model file (``--model model.onnx``) this backend runs, as named in
    # ``benchbench.formats``; a file of another format gets an ``unsupported`` cell.
    formats: ClassVar[tuple[str, ...]] = ()
    packages: ClassVar[tuple[str, ...]] = ()  # import names that must be present
    # Distributions whose versions every run records (``benchbench.core.env``), besides the core's.
    versions: ClassVar[tuple[str, ...]] = ()
    # What a fork server imports before forking this backend's workers (default: ``packages``). Only
    # imports: nothing that starts threads or a device, which a fork would not carry over.
    preload: ClassVar[tuple[str, ...] | None] = None
    extra: ClassVar[str] = ""  # pip extra providing them: pip install 'benchbench[extra]'
    # Whether two of its workers may load and warm up at the same time (a group's later sessions, a sweep's
    # later rounds: ``benchbench.measure.group``), or must take turns because their thread pools slow each
    # other down far beyond sharing the CPUs.
    starts_side_by_side: ClassVar[bool] = True
    description: ClassVar[str] = ""
    # Options a user may pass with --option KEY=VALUE: key → allowed values (empty: any value).
    OPTIONS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, threads: int, options: dict[str, Any] | None = None):
        self.threads = threads
        self.options = dict(options or {})
        self.inputs: np.ndarray | None = None

    @classmethod
    def artifact_for(cls, options: dict[str, str]) -> str:
        """The artifact format a cell with these options needs (the class default unless an option changes it)."""
        return cls.artifact

    @classmethod
    def preload_modules(cls) -> tuple[str, ...]:
        return cls.packages if cls.preload is None else cls.preload

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(available, reason). Cheap: finds packages without importing them."""
        missing = [p for p in cls.packages if importlib.util.find_spec(p) is None]
        if missing:
            hint = f"; install with: pip install 'benchbench[{cls.extra}]'" if cls.extra else ""
            return False, f"{cls.name} needs {', '.join(missing)}{hint}"
        return True, ""

    def load_runtime(self) -> None:
        """Import the runtime (before the memory baseline is taken)."""

    def prepare(self, artifact: Path | dict, inputs: np.ndarray | dict[str, np.ndarray]) -> None:
        """Load the artifact and bind the inputs: one array (a zoo model's), or name → array (a user's
        file, every declared input, at the shapes given; dynamic dims take them)."""
        raise NotImplementedError

    def run(self) -> None:
        """One inference on the prepared inputs."""
        raise NotImplementedError

    def time_once(self) -> int:
        """Wall time of one inference in ns. Device backends override this to synchronize."""
        t0 = time.perf_counter_ns()
        self.run()
        return time.perf_counter_ns() - t0

    def outputs(self) -> list[np.ndarray] | None:
        """Outputs for the prepared inputs, for parity checks; None if the backend computes nothing."""
        return None

    def executed_ops(self) -> dict | None:
        """Operators the backend really executes after its own fusions: {"count": n, "by_type": {...}}."""
        return None

    def layout_reorders(self) -> list[int] | None:
        """The elements each layout reorder moves that the backend inserts into the prepared model: kernels it runs
        that the model's ONNX graph does not hold (ONNX Runtime's NCHWc reorders around the operators its blocked
        layout does not cover). None where the backend inserts none, or they cannot be read."""
        return None

    def metadata(self) -> dict:
        return {"threads": self.threads, **({"options": self.options} if self.options else {})}

    def teardown(self) -> None:
        pass
