"""Every tokenizer kind a curriculum accepts works end to end: prepare, train (tiny), generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from symusic import Score

from curricmusic.common.run_folder import read_run
from curricmusic.config import load_experiment
from curricmusic.config.run_settings import settings_for_run
from curricmusic.generation.generate import generate_samples
from curricmusic.generation.output import SEAM_MARKER
from curricmusic.music.kinds import KINDS
from curricmusic.music.notes import make_notes, notes_to_score
from curricmusic.training.loop import train_run

CURRICULUM = """# A two-stage curriculum with one tokenizer kind.
#   curricmusic data prepare curriculum.toml
name = "kind_{kind}"
keys = ["C", "a"]
target_stage = "etudes"

[tokenizer]
kind = "{kind}"

[split]
val = 0.2
test = 0.0

[[stages]]
name = "scales"
source = "generated"
generator = "scales"
options = {{ max_pieces = 8 }}

[[stages]]
name = "etudes"
source = "generated"
generator = "etudes"
options = {{ pieces_per_key = 3, bars = [8] }}
"""

EXPERIMENT = """# A seconds-long experiment with one tokenizer kind.
#   curricmusic run experiment.toml
name = "kind_{kind}"
curriculum = "curriculum.toml"
seeds = [3]

[model]
size = "tiny"
d_model = 32
n_layers = 1
n_heads = 2
dropout = 0.0

[train]
tokens = 2048
seq_len = 64
batch_size = 4
eval_every = 8
log_every = 4
checkpoint_every = 8

[[arms]]
name = "random"
pacing = "random"

[generate]
n = 3
max_bars = 3
max_tokens = 160
batch_size = 2
"""


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_debug_experiment_with_each_kind_prepares_trains_and_generates_valid_midi(kind, tmp_path):
    (tmp_path / "curriculum.toml").write_text(CURRICULUM.format(kind=kind))
    (tmp_path / "experiment.toml").write_text(EXPERIMENT.format(kind=kind))
    experiment = load_experiment(tmp_path / "experiment.toml")
    run_dir = tmp_path / "run"
    train_run(experiment, "random", 3, run_dir, show_progress=False)
    assert json.loads((run_dir / "tokenizer.json").read_text())["curricmusic"]["settings"]["kind"] == kind
    settings, sources = settings_for_run(read_run(run_dir), {})
    assert settings.seed == 3 and sources["n"] == "experiment" and sources["top_p"] == "default"
    manifest = generate_samples(run_dir, tmp_path / "samples", settings, sources=sources, show_progress=False)
    assert manifest["tokenizer"] == kind
    assert manifest["constraints"]["grammar"] and manifest["constraints"]["copy_blocking"]
    assert manifest["constraints"]["notes"] == []
    assert len(manifest["samples"]) == 3
    for row in manifest["samples"]:
        score = Score(str(tmp_path / "samples" / row["file"]))  # a valid MIDI file
        assert score.note_num() == row["n_notes"]
        assert 0 <= row["n_bars"] <= 3 and row["n_tokens"] <= 160
        if score.note_num():
            onsets = np.array([n.time for t in score.tracks for n in t.notes]) / score.tpq
            bar = 4.0 * score.time_signatures[0].numerator / score.time_signatures[0].denominator if score.time_signatures else 4.0
            assert onsets.max() < 3 * bar  # bars counted from time agree with the decoded notes

    # continuing a 3/4 prompt at 72 qpm gives 3/4 at 72 qpm back, with the seam marked
    prompt = tmp_path / "waltz.mid"
    waltz = make_notes(np.arange(18) * 1.0, [1.0] * 18, 60 + (np.arange(18) * 5) % 12)  # 6 bars of 3/4
    prompt.write_bytes(notes_to_score(waltz, qpm=72, time_signature=(3, 4)).dumps_midi())
    settings, sources = settings_for_run(read_run(run_dir), {"prompt": prompt, "prompt_bars": 2, "n": 2})
    assert sources["prompt"] == "flag" and sources["max_bars"] == "experiment"
    manifest = generate_samples(run_dir, tmp_path / "continued", settings, sources=sources, show_progress=False)
    if KINDS[kind].time_signatures:
        assert manifest["warnings"] == []  # 3/4 at 72 qpm: the tokenizer writes both
    else:  # Structured writes neither, and says so
        assert len(manifest["warnings"]) == 1 and "drops the prompt's time signature 3/4" in manifest["warnings"][0]
        assert "tempo 72 qpm (this Structured tokenizer writes no tempos)" in manifest["warnings"][0]
    seam = manifest["seam"]
    assert seam["token_index"] == manifest["prompt_tokens"] - 1
    # where the prompt's tokens end: its last onset (bar 2, beat 3), or for MIDILike its last NoteOff
    ends = 6.0 if KINDS[kind].note_offs else 5.0
    assert seam["quarters"] == ends
    qpm = 72 if KINDS[kind].tempos else 120  # Structured keeps no tempo
    assert seam["seconds"] == pytest.approx(ends * 60 / qpm, abs=1e-3)
    for row in manifest["samples"]:
        score = Score(str(tmp_path / "continued" / row["file"]))
        assert [(m.time, m.text) for m in score.markers] == [(seam["tick"], SEAM_MARKER)]
        if KINDS[kind].time_signatures:
            assert {(t.numerator, t.denominator) for t in score.time_signatures} == {(3, 4)}
            assert {round(t.qpm, 3) for t in score.tempos} == {72.0}
        assert score.note_num() >= 6  # the prompt's two bars are kept
