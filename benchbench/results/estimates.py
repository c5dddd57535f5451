"""Estimates from stored blocks: a cell's latency and a ratio of two cells, each with its 95% interval.

Raw samples are the truth: every figure here is recomputed from a cell's stored blocks (``samples_ns``
sliced by each block's ``n``), when a run is measured and again whenever a file is read, so a better
estimator can re-read old runs (``shared/MEASUREMENT.md``, docs/measurement.md).

* **A ratio** between two arms measured in lockstep is estimated from one log-ratio per round (the two
  arms' block medians of that round): the Hodges-Lehmann estimate of their centre, with its distribution-free
  95% interval (signed-rank), widened for serial correlation and for the difference between worker
  processes. Rounds, not inferences, are the independent units.
* **A cell's latency** is the median of its blocks' medians, with the same kind of interval over blocks.
* **The filter rule**: a *disturbed* block (its threads waited for a CPU more than ``WAIT_SHARE_LIMIT`` of
  their runnable time, or VM steal took that share; ``benchbench.measure.interference`` records both) is
  left out, with every round it belongs to; if that leaves fewer than ``MIN_UNITS`` units, no block is
  left out and the estimate says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchbench.core.stats import (
    hodges_lehmann,
    hodges_lehmann_centre,
    hodges_lehmann_shift,
    serial_median_ci,
    student_t_quantile,
)

__all__ = [
    "MIN_UNITS",
    "PROCESS_SD",
    "SESSION_SPREAD_MIN",
    "WAIT_SHARE_LIMIT",
    "QuietRounds",
    "RatioEstimate",
    "SPEEDUP_PAIRS",
    "block_medians_ms",
    "cell_latency",
    "cell_ratio",
    "cell_stats",
    "disturbed",
    "kept_blocks",
    "opener_signs",
    "position_adjusted",
    "quiet_rounds",
    "ratio",
    "round_log_ratios",
    "session_latencies",
    "session_spread",
]

# (baseline, candidate) variants whose ratio is a speedup: a zoo model's two forms, its int8 form against its float
# deploy form (also a user's file and its --quantize int8 form), a user's --vs pair of files.
SPEEDUP_PAIRS = (("train", "deploy"), ("deploy", "int8"), ("before", "after"))

MIN_UNITS = 6  # the fewest units (rounds or blocks) a 95% distribution-free interval of a median needs

# A block whose threads waited for a CPU more than this share of their runnable time, or lost this
# share of the machine to VM steal, is *disturbed*: left out of ratios and latencies (docs/measurement.md).
WAIT_SHARE_LIMIT = 0.10

# Two worker processes running the *same* artifact differ persistently: in A/A runs here the halves of
# one trial agree with each other (correlation 0.5) but trials disagree, with a between-process sd of
# the log-ratio of about 0.65% (resnet18 on ort, 2 threads; ``benchmarks/aa_check.py`` prints it).
# No number of rounds inside one pair of processes can see it, so every paired interval adds it in
# quadrature (divided by the number of process pairs, i.e. sessions, the rounds came from).
# ``benchbench doctor`` measures this term on the machine at hand and caches it; a run records the term
# it used with every cell (``CellResult.process_sd``). This constant is for cells that carry none (files
# from before, or a machine the doctor has not measured).
PROCESS_SD = 0.0065
_Z95 = 1.959963984540054
# Sessions from which their own spread bounds a ratio's interval (``ratio``): from fewer, the sd of their means is
# too rough, and t (4.3 at two degrees of freedom) would widen a quiet interval on a chance spread.
SESSION_SPREAD_MIN = 4
# Rounds each arm must have opened before the opener's edge is estimated and taken out (``position_adjusted``).
_OPENERS_MIN = 3


def disturbed(block: dict, limit: float = WAIT_SHARE_LIMIT) -> bool:
    """The documented filter rule: a block waited for a CPU, or lost to steal, more than ``limit``."""
    return any((block.get(k) or 0.0) > limit for k in ("wait_share", "steal_share"))


_SHORT_BLOCK = 64  # samples up to which a block's median is taken in Python (block_medians_ms)


def block_medians_ms(blocks: Sequence[dict], samples_ns: Sequence[int] | None = None) -> list[float]:
    """Each block's median latency (ms). Blocks hold their own samples, or ``n`` into ``samples_ns``."""
    out, offset = [], 0
    for b in blocks:
        if "samples_ns" in b:
            values = b["samples_ns"]
        else:
            values = samples_ns[offset: offset + b["n"]]
            offset += b["n"]
        # a block holds a few inferences, and a sweep re-reads every block after each round: a short list's median
        # in Python gives np.median's value without its per-call cost (a ratio over 4000 rounds of 5 inferences
        # read in a third of the time, benchmarks/estimator_speed.py)
        if not len(values):
            out.append(math.nan)
            continue
        median = statistics.median(values) if len(values) <= _SHORT_BLOCK else np.median(values)
        out.append(float(median) / 1e6)
    return out


def _filter(quiet: Sequence[bool], unit: str, waited: str, wait_limit: float) -> tuple[list[bool], int, str]:
    """The filter rule, for blocks or rounds: leave out the disturbed units, unless fewer than MIN_UNITS
    quiet ones would remain. Returns (kept flags, units left out, the rule as applied)."""
    n, q = len(quiet), sum(quiet)
    if q >= MIN_UNITS or q == n:
        return list(quiet), n - q, (f"{n - q} of {n} {unit}s left out ({waited} > {wait_limit:.0%} for a CPU)"
                                    if n - q else f"no {unit} disturbed")
    return [True] * n, 0, (f"filter not applied: only {q} of {n} {unit}s were quiet "
                           f"(waited <= {wait_limit:.0%}); all kept")


def kept_blocks(blocks: Sequence[dict], wait_limit: float = WAIT_SHARE_LIMIT) -> tuple[list[bool], str]:
    """Which blocks the filter keeps, and the rule as applied (a sentence for the report)."""
    keep, _, rule = _filter([not disturbed(b, wait_limit) for b in blocks], "block", "waited", wait_limit)
    return keep, rule


@dataclass(frozen=True)
class RatioEstimate:
    """A centre (a cell's median latency, or a ratio's Hodges-Lehmann estimate) with its 95% interval, from
    ``units`` independent units (blocks or rounds)."""

    value: float
    low: float
    high: float
    units: int
    dropped: int = 0
    rule: str = ""

    @property
    def half_width(self) -> float:
        """Relative half-width of the interval (for a ratio, on the log scale)."""
        if not (self.value > 0 and self.low > 0 and self.high > 0):
            return math.inf
        return (math.log(self.high) - math.log(self.low)) / 2

    def excludes(self, band: float = 0.0) -> int:
        """+1 if the interval lies above 1 + band, -1 if below 1 / (1 + band), 0 otherwise."""
        if self.low > 1 + band:
            return 1
        if self.high < 1 / (1 + band):
            return -1
        return 0

    def inside(self, band: float) -> bool:
        """The whole interval lies within the no-difference band: equivalent."""
        return self.low >= 1 / (1 + band) and self.high <= 1 + band

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "units": self.units,
                "dropped": self.dropped, "rule": self.rule}


def cell_latency(blocks: Sequence[dict], wait_limit: float = WAIT_SHARE_LIMIT,
                 samples_ns: Sequence[int] | None = None) -> RatioEstimate | None:
    """Median of the kept blocks' medians (ms), with a distribution-free 95% interval over blocks."""
    if not blocks:
        return None
    keep, rule = kept_blocks(blocks, wait_limit)
    medians = [m for m, k in zip(block_medians_ms(blocks, samples_ns), keep) if k and m == m]
    if not medians:
        return None
    low, high, _ = serial_median_ci(medians, log_scale=True)  # latencies: an interval of few blocks stays positive
    return RatioEstimate(float(np.median(medians)), low, high, len(medians), len(blocks) - sum(keep), rule)


def session_latencies(blocks: Sequence[dict], samples_ns: Sequence[int] | None = None,
                      wait_limit: float = WAIT_SHARE_LIMIT) -> dict[int, float]:
    """Each session's (``--rounds`` round's) latency in ms, read from its own blocks as the whole cell's is
    (:func:`cell_latency`: the median of the kept blocks' medians). Sessions with no usable block are absent."""
    by: dict[int, list[dict]] = {}
    offset = 0
    for b in blocks:  # each block with its own samples, so a session's blocks stand alone
        if "samples_ns" in b:
            own = b
        else:
            own = {**b, "samples_ns": samples_ns[offset: offset + b["n"]]}
            offset += b["n"]
        by.setdefault(b.get("session", 1), []).append(own)
    return {s: est.value for s, bs in sorted(by.items()) if (est := cell_latency(bs, wait_limit)) is not None}


def _unit(block: dict) -> tuple[int, int]:
    """A block's pairing unit: (session, round). Sessions are ``--rounds``, each in fresh workers."""
    return block.get("session", 1), block["round"]


def round_log_ratios(blocks_b: Sequence[dict], blocks_a: Sequence[dict], wait_limit: float = WAIT_SHARE_LIMIT,
                     samples_b: Sequence[int] | None = None, samples_a: Sequence[int] | None = None
                     ) -> list[tuple[tuple[int, int], float, bool]]:
    """The rounds both arms ran, in time order: (session, round), log(B/A) of their block medians, and
    whether both blocks were quiet (neither disturbed)."""
    med_a = dict(zip(map(_unit, blocks_a), block_medians_ms(blocks_a, samples_a)))
    med_b = dict(zip(map(_unit, blocks_b), block_medians_ms(blocks_b, samples_b)))
    dist_a = {_unit(b): disturbed(b, wait_limit) for b in blocks_a}
    dist_b = {_unit(b): disturbed(b, wait_limit) for b in blocks_b}
    rounds = sorted(r for r in med_b if r in med_a and med_a[r] > 0 and med_b[r] > 0)
    return [(r, math.log(med_b[r] / med_a[r]), not (dist_a[r] or dist_b[r])) for r in rounds]


def opener_signs(blocks_b: Sequence[dict], blocks_a: Sequence[dict], units: Sequence[tuple[int, int]]) -> list[int]:
    """Per round (``units``, (session, round)): +1 where A's block opened it straight after closing the round
    before, -1 where B's did, 0 where neither did (two middle arms of a larger group), in a session's first round
    (its opener follows the warm-up of every worker, not a block of its own) or where a block carries no position
    (files from before lockstep)."""
    pos_a = {_unit(b): b.get("position") for b in blocks_a}
    pos_b = {_unit(b): b.get("position") for b in blocks_b}
    return [0 if u[1] == 0 else int(pos_a.get(u) == 0) - int(pos_b.get(u) == 0) for u in units]


def position_adjusted(logs: Sequence[float], signs: Sequence[int]) -> tuple[list[float], float]:
    """The rounds' log-ratios B/A with the opening block's edge taken out, and that edge (the log-ratio's shift
    per unit of ``opener_signs``; 0.0 when fewer than ``_OPENERS_MIN`` rounds were opened by each arm).

    The worker that closes a round opens the next one (the order alternates, ABBA), straight on, with its caches
    and thread pool still warm; the other block of the round follows another worker. So a round's log-ratio
    carries an offset whose sign alternates with who opened it: on resnet18 on ORT here, B/A read +4.1% in the
    rounds A opened and -4.3% in those B opened (20 A/A trials of 8 sessions), and still about ±2.6% once every
    block led in with an inference timed apart (``measure.worker``). Each arm opens half the rounds, so the
    offset cancels from the centre, but it counts as spread and widens every interval. As a crossover trial's
    period effect, it is estimated (half the Hodges-Lehmann shift between the two kinds of rounds) and
    subtracted; the centre barely moves, the spread is the rounds' own again (docs/measurement.md §2)."""
    plus = [x for x, sg in zip(logs, signs) if sg > 0]
    minus = [x for x, sg in zip(logs, signs) if sg < 0]
    if min(len(plus), len(minus)) < _OPENERS_MIN:
        return list(logs), 0.0
    edge = hodges_lehmann_shift(plus, minus) / 2  # by selection: a sweep reads it after every round
    return [x - sg * edge for x, sg in zip(logs, signs)], edge


@dataclass(frozen=True)
class QuietRounds:
    """The rounds of two lockstep arms in which neither block was disturbed, in time order: their units
    (session, round), their log-ratios B/A as measured (``raw``) and with the opening block's edge taken out
    (``logs``), and that edge."""

    units: list[tuple[int, int]]
    raw: list[float]
    logs: list[float]
    edge: float


def quiet_rounds(blocks_b: Sequence[dict], blocks_a: Sequence[dict], wait_limit: float = WAIT_SHARE_LIMIT,
                 samples_b: Sequence[int] | None = None, samples_a: Sequence[int] | None = None) -> QuietRounds:
    """The quiet rounds' log-ratios B/A, the opening block's edge taken out as ``ratio`` takes it out (but with
    no fallback to disturbed rounds when few are quiet): what the doctor's between-process term and the A/A
    check's breakdown read. Left in, the edge, alternating in sign from round to round, would count as spread
    within sessions and hide part of the spread between them."""
    quiet = [(unit, log) for unit, log, ok in round_log_ratios(blocks_b, blocks_a, wait_limit, samples_b, samples_a)
             if ok]
    units, raw = [u for u, _ in quiet], [log for _, log in quiet]
    logs, edge = position_adjusted(raw, opener_signs(blocks_b, blocks_a, units))
    return QuietRounds(units, raw, logs, edge)


def ratio(blocks_b: Sequence[dict], blocks_a: Sequence[dict], wait_limit: float = WAIT_SHARE_LIMIT,
          samples_b: Sequence[int] | None = None, samples_a: Sequence[int] | None = None,
          process_sd: float | None = None) -> RatioEstimate | None:
    """Latency ratio B / A of two arms measured in lockstep: one log-ratio per round in which both ran,
    a round dropped when either block was disturbed (unless too few would remain).

    The estimate is the Hodges-Lehmann centre of the rounds' log-ratios, with the edge of the block that opens a
    round taken out (``position_adjusted``), and the interval its signed-rank interval, over rounds in time order,
    widened for serial correlation between neighbouring rounds (``stats.hodges_lehmann``), then for the
    difference between worker processes (``process_sd`` in quadrature, shrinking with the number of sessions:
    the term ``benchbench doctor`` measured on the machine, recorded with the cells, or ``PROCESS_SD`` when None).

    With ``SESSION_SPREAD_MIN`` sessions or more, the interval is at least the t interval of the sessions' centres
    (``session_spread``): each session is a fresh pair of processes, so their spread
    holds every source of variation at once, whatever the machine does meanwhile. On a quiet machine it is the
    narrower one; under a load whose phases outlast a session, each session sits in its own phase, and the
    doctor's term, measured quiet, no longer covers that (20 A/A trials of 8 sessions under an on/off load
    here: 15 of 20 intervals held 1.00 without it, 18 of 20 with it)."""
    process_sd = PROCESS_SD if process_sd is None else process_sd
    paired = round_log_ratios(blocks_b, blocks_a, wait_limit, samples_b, samples_a)
    if not paired:
        return None
    keep, dropped, rule = _filter([quiet for _, _, quiet in paired], "round", "a block waited", wait_limit)
    used = [r for (r, _, _), k in zip(paired, keep) if k]
    logs = [log for (_, log, _), k in zip(paired, keep) if k]
    logs, _ = position_adjusted(logs, opener_signs(blocks_b, blocks_a, used))
    # Hodges-Lehmann, not the median: a round's log-ratio spreads symmetrically (the arms take turns), and for
    # such values it needs about two thirds of the median's rounds for the same interval, and wild rounds
    # cannot carry it away while they are under 29% of them (the median's limit: 50%; docs/measurement.md §2).
    # Serial correlation within each session only: an offset between sessions is the between-process term.
    centre, low, high, _ = hodges_lehmann(logs, segments=[r[0] for r in used])
    sessions = len({r[0] for r in used})
    between = (_Z95 * process_sd) ** 2 / sessions
    low = centre - math.sqrt((centre - low) ** 2 + between)
    high = centre + math.sqrt((high - centre) ** 2 + between)
    spread = session_spread([r[0] for r in used], logs)
    if spread is not None:  # the t interval is about the mean of the sessions' centres
        mean, half = spread
        low, high = min(low, mean - half), max(high, mean + half)
    return RatioEstimate(math.exp(centre), math.exp(low), math.exp(high), len(logs), dropped, rule)


def session_spread(sessions: Sequence, logs: Sequence[float]) -> tuple[float, float] | None:
    """(mean, half-width) of the 95% t interval of the mean over sessions of each session's centre: the
    Hodges-Lehmann estimate of its log-ratios (``logs`` tagged by ``sessions``), or None with fewer than
    ``SESSION_SPREAD_MIN`` sessions.

    The centre a session contributes is the ratio's own estimator applied to its rounds, not their mean: a round's
    log-ratio has heavy tails (a neighbour's burst, a block the filter let through), and the means carried them into the
    sessions' spread. Re-read from 40 quiet A/A trials of 8 sessions here, the ratios' intervals read ±1.19% with
    the sessions' HL centres against ±1.50% with their means, 39 of 40 holding 1.00 either way
    (docs/measurement.md §2)."""
    by: dict = {}
    for session, log in zip(sessions, logs):
        by.setdefault(session, []).append(log)
    if len(by) < SESSION_SPREAD_MIN:
        return None
    centres = [hodges_lehmann_centre(v) for v in by.values()]
    half = student_t_quantile(0.975, len(centres) - 1) * float(np.std(centres, ddof=1)) / math.sqrt(len(centres))
    return float(np.mean(centres)), half


def cell_stats(samples_ns: Sequence[int], blocks: Sequence[dict], noisy_ci: float = 0.05,
               wait_limit: float = WAIT_SHARE_LIMIT) -> dict:
    """A blocked cell's statistics. The headline median and its 95% interval are over blocks (the units
    that vary together); mean, spread and percentiles over the kept blocks' samples; the measured
    interference: the share of the cell's window its threads spent waiting for a CPU; and the page faults
    the process took per timed inference (``faults_per_inference``; None where blocks do not count them)."""
    from benchbench.core.stats import summarize

    keep, rule = kept_blocks(blocks, wait_limit)
    kept_samples, offset = [], 0
    for b, k in zip(blocks, keep):
        if k:
            kept_samples += samples_ns[offset: offset + b["n"]]
        offset += b["n"]
    stats = summarize(kept_samples or samples_ns)
    est = cell_latency(blocks, wait_limit, samples_ns)
    if est is None:
        return stats
    run = sum(b.get("run_ns") or 0 for b in blocks)
    wait = sum(b.get("wait_ns") or 0 for b in blocks)
    wall = sum(b.get("wall_ns") or 0 for b in blocks)
    steal = [b["steal_share"] for b in blocks if b.get("steal_share") is not None]
    wait_share = wait / (run + wait) if run + wait > 0 else None
    ci_rel = (est.high - est.low) / 2 / est.value if est.value > 0 else math.inf
    counted = [b for b in blocks if b.get("minor_faults") is not None]
    stats.update(
        count=len(samples_ns),
        median_ms=est.value, ci_low_ms=est.low, ci_high_ms=est.high, ci_rel=ci_rel,
        interval="over blocks",
        blocks=len(blocks), blocks_kept=est.units, blocks_dropped=est.dropped, filter=rule,
        wait_share=wait_share,
        steal_share=float(np.mean(steal)) if steal else None,
        sampled_ms=wall / 1e6,
        # over every block, kept or not: faults are the cell's own cost, not another process's
        faults_per_inference=(sum(b["minor_faults"] for b in counted) / sum(b["n"] for b in counted)
                              if counted else None),
        # noisy is a measured fact: the window lost too much to other processes, or the blocks disagree
        noisy=bool((wait_share or 0) > wait_limit or ci_rel > noisy_ci),
    )
    per_session = session_latencies(blocks, samples_ns, wait_limit)
    if len(per_session) > 1:
        per = [per_session[s] for s in sorted(per_session)]
        stats["round_medians_ms"] = per
        stats["round_spread"] = max(per) / min(per) - 1
    return stats


def _process_sd(a, b) -> float | None:
    """The between-process term two cells of one group were measured with (the larger, should they differ)."""
    terms = [t for t in (getattr(a, "process_sd", None), getattr(b, "process_sd", None)) if t is not None]
    return max(terms) if terms else None


def cell_ratio(b, a, wait_limit: float = WAIT_SHARE_LIMIT, same_run: bool = True) -> RatioEstimate | None:
    """Latency ratio of two measured cells (objects with ``blocks``, ``samples_ns``, ``group``, ``stats``).

    Paired, from the rounds, when both were measured in the same lockstep group of one run (``same_run``:
    cells of two runs share group numbers by chance, never rounds). Otherwise the cells were measured
    apart, and the interval can only be the conservative quotient of the two cells' intervals (``rule``
    says "unpaired"): it holds the ratio whenever both intervals hold their medians, but it cannot see a
    machine that was slower for one cell than for the other.
    """
    if not (a.stats and b.stats and a.stats.get("median_ms") and b.stats.get("median_ms")):
        return None
    if same_run and a.group is not None and a.group == b.group and a.blocks and b.blocks:
        return ratio(b.blocks, a.blocks, wait_limit, b.samples_ns, a.samples_ns, process_sd=_process_sd(a, b))
    sa, sb = a.stats, b.stats
    if min(sa["ci_low_ms"], sb["ci_low_ms"]) <= 0:
        return None
    return RatioEstimate(sb["median_ms"] / sa["median_ms"], sb["ci_low_ms"] / sa["ci_high_ms"],
                         sb["ci_high_ms"] / sa["ci_low_ms"], min(sa.get("blocks") or sa["count"],
                                                                  sb.get("blocks") or sb["count"]),
                         rule="unpaired: the two cells were measured apart")
