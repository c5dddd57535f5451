"""The memory bandwidth, for the roofline: a ``BandwidthJob`` of a worker process (``benchbench.measure.worker``).

Times a large copy (``dst.copy_(src)``, 256 MiB each) and writes the best rate to RESULT.json. A copy
moves 2 bytes per byte copied (one read, one write), the STREAM "Copy" convention; write-allocate
traffic is not counted, so this is a floor of what the memory system moves.
"""

import time

SIZE_BYTES = 256 * 2**20
REPEATS = 10


def measure(device: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    n = SIZE_BYTES // 4
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    dst.copy_(src)  # first touch: page faults and allocation, not bandwidth
    sync()
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - t0)
    return {
        "bandwidth_gbs": 2 * SIZE_BYTES / best / 1e9,
        "method": f"torch copy_ of {SIZE_BYTES // 2**20} MiB on {device}, {threads} threads, best of {REPEATS}; "
                  "bytes = read + write",
    }
