"""Fixtures shared by tests: seeded melodies, one broken file of every kind, the smallest
experiment text, and the console script run in-process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from curricmusic.cli import main
from curricmusic.common.progress import console
from curricmusic.music.notes import make_notes, notes_to_score

REPO = Path(__file__).resolve().parents[1]  # the repository root (tests.conftest.REPO)
DEBUG_ENV = "CURRICMUSIC_DEBUG"  # the README's debug switch
COMPILE_ENV = "CURRICMUSIC_COMPILE"  # set by --compile/--no-compile
#: Cache folders of third-party tools that ``main()`` points into curricmusic's cache.
TOOL_CACHES = ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "NUMBA_CACHE_DIR")

#: A subprocess that runs longer than this is hung, not slow: no test relies on a machine's speed
#: or load, so every wait in the tests is this generous.
HANG_S = 1800

#: The smallest experiment text that loads (the debug curriculum), without arms: tests append them.
MINIMAL_EXPERIMENT = f"""
name = "x"
curriculum = "{REPO / "curricula" / "debug.toml"}"
[train]
tokens = 4096
seq_len = 64
batch_size = 8
eval_every = 4
"""


def run_cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run the console script in this process: ``(exit status, stdout, stderr)``. The variables
    ``main()`` sets are restored after the test; tables are not wrapped."""
    for variable in (*TOOL_CACHES, DEBUG_ENV, COMPILE_ENV):
        if variable in os.environ:
            monkeypatch.setenv(variable, os.environ[variable])
        else:  # recorded as absent (delenv alone records nothing when it is absent)
            monkeypatch.setenv(variable, "")
            monkeypatch.delenv(variable)
    monkeypatch.setattr(console, "width", 200)
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["curricmusic", *(str(a) for a in args)])
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def melody_midi(seed: int, n_notes: int = 24, program: int = 0) -> bytes:
    """A seeded random-walk melody in quarter and eighth notes, as MIDI bytes."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([-2, -1, 1, 2, 3, -3], size=n_notes)
    pitches = 60 + np.cumsum(steps) % 24
    durations = rng.choice([0.5, 1.0], size=n_notes)
    onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    score = notes_to_score(make_notes(onsets, durations, pitches), program=program)
    return score.dumps_midi()


def broken_midis() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a fragment of the skip reason the pipeline must give)."""
    good = melody_midi(0)
    tempo_at = good.find(b"\xff\x51\x03")
    zero_tempo = good[: tempo_at + 3] + b"\x00\x00\x00" + good[tempo_at + 6 :]
    long_onsets = [float(i) for i in range(12)] + [200_000.0]  # the last note after ~28 hours
    long_score = notes_to_score(make_notes(long_onsets, [1.0] * 13, [60 + i for i in range(13)]))
    no_notes = notes_to_score(make_notes([], [], []))
    return {
        "empty.mid": (b"", "empty file"),
        "text.mid": (b"this is not a midi file\n" * 4, "not a MIDI file"),
        "truncated.mid": (good[: len(good) // 2], "corrupt or truncated"),
        "header_only.mid": (b"MThd\x00\x00\x00\x06\x00\x01\x00\x00\x01\xe0", "no notes"),
        "no_notes.mid": (no_notes.dumps_midi(), "no notes"),
        "zero_tempo.midi": (zero_tempo, "tempo"),
        "absurd_length.mid": (long_score.dumps_midi(), "absurd length"),
    }


# The smallest experiment that runs every step: 8 training steps, one sample, symbolic novelty.
TINY = f"""
name = "tiny"
curriculum = "{REPO / "curricula" / "debug.toml"}"
seeds = [0]
[model]
size = "tiny"
d_model = 32
n_layers = 1
n_heads = 2
[train]
tokens = 2048
seq_len = 32
batch_size = 8
eval_every = 4
log_every = 4
checkpoint_every = 4
[[arms]]
name = "random"
pacing = "random"
[generate]
n = 1
max_bars = 2
max_tokens = 64
copy_blocking = false
[novelty]
embedder = "symbolic"
"""


def tiny_experiment(folder: Path, text: str = TINY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


def one_line_error(status: int, err: str, expected_status: int, *fragments: str) -> None:
    assert status == expected_status, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)
