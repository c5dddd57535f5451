"""A backend that runs nothing: it tests the harness without a runtime (tinygrad's NULL device).

Options make it misbehave on purpose, so tests can prove a sweep survives: ``latency_ms`` (sleep per
inference; the environment's ``BENCHBENCH_NULL_SLOWDOWN`` multiplies it, so that two loopback cluster
workers can play machines of different speeds), ``fail`` = ``crash`` (hard exit in prepare), ``hang``
(sleep forever), ``raise`` (an ordinary exception), ``unsupported`` (reject the model), ``crash_later``
(hard exit at the 40th inference: in the middle of the timed blocks, after warm-up); ``cold_ms`` (an inference
that starts more than 5 ms after the previous one ended sleeps that much longer: the cold first inference of a
lockstep block, whose worker sat idle while another one ran).
"""

from __future__ import annotations

import os
import time

from benchbench.runners.base import Runner, UnsupportedModel


class NullRunner(Runner):
    name = "null"
    hidden = True  # for the harness tests: no backend, fake latencies
    artifact = "none"
    description = "does nothing; for harness tests"
    OPTIONS = {"fail": ("crash", "hang", "raise", "unsupported", "crash_later"), "latency_ms": (), "cold_ms": ()}

    def prepare(self, artifact, inputs):
        self.inputs = inputs
        fail = self.options.get("fail")
        if fail == "crash":
            os._exit(3)  # no cleanup, no result file: what a segfault looks like to the harness
        if fail == "hang":
            time.sleep(10**6)
        if fail == "raise":
            raise RuntimeError("null runner asked to fail")
        if fail == "unsupported":
            raise UnsupportedModel("null runner rejects every model when asked to")
        slowdown = float(os.environ.get("BENCHBENCH_NULL_SLOWDOWN", "1"))
        self.latency_s = float(self.options.get("latency_ms", 0.2)) / 1e3 * slowdown
        self.cold_s = float(self.options.get("cold_ms", 0)) / 1e3
        self.runs, self.ended = 0, None

    def run(self):
        self.runs += 1
        if self.options.get("fail") == "crash_later" and self.runs >= 40:
            os._exit(3)
        if self.cold_s and self.ended is not None and time.perf_counter() - self.ended > 0.005:
            time.sleep(self.cold_s)
        time.sleep(self.latency_s)
        self.ended = time.perf_counter()
