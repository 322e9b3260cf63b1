"""Where curricmusic keeps caches that outlive a single run, and where its libraries keep theirs."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "cache_root", "redirect_tool_caches", "TOOL_CACHES"]

# Caches that libraries we use would otherwise write outside --out and our cache (the home
# folder, the system temp folder, site-packages): environment variable -> folder in our cache.
TOOL_CACHES = {
    "MPLCONFIGDIR": "matplotlib",  # matplotlib's font list (~/.cache/matplotlib)
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",  # created by accelerate's set-up ($TMPDIR)
    "NUMBA_CACHE_DIR": "numba",  # librosa's compiled functions (site-packages)
}


def cache_root() -> Path:
    """The cache root, ``$CURRICMUSIC_CACHE`` or ``~/.cache/curricmusic`` (not created)."""
    root = os.environ.get("CURRICMUSIC_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "curricmusic"


def cache_dir(*parts: str) -> Path:
    """The cache root joined with ``parts``; the directory is created on first use."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def redirect_tool_caches() -> None:
    """Point the caches of :data:`TOOL_CACHES` into ours, unless the user chose them already.

    The command line calls this first, so a command writes nothing outside ``--out`` and the
    cache. Nothing is created here: each library makes its folder when it needs it.
    """
    root = cache_root()
    for variable, name in TOOL_CACHES.items():
        os.environ.setdefault(variable, str(root / name))
