"""MIDI -> tokens -> MIDI round trips on real music21 corpus pieces, and tokenizer identity."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Score

from curricmusic.common.errors import UserError
from curricmusic.config import Music21Stage, TokenizerSettings
from curricmusic.data.sources import music21_items
from curricmusic.music.notes import piano_reduction, score_notes
from curricmusic.music.tokenizers import (
    build_tokenizer,
    decode_ids,
    encode_score,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    tokenizer_hash,
)

CORPUS = [("bach_chorales", 0), ("bach_chorales", 1), ("bach_chorales", 2), ("bach_chorales", 3), ("ryans_mammoth", 0), ("ryans_mammoth", 1)]


@pytest.fixture(scope="module")
def corpus_items():
    """Real corpus pieces, converted inside the tests' own cache (not at import time)."""
    return {
        name: music21_items(Music21Stage(name=name, source="music21", collection=name, limit=4))
        for name in ("bach_chorales", "ryans_mammoth")
    }


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(TokenizerSettings())


@pytest.mark.parametrize(("collection", "index"), CORPUS)
def test_round_trip_keeps_every_note(collection, index, corpus_items, tokenizer):
    item = corpus_items[collection][index]
    original = piano_reduction(Score.from_midi(item.midi))
    ids = encode_score(tokenizer, original)
    specials = special_ids(tokenizer)
    assert ids[0] == specials["BOS"] and ids[-1] == specials["EOS"]
    assert ids.dtype == np.uint16
    decoded = decode_ids(tokenizer, ids)
    before, after = score_notes(original), score_notes(decoded)
    assert before.shape == after.shape
    # corpus pieces sit on the 1/24-beat grid (32nds and triplets): onsets and pitches come back exactly
    np.testing.assert_allclose(after["onset"], before["onset"] - before["onset"][0] + after["onset"][0], atol=1e-6)
    np.testing.assert_array_equal(np.sort(after["pitch"]), np.sort(before["pitch"]))
    short = before["duration"] <= 4
    np.testing.assert_allclose(after["duration"][short], before["duration"][short], atol=1 / 24 + 1e-6)


def test_saved_tokenizer_loads_with_same_vocab_and_hash(tmp_path):
    settings = TokenizerSettings(num_velocities=16)
    path = save_tokenizer(settings, tmp_path / "tokenizer.json")
    tokenizer, loaded = load_tokenizer(path)
    assert loaded == settings
    assert tokenizer.vocab == build_tokenizer(settings).vocab
    assert tokenizer_hash(loaded) == tokenizer_hash(settings)
    assert tokenizer_hash(TokenizerSettings(num_velocities=8)) != tokenizer_hash(settings)


def test_load_tokenizer_rejects_other_files(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"something": "else"}')
    with pytest.raises(UserError, match="not a curricmusic tokenizer"):
        load_tokenizer(bad)
    with pytest.raises(UserError, match="not found"):
        load_tokenizer(tmp_path / "missing.json")


def test_music21_conversions_are_cached_by_content(monkeypatch, tmp_path):
    import curricmusic.data.sources as sources

    monkeypatch.setenv("CURRICMUSIC_CACHE", str(tmp_path))  # an empty cache
    calls = []
    real = sources._convert_corpus_file

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(sources, "_convert_corpus_file", counting)
    stage = Music21Stage(name="c", source="music21", collection="bach_chorales", limit=3)
    first = music21_items(stage)
    assert len(calls) == 3
    second = music21_items(stage)
    assert len(calls) == 3  # the second time nothing is parsed again
    assert [i.midi for i in first] == [i.midi for i in second]
