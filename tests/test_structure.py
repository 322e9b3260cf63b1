"""The house's shape, beside the layer order (tests/test_layers.py): functions small enough to
read in one sitting, and knowledge that lives in one place (run-folder file names in
``common/run_folder.py``, pitch-bearing token types in ``music/``).

Each test lists every offender, with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

from curricmusic.common.run_folder import CELL_FILE, CHECKPOINT_FILE, METRICS_FILE, RUN_FILE
from curricmusic.music.tokenizers import PITCH_TYPES

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "curricmusic"
MAX_FUNCTION_LINES = 120


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py"))]


def _string_constants(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, text) of every string constant: docstrings and the literal pieces of f-strings too
    (only a whole constant equal to a name counts, so a message that mentions run.json does not)."""
    return [(node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _long_functions(tree: ast.Module, limit: int) -> list[tuple[int, str, int]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > limit:
                found.append((node.lineno, node.name, length))
    return found


def test_long_functions_are_found():
    source = "def short():\n    return 1\n\n\ndef long():\n" + "    x = 1\n" * 5 + "    return x\n"
    assert _long_functions(ast.parse(source), 5) == [(5, "long", 7)]
    assert _long_functions(ast.parse(source), 7) == []


def test_no_function_is_longer_than_the_limit():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} {name} ({length} lines)"
        for path, tree in _trees()
        for line, name, length in _long_functions(tree, MAX_FUNCTION_LINES)
    ]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(offenders)


def test_run_folder_file_names_are_spelled_only_in_run_folder():
    names = {RUN_FILE, METRICS_FILE, CHECKPOINT_FILE, CELL_FILE}
    home = PACKAGE / "common" / "run_folder.py"
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} {text!r}"
        for path, tree in _trees()
        if path != home
        for line, text in _string_constants(tree)
        if text in names
    ]
    assert not offenders, "name the run folder's files through curricmusic.common.run_folder:\n" + "\n".join(offenders)


def test_pitch_token_types_are_named_only_in_music():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} {text!r}"
        for path, tree in _trees()
        if path.relative_to(PACKAGE).parts[0] != "music"
        for line, text in _string_constants(tree)
        if text in PITCH_TYPES
    ]
    assert not offenders, "ask curricmusic.music.tokenizers (token_pitch, carries_pitch):\n" + "\n".join(offenders)
