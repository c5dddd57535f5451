"""The lockstep scheduler: the cells of a comparison group take turns, block by block.

A shared machine changes speed over seconds to minutes (``shared/MEASUREMENT.md``), so two cells
measured one after the other can differ by the machine's mood alone, while each cell's own CI looks
tight. Here the cells of a *comparison group* (train vs deploy, the rows of a guideline table, one cell
on several backends) are prepared in their own worker processes first, then driven in rounds: each
round runs one short block of inferences on every arm, in an order that alternates direction (A B, B A,
A B, … for two arms: ABBA), so drift slower than a round cancels out of each round's ratio. Sampling
stops once every ratio to the first arm is pinned down (``benchbench.results.estimates``), or the time
is up.

No processes and no clock of its own (both are injected), so the tests drive it with fake workers and a
fake, drifting clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from benchbench.core.spec import MeasureConfig
from benchbench.results.estimates import WAIT_SHARE_LIMIT, cell_latency, ratio

__all__ = ["Arm", "Schedule", "run_lockstep"]


@dataclass
class Arm:
    """One cell in a group: ``run_block(count, settle)`` times ``count`` inferences and returns the block
    record (``samples_ns``, ``interference``, ``idle_cpu_ns``), or None if its worker is lost; ``settle``
    says another arm runs next, so the worker should let its thread pools go quiet first.
    ``estimate_ns`` sizes its blocks."""

    run_block: Callable[[int, bool], dict | None]
    estimate_ns: float
    blocks: list[dict] = field(default_factory=list)
    count: int = 1
    lost: bool = False  # its worker died or hung: it takes no more turns, the others go on


@dataclass
class Schedule:
    """What the scheduler did: rounds run, why it stopped, and the wall time it took."""

    rounds: int
    stop_reason: str  # converged | max_time | max_rounds | lost (every worker died)
    sampling_s: float


def _block_count(estimate_ns: float, block_s: float, max_count: int) -> int:
    return int(min(max_count, max(1, round(block_s * 1e9 / max(estimate_ns, 1.0)))))


def run_lockstep(
    arms: Sequence[Arm],
    config: MeasureConfig,
    *,
    wait_limit: float = WAIT_SHARE_LIMIT,
    clock: Callable[[], int] = time.perf_counter_ns,
    session: int = 1,
    min_total_rounds: int = 0,
) -> Schedule:
    """Drive ``arms`` round by round until every ratio to arm 0 (or, alone, the arm's own median) is
    pinned down to ``config.target_ci`` (relative half-width), or the time is up.

    ``config.min_s``/``max_s`` are per arm: a group of K arms samples for at least K·min_s and at most
    K·max_s, in at least ``min_blocks`` and at most ``max_blocks`` rounds. Each arm's block holds enough
    inferences for about ``block_s`` seconds (at most ``max_count``). Blocks are tagged with ``session``; an
    arm's blocks of earlier sessions (other workers) count towards the interval, whose between-process term
    is ``config.process_sd`` (``benchbench.results.estimates.ratio``). ``min_total_rounds``: the least rounds
    over this session and the earlier ones before the interval may stop it (a session's own ``min_blocks`` is
    its share of the group's): three rounds of one session cannot show the spread between sessions.
    """
    min_blocks, min_s, max_s, target_ci = config.min_blocks, config.min_s, config.max_s, config.target_ci
    max_rounds = config.max_blocks
    for arm in arms:
        arm.count = _block_count(arm.estimate_ns, config.block_s, config.max_count)
    k = len(arms)
    start = clock()
    rounds = 0
    stop = "max_rounds"
    while rounds < max_rounds:
        order = list(range(k)) if rounds % 2 == 0 else list(reversed(range(k)))
        for position, i in enumerate(order):
            if arms[i].lost:
                continue
            # The last live arm of a round opens the next one (the order alternates): only a block that
            # another arm follows needs its worker's thread pools quiet first.
            settle = any(not arms[j].lost for j in order[position + 1:])
            t0 = clock()
            block = arms[i].run_block(arms[i].count, settle)
            if block is None:
                arms[i].lost = True
                continue
            block.update(session=session, round=rounds, position=position, start_ns=t0 - start)
            arms[i].blocks.append(block)
        rounds += 1
        if all(arm.lost for arm in arms):
            stop = "lost"
            break
        elapsed = (clock() - start) / 1e9
        if elapsed >= k * max_s:
            stop = "max_time"
            break
        if (rounds >= min_blocks and elapsed >= k * min_s and max(len(a.blocks) for a in arms) >= min_total_rounds
                and _pinned(arms, target_ci, wait_limit, config.process_sd)):
            stop = "converged"
            break
    return Schedule(rounds, stop, (clock() - start) / 1e9)


def _pinned(arms: Sequence[Arm], target_ci: float, wait_limit: float, process_sd: float | None) -> bool:
    live = [a for a in arms if not a.lost]
    if len(live) == 1:
        est = cell_latency(live[0].blocks, wait_limit)
        return est is not None and est.half_width <= target_ci
    for arm in live[1:]:
        est = ratio(arm.blocks, live[0].blocks, wait_limit, process_sd=process_sd)
        if est is None or est.half_width > target_ci:
            return False
    return True
