"""How much memory this process may still take, and the check every large allocation passes first.

:func:`available_bytes` is the smallest of: the memory the kernel says is available
(``MemAvailable`` in ``/proc/meminfo``), the room left under a cgroup limit
(``memory.max`` of the process's cgroup v2), and the room left under the process's address-space
limit (``RLIMIT_AS``, as ``ulimit -v`` or a test sets it). Where none of these can be read it is
None, and :func:`check_fits` checks nothing.

:func:`check_fits` compares an estimate (made from a config before any tensor exists) with it and
refuses with one line giving both numbers (:class:`TooLarge`, exit status 2)::

    model/config.json: the model needs about 3.7 TB (weights 3.7 TB), more than the 21.4 GB
    this machine has available; choose a smaller model
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from curricmusic.common.errors import UserError

__all__ = ["TooLarge", "available_bytes", "check_fits", "human_bytes"]


class TooLarge(UserError):
    """A size from a file or flag that this machine cannot hold (exit status 2)."""


def human_bytes(n: float) -> str:
    """``1.5 GB``: decimal units, three significant figures."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if abs(n) < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    """Room left under the cgroup v2 memory limit of this process, or None (no limit, no v2)."""
    try:
        relative = next(
            line.split("::", 1)[1] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")
        )
        folder = Path("/sys/fs/cgroup") / relative.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text().strip()))
    except (OSError, ValueError, StopIteration):
        return None


def _address_space_room() -> int | None:
    """Room left under ``RLIMIT_AS`` (virtual memory), or None when there is no limit."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[0])
        used = pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, soft - used)


def available_bytes() -> int | None:
    """The memory this process may still allocate (see the module doc), or None when unknown."""
    known = [room for room in (_meminfo_available(), _cgroup_room(), _address_space_room()) if room is not None]
    return min(known) if known else None


def check_fits(needed: float, what: str, parts: Mapping[str, float] | None = None, advice: str = "") -> None:
    """Refuse (:class:`TooLarge`, one line) when ``needed`` bytes exceed what is available.

    ``what`` begins the message (the file or flag, and the thing measured); ``parts`` breaks the
    estimate down; ``advice`` says what to change.
    """
    available = available_bytes()
    if available is None or needed <= available:
        return
    detail = ", ".join(f"{name} {human_bytes(size)}" for name, size in (parts or {}).items() if size)
    raise TooLarge(
        f"{what} needs about {human_bytes(needed)}{f' ({detail})' if detail else ''}, more than the "
        f"{human_bytes(available)} this machine has available{'; ' + advice if advice else ''}"
    )
