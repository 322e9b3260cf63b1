"""Shared fixtures: an isolated cache, a folder of tiny MIDI files (good and broken), and the one
finished debug experiment that the end-to-end tests read (run once per session)."""

from __future__ import annotations

import os

# Under pytest-xdist (`make test` runs one worker per core) each worker gets its share of the
# cores, set before torch is imported here or in a subprocess a test starts: N workers each
# running torch on every core would slow all of them down.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    from curricmusic.experiment.parallel import threads_per_job  # imports no torch

    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_job(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import HANG_S, broken_midis, melody_midi
from tests.helpers import REPO as REPO  # re-exported: tests import it from here

DEBUG_EXPERIMENT = REPO / "experiments" / "debug.toml"


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
def debug_run(tmp_path_factory) -> tuple[Path, dict]:
    """``curricmusic run experiments/debug.toml``: pretraining, sampling, novelty, probes and the
    adaptation phase end to end through the command line, as a user runs it; ``(folder,
    results.json)``. Shared by every test that only reads a finished experiment: copy the folder
    before changing anything in it."""
    out = tmp_path_factory.mktemp("debug-run")
    done = subprocess.run(
        [sys.executable, "-m", "curricmusic", "run", str(DEBUG_EXPERIMENT), "--out", str(out)],
        capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "In short:" in done.stdout  # the command prints the report's opening paragraph
    return out, json.loads((out / "results.json").read_text())


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
