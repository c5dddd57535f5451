"""Scale-out on a Dask cluster (``benchbench run --scheduler tcp://HOST:8786``): one comparison group per
Dask task, measured on a worker that declares the resource ``measure=1``.

Why Dask: its workers are one light ``pip install`` on a board, and its resource model says what this
needs: a measuring task asks for ``measure=1``, so a worker (started ``--nthreads 1 --resources
measure=1``) never runs two measurements at once, and ``--device NAME`` adds ``device:NAME=1``, so the
task runs only where that target is. A comparison group is one task: it runs entirely on one host.

Builds (exports, conversions) run once per model, in parallel on the workers that declare ``build``
(e.g. ``--nthreads 4 --resources build=4``), or, when none does, here in this process. A worker may declare
both ``measure`` and ``build`` only with ``--nthreads 1``, so that it never builds while it measures.

Artifacts travel by content: every measuring task carries the build's manifest (sha256 and size of every
file) and the files its cells read. The worker writes them into its own cache, checks every hash on arrival, and keeps
them: a build already there with those hashes is not written again. A worker that lacks a backend records
``unavailable``, as a local run does.

Faults: when a worker dies mid-task the scheduler gives the task to another eligible worker; this module
lowers the scheduler's ``allowed-failures`` to 1, so a group is retried once, then its cells are recorded
``lost`` with the reason. A group whose only eligible workers are gone is ``lost`` after ``stranded_s``.
A scheduler that goes away stops the sweep with ``ExecutorError`` (exit 3); every group handed back
before is in the run's journal, and ``run --resume DIR --scheduler NEW`` measures the rest.

Access: whoever reaches a Dask scheduler can run code on every worker. ``scheduler_address`` checks the
address before any connection: ``tls://`` with the coordinator's certificate (``TLSFiles``: a CA, a
certificate signed by it and its key; Dask's ``Security`` with ``require_encryption``), or plain ``tcp://``
on loopback only, unless ``insecure``. Every step of connecting is bounded by ``timeout_s`` (Dask's own
connect waits for the scheduler's handshake without a limit) and ends at once on Ctrl-C: each blocking Dask
call is made in a helper thread that this one waits for (``_within``).

Dask is imported here only, and this module only by ``run --scheduler``: local runs never load it.
"""

from .access import (
           CONNECT_TIMEOUT_S,
           DEVICE_PREFIX,
           TLSFiles,
           device_resource,
           is_loopback,
           scheduler_address,
           worker_devices,
)
from .doctor import doctor, main
from .executor import DaskExecutor, connect

__all__ = ["CONNECT_TIMEOUT_S", "DEVICE_PREFIX", "DaskExecutor", "TLSFiles", "connect", "device_resource", "doctor",
           "is_loopback", "main", "scheduler_address", "worker_devices"]
