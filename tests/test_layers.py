"""The package's layers import one way: each top-level folder only from the folders below it.

The order (top to bottom) is the handbook's architecture page (docs/architecture/index.md). Every import counts, function-level
ones too, except the optional heavy ones listed there (they never name curricmusic modules).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "curricmusic"

# top to bottom; a layer may import itself and anything after it
LAYERS = [
    "cli",
    "experiment",
    "training",
    "generation",
    "novelty",
    "reporting",
    "evaluation",
    "curriculum",
    "model",
    "data",
    "config",
    "music",
    "common",
]
ENTRY_POINTS = {"__init__", "__main__"}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "curricmusic" or len(parts) < 2:
        return None
    return parts[1].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported curricmusic module) for every import in ``path``."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "curricmusic"]
    return [(line, name) for line, name in found if name.startswith("curricmusic.")]


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_entry_is_a_known_layer():
    entries = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert entries - ENTRY_POINTS <= set(LAYERS), sorted(entries - ENTRY_POINTS - set(LAYERS))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_point_down(path: Path):
    here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if here in ENTRY_POINTS:
        return
    rank = LAYERS.index(here)
    upward = []
    for line, module in _imports(path):
        layer = _layer_of(module)
        if layer is None or layer in ENTRY_POINTS:
            continue
        if LAYERS.index(layer) < rank:
            upward.append(f"line {line}: {module} ({layer} is above {here})")
    assert not upward, "\n".join(upward)
