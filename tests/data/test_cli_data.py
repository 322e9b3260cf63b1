"""`curricmusic data prepare` and `data show` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from symusic import Score

from curricmusic.data.prepared import PreparedData
from curricmusic.data.summary import spread
from curricmusic.music.notes import piano_reduction
from curricmusic.music.tokenizers import encode_score
from tests.conftest import REPO
from tests.helpers import HANG_S


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "curricmusic", *map(str, args)], capture_output=True, text=True, env=env, timeout=HANG_S)


def test_prepare_a_plain_midi_folder_then_show_and_export(midi_folder, tmp_path):
    env = dict(os.environ)
    out = tmp_path / "prep"
    done = run("data", "prepare", midi_folder, "--out", out, "--workers", 1, env=env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["skipped"]) == 7
    assert {"path", "reason"} <= set(manifest["skipped"][0])
    assert "midis" in done.stdout and "train" in done.stdout  # the summary table

    shown = run("data", "show", out, "--stage", "midis", "--limit", 2, "--export-midi", tmp_path / "examples", env=env)
    assert shown.returncode == 0, shown.stderr
    exported = sorted((tmp_path / "examples" / "midis").glob("*.mid"))
    assert len(exported) == 2
    assert all(Score(str(path)).note_num() > 0 for path in exported)
    # what the model trains on: the exported file tokenizes back to the piece's cached tokens
    data = PreparedData.open(out)
    pieces = data.pieces("midis", "train")
    for path, index in zip(exported, spread(len(pieces), 2), strict=True):
        assert path.name.endswith(pieces[index]["id"].split("/", 1)[-1].replace("/", "_") + ".mid")
        again = encode_score(data.tokenizer, piano_reduction(Score(str(path))))
        np.testing.assert_array_equal(again, data.piece_tokens("midis", "train", index))


def test_show_debug_curriculum_exports_every_stage(tmp_path):
    done = run("data", "show", REPO / "curricula" / "debug.toml", "--export-midi", tmp_path / "ex", "--limit", 1, "--plot", tmp_path / "d.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stages = sorted(p.name for p in (tmp_path / "ex").iterdir() if not p.name.startswith("."))
    assert stages == ["chorales", "etudes", "hanon", "scales"]
