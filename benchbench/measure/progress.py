"""What a sweep tells its user while it runs: where it is, and when it will end.

A sweep reports each finished comparison group (``Reporter.group_done``). Two reporters:

* :class:`LineReporter` (any output that is not a terminal: a log, CI, a pipe): one line per cell, with its
  median or why it failed, then one line per group with the sweep's elapsed time and ETA;
* :class:`TerminalReporter` (stderr is a terminal): one status line rewritten in place (groups and cells
  done of their totals, the round, elapsed time, ETA, the last cell), with a permanent line for every cell
  that did not measure, and for every parity failure.

The ETA is the mean wall time of the group-rounds measured so far times the group-rounds left (a group's
first round carries its builds, so early estimates run high and settle as the sweep goes). Text from cells
(model names, reasons) is escaped before it reaches the terminal (``benchbench.core.text``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchbench.core.text import one_line
from benchbench.results.record import CellResult

__all__ = ["Reporter", "LineReporter", "TerminalReporter", "clock_text", "for_stream"]


def clock_text(seconds: float | None) -> str:
    """``1:02:03`` or ``2:03``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _cell_text(cell: CellResult) -> str:
    if cell.ok:
        s = cell.stats
        msg = f"{s['median_ms']:.3f} ms ({s.get('blocks', 0)} blocks, n={s['count']}"
        if s.get("wait_share") is not None:
            msg += f", waited {100 * s['wait_share']:.0f}%"
        msg += ")"
        if cell.outputs_failed:
            msg += " PARITY FAIL"
        return msg
    return f"{cell.status}: {cell.reason}"


class Reporter:
    """Told of every finished group; ``total`` is the sweep's group-rounds and cells to measure."""

    def __init__(self, total_units: int, total_cells: int, rounds: int):
        self.total_units, self.total_cells, self.rounds = total_units, total_cells, rounds
        self.units = self.cells = 0
        self.started = time.monotonic()

    def eta_s(self) -> float | None:
        """Seconds left at the mean pace of the group-rounds so far."""
        if not self.units:
            return None
        return (time.monotonic() - self.started) / self.units * max(self.total_units - self.units, 0)

    def group_done(self, cells: list[CellResult], where: str, took_s: float, round_: int) -> None:
        self.units += 1
        self.cells += len(cells)
        self._show(cells, where, took_s, round_)

    def _show(self, cells, where, took_s, round_) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LineReporter(Reporter):
    """One line per cell and per group (the log form)."""

    def __init__(self, say: Callable[[str], None], total_units: int, total_cells: int, rounds: int):
        super().__init__(total_units, total_cells, rounds)
        self.say = say

    def _show(self, cells, where, took_s, round_) -> None:
        for cell in cells:
            self.say(f"[{where}] {cell.spec.label()}: {_cell_text(cell)}")
        elapsed = time.monotonic() - self.started
        self.say(f"[{where}] group took {took_s:.1f} s; {self.units} of {self.total_units} group-rounds done in "
                 f"{clock_text(elapsed)}, ETA {clock_text(self.eta_s())}")


class TerminalReporter(Reporter):
    """A status line rewritten in place, with permanent lines for cells that failed."""

    def __init__(self, stream, total_units: int, total_cells: int, rounds: int, width: int = 120):
        super().__init__(total_units, total_cells, rounds)
        self.stream, self.width = stream, width
        self._drawn = False

    def _line(self, text: str) -> None:
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._drawn = True

    def _permanent(self, text: str) -> None:
        self.stream.write(("\r\x1b[2K" if self._drawn else "") + text + "\n")
        self._drawn = False

    def _show(self, cells, where, took_s, round_) -> None:
        for cell in cells:
            if not cell.ok or cell.outputs_failed:
                self._permanent(one_line(f"{cell.spec.label()}: {_cell_text(cell)}"))
        last = cells[-1] if cells else None
        status = (f"{self.units}/{self.total_units} groups · {self.cells}/{self.total_cells} cells"
                  + (f" · round {round_}/{self.rounds}" if self.rounds > 1 else "")
                  + f" · {clock_text(time.monotonic() - self.started)} elapsed · ETA {clock_text(self.eta_s())}")
        if last is not None:
            status += one_line(f" · {last.spec.label()}: {_cell_text(last)}")
        self._line(status[: self.width])

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def for_stream(say: Callable[[str], None] | None, total_units: int, total_cells: int, rounds: int) -> Reporter:
    """The reporter for this process: a terminal status line when stderr is a terminal and no other ``say``
    was given, else lines through ``say`` (stderr by default)."""
    if say is None:
        stream = getattr(sys.stderr, "raw", sys.stderr)  # the status line's own escapes are ours, not data
        if getattr(stream, "isatty", lambda: False)():
            return TerminalReporter(stream, total_units, total_cells, rounds)
        say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    return LineReporter(say, total_units, total_cells, rounds)
