"""Shared fixtures: an isolated cache and a folder of tiny MIDI files (good and broken)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO as REPO  # re-exported: tests import it from here
from tests.helpers import broken_midis, melody_midi


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Every test session gets its own cache root, so tests never read a user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("CURRICMUSIC_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture
def midi_folder(tmp_path: Path) -> Path:
    """Six good melodies (two in a sub-folder) and one file of every broken kind."""
    root = tmp_path / "midis"
    (root / "sub").mkdir(parents=True)
    for i in range(6):
        folder = root / "sub" if i >= 4 else root
        (folder / f"tune{i}.mid").write_bytes(melody_midi(i))
    for name, (data, _) in broken_midis().items():
        (root / "broken" / name).parent.mkdir(exist_ok=True)
        (root / "broken" / name).write_bytes(data)
    (root / "notes.txt").write_text("not a midi file and not named like one")
    return root


@pytest.fixture(scope="session")
def compile_cache(request):
    """The inductor cache of the tests that compile (training and decoding): pytest's own cache
    folder, so that only the first session on a machine compiles and later ones load the kernels
    (under ``-p no:cacheprovider``, a fixed folder in the temporary directory: inductor's cache is
    keyed by everything a kernel depends on, so sharing it is safe). The ``--compile`` flag's
    variable is cleared: each test says whether it compiles."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        folder = cache.mkdir("torchinductor")
    else:
        folder = Path(tempfile.gettempdir()) / "curricmusic-tests-torchinductor"
        folder.mkdir(exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(folder))
    patch.delenv("CURRICMUSIC_COMPILE", raising=False)
    yield folder
    patch.undo()
