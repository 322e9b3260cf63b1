"""Where curricmusic keeps caches that outlive a single run."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """The cache root (``$CURRICMUSIC_CACHE`` or ``~/.cache/curricmusic``) joined with ``parts``.

    The directory is created on first use.
    """
    root = os.environ.get("CURRICMUSIC_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "curricmusic"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
