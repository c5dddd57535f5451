"""The run's journal: ``cells.jsonl``, an append-only JSON Lines file, durable per comparison group.

``results.json``, ``results.csv`` and ``report.md`` are views rebuilt from it. Rewriting a growing
results.json after every group costs time quadratic in the sweep (about 85 s over the 256 groups of the
reference sweep) and can tear on a full disk; an append of one group's lines, with one ``write`` and one
``fsync``, costs the size of that group and leaves the earlier groups untouched whatever happens.

Lines (format in docs/results.md): a ``header`` with the run's meta, ``meta`` when the meta changed (the
roofline calibration, a resume), and per measured group its ``cell`` lines followed by its ``group`` line,
which commits them (it says how many cell lines it commits). A later record of the same group (another
``--rounds`` session, or a group measured again by ``--resume``) replaces the earlier one.

Damage loses only what it touches. A last line cut short by a crash is ignored. A line that is not a whole
record (a bad byte, a blank line, a cell that fails the schema) is skipped with a notice, and the group it
belongs to is not kept, so ``--resume`` measures it again; every intact group is read. Only a header that
cannot be read makes the whole journal unreadable.

Exactly once: the run writing a journal holds an exclusive ``flock`` on it for as long as it runs; a
``--resume`` of a folder whose run is still alive is refused (``JournalBusy``) instead of measuring its
groups a second time.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable
from pathlib import Path

from benchbench.core import strictjson
from benchbench.core.files import PathError, check_folder, exists
from benchbench.core.text import one_line

from .load import SchemaError, load_run, parse_json, read_result_bytes, run_from_document
from .record import SCHEMA, SCHEMA_VERSION, CellResult, RunResult
from .schema import validate_document

__all__ = ["JOURNAL", "RESULTS", "Journal", "JournalBusy", "WriteError", "read_journal", "load_results",
           "keep_later_records", "record_meta"]

JOURNAL = "cells.jsonl"
RESULTS = "results.json"
_SCHEMA = "benchbench/journal"
_VERSION = 1
_write = os.write  # the journal's one write call; tests replace it to inject a full disk


class WriteError(Exception):
    """A file of the run could not be written (read-only folder, full disk); ``str()`` is one line.
    An environment error: the command line exits 3."""


class JournalBusy(Exception):
    """The journal's run is still alive (another process holds its lock); ``str()`` is one line."""


def _write_error(path: Path, exc: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {exc.strerror or exc}")


def _take(fd: int, path: Path) -> None:
    """The run's own lock on its journal, held until the journal is closed (the process ends)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalBusy(f"the run in {path.parent} is still measuring (another benchbench holds its journal); "
                          "resume it once that run has ended") from None


class Journal:
    """Appends one comparison group at a time to ``cells.jsonl``, each append made durable before it returns."""

    def __init__(self, path: Path, fd: int, groups: dict[int, int], meta_text: str | None):
        self.path, self._fd = path, fd
        self._groups = groups  # group index -> cells recorded for it (the last record counts)
        self._meta_text = meta_text

    @property
    def cells(self) -> int:
        """Finished cells the journal holds durably."""
        return sum(self._groups.values())

    @classmethod
    def create(cls, path: str | Path, meta: dict) -> Journal:
        """A new journal holding the header line; refuses to overwrite one."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise _write_error(path, exc) from None
        _take(fd, path)
        journal = cls(path, fd, {}, _meta_key(meta))
        journal._append([{"kind": "header", "schema": _SCHEMA, "version": _VERSION, "meta": meta}])
        return journal

    @classmethod
    def reopen(cls, path: str | Path, notice: Callable[[str], None] | None = None) -> Journal:
        """An existing journal, to append to (``--resume``), once its run's lock is free (``JournalBusy`` while
        that run is alive). A torn last line is cut off first, so the next append starts on a line of its own."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        except OSError as exc:
            raise _write_error(path, exc) from None
        _take(fd, path)
        try:
            run, size, counts = _replay(path, notice)
            if size is not None:
                os.ftruncate(fd, size)
        except OSError as exc:
            os.close(fd)
            raise _write_error(path, exc) from None
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, counts, _meta_key(run.meta))

    def append_group(self, meta: dict, index: int, rounds: list[dict], cells: list[CellResult]) -> None:
        """Record group ``index`` of the sweep (its scheduler records so far and its cells) durably; with a
        ``meta`` line first when the meta changed since the last one written."""
        lines = []
        if (key := _meta_key(meta)) != self._meta_text:
            lines.append({"kind": "meta", "meta": {k: v for k, v in meta.items() if k != "sweep"}})
            self._meta_text = key
        lines += [{"kind": "cell", "index": index, "cell": c.to_dict()} for c in cells]
        lines.append({"kind": "group", "index": index, "cells": len(cells), "rounds": rounds,
                      "sweep": meta.get("sweep", {})})
        self._append(lines)
        self._groups[index] = len(cells)

    def append_meta(self, meta: dict) -> None:
        """Record the run's meta durably where it changed since the last line written: meta set after the sweep
        (the profiling's and the claim's times) that results.json holds, so that a reader of the journal
        (``benchbench.load`` of the folder, the published folder's index page) holds it too."""
        if (key := _meta_key(meta)) != self._meta_text:
            self._append([{"kind": "meta", "meta": {k: v for k, v in meta.items() if k != "sweep"}}])
            self._meta_text = key

    def _append(self, records: list[dict]) -> None:
        data = "".join(strictjson.dumps(r, separators=(",", ":")) + "\n" for r in records).encode()
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:  # one write in practice; a short write (a signal, a nearly full disk) continues
                view = view[_write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as exc:
            try:  # take back a partial append, so that the journal ends on a whole group
                os.ftruncate(self._fd, start)
            except OSError:
                pass  # a read-only file system: nothing was written either
            raise _write_error(self.path, exc) from None

    def close(self) -> None:
        """Close the file (every append is already on disk)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def record_meta(path: str | Path, meta: dict, notice: Callable[[str], None] | None = None) -> None:
    """The run's meta as the last ``meta`` line of the journal at ``path`` (where it differs from the journal's),
    after its sweep has ended: a command that writes the run's meta after measuring (``claim``'s times) records
    it where the journal's readers look. Reopened as ``--resume`` reopens it (a torn last line cut off first, so
    the line never glues onto it; a few seconds for the reference's journal). ``JournalBusy`` while another
    process measures into it; ``WriteError`` when it cannot be written."""
    journal = Journal.reopen(path, notice)
    try:
        journal.append_meta(meta)
    finally:
        journal.close()


def _meta_key(meta: dict) -> str:
    return strictjson.dumps({k: v for k, v in meta.items() if k != "sweep"}, sort_keys=True, default=str)


def _default_notice(msg: str) -> None:
    print(f"benchbench: {one_line(msg)}", file=sys.stderr)


def _record(raw: bytes) -> dict | None:
    """One journal line as a record, or None for a line that is not one (a bad byte, a blank line, not JSON,
    no kind, a cell or group line without an integer group index)."""
    try:
        record = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("kind") not in ("header", "meta", "cell", "group"):
        return None
    index = record.get("index")
    if record["kind"] in ("cell", "group") and not (isinstance(index, int) and not isinstance(index, bool)):
        return None
    return record


def _valid(cells: list) -> bool:
    """Whether a group's cell records pass the result schema on their own."""
    try:  # without their group numbers: the document's groups are assembled after the replay
        validate_document({"meta": {}, "cells": [{k: v for k, v in c.items() if k != "group"} if isinstance(c, dict)
                                                 else c for c in cells]})
    except (ValueError, TypeError):
        return False
    return True


def _replay(path: Path, notice: Callable[[str], None] | None) -> tuple[RunResult, int | None, dict[int, int]]:
    """The run a journal holds (every intact group), the size to cut it to when its last line is torn (else
    None), and the cells recorded per group index. Damaged lines are skipped with one notice."""
    notice = notice or _default_notice
    data = read_result_bytes(path, "journal")
    cut = None
    if data and not data.endswith(b"\n"):  # a crash mid-append: the last line is incomplete
        cut = data.rfind(b"\n") + 1
        notice(f"{path}: ignored its last line, cut short ({len(data) - cut} bytes; a write did not finish)")
        data = data[:cut]
    lines = data.split(b"\n")[:-1] if data else []
    header = _record(lines[0]) if lines else None
    if header is None or header["kind"] != "header" or header.get("schema") != _SCHEMA:
        raise SchemaError(f"{path} is not a benchbench journal (no header line)")
    if header.get("version") != _VERSION:
        raise SchemaError(f"{path}: unsupported journal version {header.get('version')!r:.20}")
    meta, sweep, pending, groups, damaged, dropped = header.get("meta"), {}, {}, {}, [], 0
    for n, raw in enumerate(lines[1:], 2):
        record = _record(raw)
        kind = record["kind"] if record else None
        if kind in ("meta", "header"):
            meta = record.get("meta")
        elif kind == "cell":
            pending.setdefault(record["index"], []).append(record.get("cell"))
        elif kind == "group":  # commits the cell lines before it, if they are all there and whole
            cells = pending.pop(record["index"], [])
            expected = record.get("cells", len(cells))  # journals before the count committed what was there
            if expected == len(cells) and _valid(cells):
                groups[record["index"]] = (record.get("rounds"), cells)
                sweep = record.get("sweep") or sweep
            else:
                dropped += 1
        else:
            damaged.append(n)
    if not isinstance(meta, dict):
        raise SchemaError(f"{path}: the header holds no meta")
    if damaged or dropped:
        where = ", ".join(map(str, damaged[:5])) + (", ..." if len(damaged) > 5 else "")
        notice(f"{path}: {len(damaged)} damaged line(s) skipped" + (f" (line {where})" if damaged else "")
               + f"; {dropped} group record(s) not read, their cells being damaged; run --resume measures them "
               "again")
    doc_groups, doc_cells = [], []
    for index in sorted(groups):
        rounds, cells = groups[index]
        gid, slots = len(doc_groups), list(range(len(doc_cells), len(doc_cells) + len(cells)))
        for cell in cells:
            if isinstance(cell, dict):
                cell["group"] = gid if len(cells) > 1 else None
        doc_groups.append({"id": gid, "cells": slots, "rounds": rounds})
        doc_cells += cells
    doc = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "meta": {**meta, "sweep": sweep} if sweep else meta,
           "groups": doc_groups, "cells": doc_cells}
    return run_from_document(doc, path), cut, {i: len(cells) for i, (_, cells) in groups.items()}


def read_journal(path: str | Path, notice: Callable[[str], None] | None = None) -> RunResult:
    """The run a journal holds, with every committed group in sweep order; its ``path`` is the results.json
    beside it. A torn last line is ignored with a one-line ``notice``; anything else malformed raises
    ``SchemaError``."""
    run, _, _ = _replay(Path(path), notice)
    run.path = Path(path).with_name(RESULTS)
    return run


def load_results(folder: str | Path, notice: Callable[[str], None] | None = None) -> tuple[RunResult, str]:
    """A run folder's results, from its journal, else from its results.json; and which file it was read
    from. ``SchemaError`` for a folder with neither."""
    folder = Path(folder)
    try:
        check_folder(folder, "folder")
        # a journal or results.json that is a FIFO, a folder or a dangling link is there, and refused when read
        journal, results = exists(folder / JOURNAL, "journal"), exists(folder / RESULTS, "result file")
    except PathError as exc:
        if exc.exit_code != 2:
            raise
        raise SchemaError(str(exc)) from None
    if journal:
        return read_journal(folder / JOURNAL, notice), JOURNAL
    if results:
        return load_run(folder / RESULTS), RESULTS
    raise SchemaError(f"{folder} holds neither {JOURNAL} nor {RESULTS}: not a benchbench run folder")


def keep_later_records(run: RunResult, results: str | Path, notice: Callable[[str], None] | None = None) -> int:
    """Copy onto ``run`` (read from a journal) what the results.json beside it holds and the journal does not:
    per-op profiles taken after the sweep (``measure.profile.profile_run`` writes them into results.json only)
    and meta written after it (the profiling's and the claim's times). A cell takes a profile only where its own
    has none, from the cell of the same spec; meta keys only where the journal's meta lacks them. So rebuilding
    the views from the journal (``benchbench report``) loses none of them. Returns how many cells took a profile;
    a results.json that cannot be read is left alone, with one ``notice``."""
    notice = notice or _default_notice
    try:
        previous = load_run(Path(results))
    except (SchemaError, OSError) as exc:
        notice(f"{results}: not read, so nothing written after the sweep is carried over ({one_line(str(exc))})")
        return 0
    profiles = {c.spec: c.metrics["profile"] for c in previous.cells if c.metrics.get("profile")}
    taken = 0
    for cell in run.cells:
        if not cell.metrics.get("profile") and cell.spec in profiles:
            cell.metrics["profile"] = profiles[cell.spec]
            taken += 1
    for key, value in previous.meta.items():
        run.meta.setdefault(key, value)
    return taken
