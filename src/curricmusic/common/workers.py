"""Worker processes that die with their parent, even when the parent is killed with SIGKILL.

A ``ProcessPoolExecutor`` worker whose parent is killed (``kill -9``, the OOM killer) is left
running as an orphan, holding its memory forever. Pass :func:`die_with_parent` as the pool's
``initializer`` (or call it first thing in one): on Linux the kernel sends the worker SIGKILL
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every platform a daemon thread checks
once a second whether the parent is still the one that started the worker, and exits if not.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["die_with_parent", "worker_initializer"]

_PR_SET_PDEATHSIG = 1
_POLL_S = 1.0


def _watch(parent: int) -> None:
    event = threading.Event()
    while not event.wait(_POLL_S):
        if os.getppid() != parent:
            os._exit(1)  # the parent is gone: nobody will read our results


def die_with_parent(parent: int | None = None) -> None:
    """Make this (worker) process exit when ``parent`` (default: its current parent) dies."""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher thread below covers it
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()


def _initialize(parent: int, initializer: Callable[..., Any] | None, args: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*args)


def worker_initializer(
    initializer: Callable[..., Any] | None = None, initargs: tuple = ()
) -> dict[str, Any]:
    """``ProcessPoolExecutor`` keyword arguments: ``initializer`` after :func:`die_with_parent`.

    ``ProcessPoolExecutor(max_workers=n, **worker_initializer(init, args))``
    """
    return {"initializer": _initialize, "initargs": (os.getpid(), initializer, initargs)}
