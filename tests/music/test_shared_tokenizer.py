"""The MidiTok tokenizer of a shared model folder: written with MidiTok's save_pretrained, read
back offline, and compared with another tokenizer id by id."""

from __future__ import annotations

import json

import pytest

from curricmusic.common.errors import UserError
from curricmusic.config import TokenizerSettings
from curricmusic.music.shared_tokenizer import (
    load_folder_tokenizer,
    save_folder_tokenizer,
    vocabulary_difference,
)
from curricmusic.music.tokenizers import build_tokenizer


@pytest.fixture(scope="module")
def remi():
    return build_tokenizer(TokenizerSettings())


def test_a_saved_folder_tokenizer_reads_back_with_miditok_and_with_us(remi, tmp_path, monkeypatch):
    import miditok

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = save_folder_tokenizer(remi, tmp_path)
    assert path == tmp_path / "tokenizer.json" and json.loads(path.read_text())["tokenization"] == "REMI"
    assert miditok.REMI.from_pretrained(tmp_path).vocab == remi.vocab  # MidiTok's own Hub method, local folder
    assert load_folder_tokenizer(tmp_path).vocab == remi.vocab
    assert vocabulary_difference(load_folder_tokenizer(tmp_path), remi) is None


def test_vocabulary_differences_name_the_first_one(remi):
    fewer = build_tokenizer(TokenizerSettings(num_velocities=4))
    assert vocabulary_difference(fewer, remi) == "795 tokens where the experiment's tokenizer has 799; it lacks 'Velocity_111' and 3 more"
    assert vocabulary_difference(build_tokenizer(TokenizerSettings(kind="TSD")), remi) == "a TSD tokenizer where the experiment's is REMI"

    class Swapped:  # the same tokens, two of them with each other's ids
        vocab = {**remi.vocab, "Bar_None": remi.vocab["Position_0"], "Position_0": remi.vocab["Bar_None"]}

    Swapped.__name__ = "REMI"
    low = min(remi.vocab["Bar_None"], remi.vocab["Position_0"])
    first = next(t for t, i in remi.vocab.items() if i == low)
    assert vocabulary_difference(Swapped(), remi) == f"token {first!r} has id {Swapped.vocab[first]} where the experiment's tokenizer has {low}"


def test_a_folder_without_a_usable_tokenizer_is_one_line(remi, tmp_path):
    with pytest.raises(UserError, match=r"no tokenizer.json beside the model; save the model's MidiTok tokenizer there"):
        load_folder_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"tokenization": "Octuple", "config": {}}))
    with pytest.raises(UserError, match="a MidiTok Octuple tokenizer; curricmusic models use one of: REMI, TSD, MIDILike, Structured"):
        load_folder_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))  # a text tokenizer's file
    with pytest.raises(UserError, match="not a MidiTok tokenizer file"):
        load_folder_tokenizer(tmp_path)
