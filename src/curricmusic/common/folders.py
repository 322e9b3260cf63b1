"""Output folders: curricmusic writes only into folders it made, and replaces only its own.

The one rule every command that writes a folder follows (``data prepare``, ``train``,
``generate``, ``novelty``, ``compare``, ``run``, ``data show --export-midi``):

- a folder that does not exist, or is empty, is created (mode from the umask) and marked ours
  with a small ``.curricmusic`` file;
- a folder that holds our mark (or the record file an older curricmusic wrote: a prepared
  ``manifest.json``, ``run.json``, ...) of the same kind is ours: the command may write its own
  files into it (a folder of another kind is refused: a samples ``manifest.json`` must never
  overwrite a prepared one);
- anything else (a folder of the user's files, the current directory, a file) is refused with
  one line, before any work starts. Nothing is ever deleted there.

Replacing a whole folder (``data prepare`` swaps in a freshly built one) needs more: the folder
must be ours, of the same kind, and hold nothing but the entries that kind writes.

A command writes only while it holds the folder's lock (:func:`writing_folder`, see
:mod:`curricmusic.common.lock`): one writer per folder. The lock file is never a user's entry.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from curricmusic.common.atomic import write_json
from curricmusic.common.errors import UserError
from curricmusic.common.lock import LOCK_FILE, folder_lock
from curricmusic.common.run_folder import RUN_FILE

__all__ = [
    "MARKER",
    "claim_folder",
    "check_folder",
    "writing_folder",
    "check_replaceable",
    "folder_kind",
    "mark_folder",
    "remove_stale",
    "umask_mode",
]

MARKER = ".curricmusic"

# Record files older versions wrote (before the mark existed): file -> keys its JSON object holds.
_RECORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prepared": ("manifest.json", ("format", "fingerprint", "stages")),
    "samples": ("manifest.json", ("samples", "settings", "checkpoint_sha256")),
    "run": (RUN_FILE, ("experiment_hash", "seed", "arm")),
    "experiment": ("experiment.json", ("hash", "config")),
    "novelty": ("novelty.json", ("summary", "samples", "embedder")),
    # `curricmusic export`: a folder for the Hugging Face Hub carries no mark of its own
    "export": ("curricmusic.json", ("made_by", "weights_sha256", "run")),
}

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def umask_mode(mode: int = 0o777) -> int:
    """``mode`` as a plain ``mkdir`` / ``open`` would leave it under the process umask."""
    return mode & ~_UMASK


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def folder_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind of output curricmusic made ``path`` for (``prepared``, ``run``, ...), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    mark = _read_json(path / MARKER)
    if isinstance(mark, dict) and mark.get("made_by") == "curricmusic":
        return str(mark.get("kind") or "unknown")
    for kind, (name, keys) in _RECORDS.items():
        record = _read_json(path / name) if (path / name).is_file() else None
        if isinstance(record, dict) and all(key in record for key in keys):
            return kind
    return None


def _shown(entries: Iterable[str], limit: int = 3) -> str:
    entries = sorted(entries)
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def check_folder(path: str | os.PathLike[str], what: str = "--out", kind: str | None = None) -> None:
    """One UserError line unless ``path`` is missing, an empty folder, or a folder we made (of
    ``kind``, when given)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise UserError(f"{path}: {what} is a file, not a folder; choose another {what}")
    try:
        entries = [entry.name for entry in path.iterdir() if entry.name != LOCK_FILE]
    except OSError as exc:
        raise UserError(f"{path}: cannot read this folder ({exc.strerror or exc})") from None
    if not entries:
        return
    found = folder_kind(path)
    if found is None:
        raise UserError(
            f"{path}: {what} exists and was not made by curricmusic (it holds {_shown(entries)}); "
            f"nothing was changed; choose a new or empty folder for {what}"
        )
    if kind is not None and found != kind:
        raise UserError(
            f"{path}: {what} is a curricmusic {found} folder, not a {kind} one; nothing was "
            f"changed; choose another {what}"
        )


def mark_folder(path: str | os.PathLike[str], kind: str) -> None:
    """Write our mark into ``path`` (kept when the folder already has one)."""
    mark = Path(path) / MARKER
    if not mark.is_file():
        write_json(mark, {"made_by": "curricmusic", "kind": kind})


def claim_folder(path: str | os.PathLike[str], kind: str, what: str = "--out") -> Path:
    """Check ``path`` (see :func:`check_folder`), create it if needed and mark it ours."""
    path = Path(path)
    check_folder(path, what, kind)
    path.mkdir(parents=True, exist_ok=True)
    mark_folder(path, kind)
    return path


@contextmanager
def writing_folder(path: str | os.PathLike[str], kind: str, what: str = "--out", wait_s: float = 0.0) -> Iterator[Path]:
    """Claim ``path`` (see :func:`claim_folder`) and hold its writer's lock for the ``with`` block
    (see :mod:`curricmusic.common.lock`: a second writer is refused with one line)."""
    path = claim_folder(path, kind, what)
    with folder_lock(path, what, wait_s=wait_s):
        yield path


def check_replaceable(
    path: str | os.PathLike[str], kind: str, entries: Iterable[str], what: str = "--out"
) -> None:
    """One UserError line unless ``path`` may be replaced whole by a new folder of ``kind``.

    Allowed: a missing path, an empty folder, or a folder of that kind holding only ``entries``
    (the names that kind writes) and our mark.
    """
    path = Path(path)
    check_folder(path, what, kind)
    if not path.exists():
        return
    present = {entry.name for entry in path.iterdir()}
    foreign = present - set(entries) - {MARKER, LOCK_FILE}
    if foreign:
        raise UserError(
            f"{path}: {what} holds files curricmusic did not write ({_shown(foreign)}); nothing "
            f"was changed; move them out or choose another {what}"
        )


def remove_stale(parent: str | os.PathLike[str], pattern: str, max_age_s: float = 86400.0) -> list[Path]:
    """Remove folders under ``parent`` matching ``pattern`` untouched for ``max_age_s`` seconds.

    For the leftovers of a killed writer (``.NAME.build-*``): the pattern names only folders
    curricmusic makes itself. Returns what was removed.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        candidates = list(Path(parent).glob(pattern))
    except OSError:
        return removed
    for candidate in candidates:
        try:
            if candidate.is_symlink() or not candidate.is_dir():
                continue
            if now - candidate.stat().st_mtime < max_age_s:
                continue
        except OSError:
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed
