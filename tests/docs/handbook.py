"""Helpers of the handbook's tests: the repository's paths and modules loaded from docs/."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def load(relative: str) -> ModuleType:
    """A Python file under docs/ (a hook or a worked example) as a module."""
    path = DOCS / relative
    name = "handbook_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def pages() -> list[Path]:
    """Every Markdown page of the site, the studies' and the benchmarks' own files included
    (docs/studies and docs/benchmarks/RESULTS.md link to them), as MkDocs finds them."""
    found = []
    for folder, _, files in os.walk(DOCS, followlinks=True):
        found += [Path(folder) / name for name in files if name.endswith(".md")]
    return sorted(found)
