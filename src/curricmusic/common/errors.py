"""The one exception type for user mistakes, and the one line every failure becomes.

Library code raises :class:`UserError` for bad input (a wrong config value, a missing file, an
impossible setting). The CLI prints its message as a single line and exits with status 2, so a
user never sees a traceback for their own mistake. Failures of the machine (a read-only folder,
a full disk, missing permissions: :class:`OSError`) are one line naming the path and the cause,
exit status 1. A run that failed on its own (:class:`RunFailed`: a loss that became NaN) and a
machine out of memory are one line too, exit status 1. Anything else is a bug: one line saying
so, exit status 1; the traceback is shown only with ``--debug`` or ``CURRICMUSIC_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os

__all__ = ["UserError", "RunFailed", "DEBUG_ENV", "debug_enabled", "error_line", "out_of_memory"]

DEBUG_ENV = "CURRICMUSIC_DEBUG"


class UserError(Exception):
    """A mistake in the user's input, with a message that names the file, key or value."""


class RunFailed(Exception):
    """A run that could not go on (its loss became NaN): one line naming the step, exit status 1."""


def debug_enabled() -> bool:
    """True when ``CURRICMUSIC_DEBUG`` is set to anything but ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or choose a folder on another disk",
    errno.EDQUOT: "the disk quota is used up; free some space or choose another folder",
    errno.EROFS: "choose a folder on a writable file system (--out, or CURRICMUSIC_CACHE for the cache)",
    errno.EACCES: "choose a folder you can write to (--out, or CURRICMUSIC_CACHE for the cache)",
    errno.EPERM: "choose a folder you can write to (--out, or CURRICMUSIC_CACHE for the cache)",
}


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:limit] if lines else ""


def out_of_memory(exc: BaseException) -> bool:
    """True for a failed allocation: Python's MemoryError, or PyTorch's (a RuntimeError)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)[:500].lower() if isinstance(exc, RuntimeError) else ""
    return "can't allocate memory" in text or "out of memory" in text


def error_line(exc: BaseException) -> tuple[int, str]:
    """``(exit status, one line)`` for an exception that reached the command line."""
    if isinstance(exc, UserError):
        return 2, _first_line(str(exc), 2000) or "invalid input"
    if isinstance(exc, OSError):
        cause = exc.strerror or _first_line(str(exc)) or type(exc).__name__
        where = ", ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
        hint = _HINTS.get(exc.errno or -1)
        return 1, f"{where + ': ' if where else ''}{cause}{'; ' + hint if hint else ''}"
    if isinstance(exc, RunFailed):
        return 1, _first_line(str(exc), 2000) or "the run failed"
    if out_of_memory(exc):
        return 1, "out of memory; try a smaller batch_size, model, --max-tokens or --workers"
    message = _first_line(str(exc))
    return 1, (
        f"internal error: {type(exc).__name__}{': ' + message if message else ''} "
        f"(run again with --debug or {DEBUG_ENV}=1 for the traceback, and please report it)"
    )
