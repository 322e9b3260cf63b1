"""The one reader of the JSON files curricmusic writes and later reads back.

``run.json``, ``cell.json``, ``experiment.json``, ``novelty.json``, ``results.json``,
``manifest.json``, ``probe.json`` and ``metrics.jsonl`` are read through :func:`read_json` and
:func:`read_jsonl`. A file that is not UTF-8, not JSON, not an object, or lacks a key its reader
needs (or holds it with the wrong type) is one line naming the file and what is wrong, exit
status 2 (:class:`DamagedFile`)::

    runs/x/run.json: damaged (not JSON: Expecting value at line 1 column 1); rerun with --resume / --force

A schema is a mapping ``key -> accepted types`` (JSON types: ``dict``, ``list``, ``str``, ``int``,
``float``, ``bool``, ``type(None)``); ``float`` accepts integers too. Only the keys a reader
relies on are listed: newer files may hold more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curricmusic.common.errors import UserError

__all__ = ["DamagedFile", "RERUN", "Schema", "read_json", "read_jsonl", "readable", "MAX_BYTES"]

RERUN = "rerun with --resume / --force"
MAX_BYTES = 1 << 30  # larger than any file curricmusic writes: a hostile file is refused unread

Schema = Mapping[str, type | tuple[type, ...]]

_NAMES = {dict: "an object", list: "a list", str: "text", int: "an integer", float: "a number", bool: "true/false", type(None): "null"}


class DamagedFile(UserError):
    """A file curricmusic wrote cannot be read back (exit status 2, naming the file)."""


def _damaged(path: Path, what: str, hint: str) -> DamagedFile:
    return DamagedFile(f"{path}: damaged ({what}); {hint}")


def _type_ok(value: Any, accepted: type | tuple[type, ...]) -> bool:
    kinds = accepted if isinstance(accepted, tuple) else (accepted,)
    if isinstance(value, bool):  # JSON true/false is never a number here
        return bool in kinds
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def _schema_problem(obj: Any, schema: Schema | None) -> str | None:
    if not isinstance(obj, dict):
        return f"not a JSON object but {_NAMES.get(type(obj), type(obj).__name__)}"
    for key, accepted in (schema or {}).items():
        if key not in obj:
            return f"no {key!r}"
        if not _type_ok(obj[key], accepted):
            kinds = accepted if isinstance(accepted, tuple) else (accepted,)
            expected = " or ".join(_NAMES.get(kind, kind.__name__) for kind in kinds)
            return f"{key!r} is {_NAMES.get(type(obj[key]), type(obj[key]).__name__)}, expected {expected}"
    return None


def _text(path: Path, hint: str, max_bytes: int) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _damaged(path, f"unreadable: {exc.strerror or exc}", hint) from None
    if size > max_bytes:
        raise _damaged(path, f"{size} bytes, more than any file curricmusic writes", hint)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise _damaged(path, "a folder, not a file", hint) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _damaged(path, f"not UTF-8 text at byte {exc.start}", hint) from None


def read_json(
    path: str | os.PathLike[str],
    schema: Schema | None = None,
    *,
    hint: str = RERUN,
    missing_ok: bool = False,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any] | None:
    """The JSON object in ``path``, checked against ``schema``; None when it does not exist and
    ``missing_ok``. Anything else wrong raises :class:`DamagedFile` naming the file."""
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return None
        raise _damaged(path, "missing", hint)
    text = _text(path, hint, max_bytes)
    if not text.strip():
        raise _damaged(path, "empty", hint)
    try:
        obj = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and Python's limit on the digits of an integer
        raise _damaged(path, f"not JSON: {str(exc).splitlines()[0][:200]}", hint) from None
    problem = _schema_problem(obj, schema)
    if problem:
        raise _damaged(path, problem, hint)
    return obj


def read_jsonl(
    path: str | os.PathLike[str],
    schema: Schema | None = None,
    *,
    hint: str = RERUN,
    max_bytes: int = MAX_BYTES,
) -> list[dict[str, Any]]:
    """Every row (a JSON object per line) of ``path``; [] when it does not exist. A torn last line
    without its newline (a writer killed mid-line) is left out; any other bad line raises
    :class:`DamagedFile` naming the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    text = _text(path, hint, max_bytes)
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: maybe torn
        try:
            row = json.loads(line)
        except ValueError as exc:
            if last:
                break
            raise _damaged(path, f"line {number} is not JSON: {str(exc).splitlines()[0][:200]}", hint) from None
        problem = _schema_problem(row, schema)
        if problem:
            raise _damaged(path, f"line {number}: {problem}", hint)
        rows.append(row)
    return rows


def readable(path: str | os.PathLike[str], schema: Schema | None = None) -> bool:
    """True when ``path`` exists and :func:`read_json` reads it without complaint."""
    try:
        return read_json(path, schema) is not None
    except DamagedFile:
        return False
