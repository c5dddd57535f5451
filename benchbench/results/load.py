"""Reading result files: parse strictly, migrate old schema versions, validate, recompute statistics.

Anything that is not a readable result of a known schema version and the right shape raises
:class:`SchemaError`, one line that names the file and the problem; no traceback reaches the user.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchbench.core import strictjson
from benchbench.core.files import PathError, read_regular_bytes

from .record import SCHEMA, SCHEMA_VERSION, CellResult, RunResult
from .schema import validate_document

__all__ = ["DESIGNED_KINDS", "SchemaError", "load_run", "model_kind", "parse_json", "run_from_document"]

# Kinds of designed nets (guideline tables, the lab's nets, the predictor's kernel nets): measured to test the
# claim, never models the claim or a predictor is judged on.
DESIGNED_KINDS = ("guideline", "lab", "kernel")


class SchemaError(ValueError):
    """A file that cannot be read as a benchbench result: missing, unreadable, not JSON, of another schema or
    version, or of the wrong shape. ``str()`` is one line that names the file and the problem."""


def _from_v1(doc: dict) -> dict:
    """Schema 1 had no blocks and no groups: its cells keep their pooled samples (and old rounds)."""
    return {**doc, "schema_version": 2, "groups": []}


def model_kind(model: dict) -> str:
    """The kind of a cell's model record (zoo, guideline, lab, user, file): its ``kind``, or, for a record
    written before records carried one (schema < 3, or built in memory without it), what its family says."""
    if model.get("kind"):
        return model["kind"]
    family = str(model.get("family") or "")
    if family.startswith("guideline"):
        return "guideline"
    if family.startswith("file:") or model.get("zoo") is False:
        return "file"
    return "user" if family == "user" else "zoo"


def _from_v2(doc: dict) -> dict:
    """Schema 3 adds ``model.kind`` to every cell (zoo, guideline, lab, user, file), so that no reader tests
    family names; a schema-2 cell's kind follows from its family."""
    if not isinstance(doc.get("cells"), list):
        return {**doc, "schema_version": 3}  # the shape check says what is wrong with it
    cells = []
    for cell in doc["cells"]:
        if isinstance(cell, dict) and isinstance(cell.get("model"), dict) and cell["model"] and "kind" not in cell["model"]:
            cell = {**cell, "model": {**cell["model"], "kind": model_kind(cell["model"])}}
        cells.append(cell)
    return {**doc, "schema_version": 3, "cells": cells}


def _migrate(doc: dict) -> dict:
    """Bring an older document up to SCHEMA_VERSION. Add a step here with every version bump."""
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"schema_version is {version!r:.40}, not a version number")
    migrations: dict[int, callable] = {1: _from_v1, 2: _from_v2}
    while version in migrations:
        doc = migrations[version](doc)
        version = doc["schema_version"]
    if version != SCHEMA_VERSION:
        raise ValueError(f"unsupported result schema version {version} (this benchbench reads {SCHEMA_VERSION})")
    return doc


class _TooLarge(ValueError):
    pass


def _parse_int(text: str) -> int:
    # Past int64 no runtime counts anything, and numpy would fall back to object arrays (or Python refuse
    # the conversion past 4300 digits): a number that large is corruption.
    if len(text) > 20 or abs(value := int(text)) > 2**63 - 1:
        raise _TooLarge(f"number too large: {text[:30]}{'...' if len(text) > 30 else ''}")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # a literal such as 1e400: beyond any float
        raise _TooLarge(f"number too large: {text[:30]}")
    return value


def parse_json(text: str):
    """``json.loads`` that refuses numbers beyond int64 or a double (``ValueError``)."""
    # NaN and Infinity tokens are accepted: files written before results became strict JSON may
    # hold them outside the samples; run_from_document turns them into null.
    return json.loads(text, parse_int=_parse_int, parse_float=_parse_float)


# A results.json of the reference sweep (400 cells, every block) is a few tens of MB; past this, not a result.
MAX_RESULT_BYTES = 1 << 30


def read_result_bytes(path: Path, what: str = "result file") -> bytes:
    """The bytes of a result file or journal the user named; a one-line ``SchemaError`` for a path that is
    missing, a folder, a FIFO or device (never opened to block), unreadable, too long a name, or too large."""
    try:
        return read_regular_bytes(path, what, MAX_RESULT_BYTES)
    except PathError as exc:
        if exc.exit_code != 2:  # the machine failed reading it: an environment error, not the file's
            raise
        raise SchemaError(str(exc)) from None


def _read_json(path: Path):
    """The parsed document, or a one-line ``SchemaError`` saying why the file cannot be parsed."""
    data = read_result_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SchemaError(f"{path} is not JSON (binary data, not UTF-8 text)") from None
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except _TooLarge as exc:
        raise SchemaError(f"{path}: {exc}") from None
    except RecursionError:
        raise SchemaError(f"{path} is not a benchbench result file (nested too deeply)") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_run(path: str | Path) -> RunResult:
    """Read a result file, migrating old schema versions and recomputing statistics from samples.

    Anything that is not a readable result of a known schema version and the right shape (see
    ``benchbench.results.schema``) raises :class:`SchemaError`, whose one-line message names the file.
    """
    path = Path(path)
    return run_from_document(_read_json(path), path)


def run_from_document(doc, path: Path) -> RunResult:
    """A parsed result document (``path`` names it in errors) as a RunResult: migrated, validated, with
    statistics recomputed from the samples; ``SchemaError`` when it is not one."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SchemaError(f"{path} is not a benchbench result file")
    try:
        doc = _migrate(doc)
        validate_document(doc)
    except ValueError as exc:
        raise SchemaError(_one_line(f"{path}: {exc}")) from None
    # Past validation, the samples are finite; NaN or Infinity elsewhere (files from before strict JSON)
    # become null here, as they would on the next save.
    doc = strictjson.finite(doc)
    settings = doc["meta"].get("settings", {})
    noisy = {k: settings[k] for k in ("noisy_ci", "noisy_cv") if settings.get(k) is not None}
    cells = [CellResult.from_dict(c) for c in doc["cells"]]
    seen: dict[tuple, int] = {}
    for i, cell in enumerate(cells):
        first = seen.setdefault(cell.spec.key(), i)
        if first != i:  # compare and the views match cells by identity: one would silently hide the other
            raise SchemaError(_one_line(f"{path}: cells[{first}] and cells[{i}] are the same cell "
                                        f"({cell.spec.label()}): a run holds each cell once"))
        cell.recompute(**noisy)
    return RunResult(meta=doc["meta"], cells=cells, path=path, groups=doc.get("groups", []))
