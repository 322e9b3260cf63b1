"""One writer per output folder: an exclusive advisory lock on a file inside the folder.

Every command that writes a run, experiment, samples, novelty, compare or prepared folder holds
:func:`folder_lock` for as long as it writes. A second writer is refused at once with one line
naming the process that holds the folder (:class:`FolderInUse`, exit status 2)::

    runs/x: in use by process 4242 (started at 2026-12-01 10:00:00); wait for it or choose another --out

The lock is ``fcntl.flock`` on ``FOLDER/.curricmusic.lock``: the kernel releases it when the
holder exits, however it exits (``kill -9`` included), so a lock left by a killed process never
blocks. The file records the holder's process id and start time for the message; it is removed
when the lock is released. After taking the lock, the holder checks that the path still names
the file it locked (a releasing writer may have removed it meanwhile) and tries again if not.

A process that a lock holder launched to write into the same folder (``accelerate launch`` of a
cell's training under ``curricmusic run``) inherits the lock: holders list their process ids in
``CURRICMUSIC_LOCK_HOLDERS``, which child processes inherit. Locks are re-entrant within a process.

Where ``fcntl`` does not exist (Windows) nothing is locked: the first lock says so once, on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from curricmusic.common.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks of this kind
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "HOLDERS_ENV", "FolderInUse", "folder_lock", "lock_holder"]

LOCK_FILE = ".curricmusic.lock"
HOLDERS_ENV = "CURRICMUSIC_LOCK_HOLDERS"  # process ids (comma-separated) of this process's lock-holding ancestors

_HELD: dict[str, tuple[int, int]] = {}  # resolved folder -> (file descriptor, depth), this process's locks
_WARNED: list[bool] = []


class FolderInUse(UserError):
    """Another process is writing into the folder (exit status 2, like any input mistake)."""


def lock_holder(folder: str | os.PathLike[str]) -> dict | None:
    """What the lock file of ``folder`` records (``pid``, ``started``), or None."""
    try:
        data = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _inherited(holder: dict | None) -> bool:
    """True when the holder is an ancestor that launched this process to write here."""
    if holder is None or not isinstance(holder.get("pid"), int):
        return False
    ancestors = {part for part in os.environ.get(HOLDERS_ENV, "").split(",") if part}
    return str(holder["pid"]) in ancestors and holder["pid"] != os.getpid()


def _refusal(folder: Path, what: str) -> FolderInUse:
    holder = lock_holder(folder) or {}
    pid = holder.get("pid", "unknown")
    started = holder.get("started", "an unknown time")
    return FolderInUse(
        f"{folder}: in use by process {pid} (started at {started}); wait for it or choose another {what}"
    )


def _try_lock(path: Path) -> int | None:
    """A descriptor holding the exclusive lock of ``path``, or None when another process holds it."""
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:  # the file we locked must still be the one the path names (see the module doc)
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _record(fd: int) -> None:
    started = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    text = json.dumps({"pid": os.getpid(), "started": started, "command": " ".join(sys.argv[:3])})
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)


@contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "--out", wait_s: float = 0.0) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (which must exist) for the ``with`` block.

    Raises :class:`FolderInUse` when another process holds it; with ``wait_s`` > 0, waits that
    long for it first (saying so once on stderr). ``what`` names the option the user may change.
    """
    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:  # re-entrant: the same process writing through nested calls
        held, depth = _HELD[key]
        _HELD[key] = (held, depth + 1)
        try:
            yield folder
        finally:
            _HELD[key] = (held, _HELD[key][1] - 1)
        return
    if fcntl is None:
        if not _WARNED:
            _WARNED.append(True)
            print("warning: this platform has no fcntl: output folders are not locked", file=sys.stderr)
        yield folder
        return
    path = folder / LOCK_FILE
    fd: int | None = _try_lock(path)
    deadline = time.monotonic() + wait_s
    said = False
    while fd is None:
        if _inherited(lock_holder(folder)):
            yield folder
            return
        if time.monotonic() >= deadline:
            raise _refusal(folder, what)
        if not said:
            holder = lock_holder(folder) or {}
            print(f"waiting for process {holder.get('pid', 'unknown')}, which is writing {folder}", file=sys.stderr)
            said = True
        time.sleep(0.2)
        fd = _try_lock(path)
    _record(fd)
    _HELD[key] = (fd, 1)
    previous = os.environ.get(HOLDERS_ENV)
    os.environ[HOLDERS_ENV] = ",".join(filter(None, [previous, str(os.getpid())]))
    try:
        yield folder
    finally:
        del _HELD[key]
        if previous is None:
            os.environ.pop(HOLDERS_ENV, None)
        else:
            os.environ[HOLDERS_ENV] = previous
        try:
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)  # while still locked: a waiter then finds the path gone and retries
        except OSError:
            pass  # the folder was moved or removed meanwhile (a prepared folder swapped away)
        os.close(fd)
