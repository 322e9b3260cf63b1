"""New styles: a spread sample draws from every file of a corpus collection, not the first ones;
and a style's pieces are linked to a pretraining stage's at the tune level (any key, any rhythm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import curricmusic.data.sources as sources
from curricmusic.config import Music21Stage
from curricmusic.data.tunes import tune_fingerprint, tune_links
from curricmusic.music.notes import make_notes


def fake_collection(monkeypatch, tmp_path: Path, files: int = 5, tunes: int = 40) -> None:
    """A collection of ``files`` opus files of ``tunes`` tunes each, already converted."""
    paths = []
    for i in range(files):
        path = tmp_path / f"region{i}.abc"
        path.write_text(f"region {i}")
        paths.append(path)
    monkeypatch.setattr(sources, "music21_collection_files", lambda collection: paths)
    monkeypatch.setattr(sources, "_read_cached", lambda entry: None)
    monkeypatch.setattr(
        sources, "_convert_corpus_file", lambda path: [(f"{Path(path).stem}/{t}", b"midi") for t in range(tunes)]
    )
    monkeypatch.setattr(sources, "_write_cached", lambda entry, converted: None)
    monkeypatch.setattr(sources, "parts_rule", lambda collection, midi: None)


def test_a_spread_sample_comes_from_every_file_seeded_and_in_collection_order(monkeypatch, tmp_path):
    fake_collection(monkeypatch, tmp_path)
    stage = Music21Stage(name="folk", source="music21", collection="essen_folksong", limit=50, sample="spread")
    first = Music21Stage(name="folk", source="music21", collection="essen_folksong", limit=50)
    spread = sources.music21_items(stage, seed=3)
    files = {item.piece_id.split("/")[1] for item in spread}
    assert len(spread) == 50 and files == {f"region{i}" for i in range(5)}  # every region
    assert {item.piece_id.split("/")[1] for item in sources.music21_items(first)} == {"region0", "region1"}  # the first files
    every = [item.piece_id for item in sources.music21_items(stage.model_copy(update={"limit": None}))]
    positions = [every.index(item.piece_id) for item in spread]
    assert positions == sorted(positions)  # collection order kept
    assert [i.piece_id for i in sources.music21_items(stage, seed=3)] == [i.piece_id for i in spread]  # seeded
    assert [i.piece_id for i in sources.music21_items(stage, seed=4)] != [i.piece_id for i in spread]


def _melody(pitches, durations=None):
    durations = durations or [1.0] * len(pitches)
    onsets = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return make_notes(onsets, durations, pitches)


def test_a_style_piece_is_linked_to_a_pretraining_tune_in_any_key_and_rhythm():
    tune = [60, 62, 64, 65, 67, 69, 67, 65, 64, 62, 60, 59, 60]
    other = [60, 67, 63, 70, 61, 66, 72, 58, 64, 71, 62, 69, 55]
    pretraining = [tune_fingerprint(_melody(other)), tune_fingerprint(_melody(tune))]
    style = [
        tune_fingerprint(_melody([p + 5 for p in tune], [0.5] * len(tune))),  # transposed, re-timed: one tune
        tune_fingerprint(_melody([60, 61, 63, 66, 70, 75, 81, 74, 68, 63, 59, 56, 54])),  # a new tune
    ]
    assert tune_links(style, pretraining).tolist() == [1, -1]
    assert tune_links(style, []).tolist() == [-1, -1] and tune_links([], pretraining).tolist() == []
