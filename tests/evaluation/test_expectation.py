"""The expected pitch-class profile: the note-token table, exact profiles on tiny fixtures, and the
model's profile equal to one computed from its full logits, however the pieces are batched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curricmusic.evaluation.expectation import (
    expected_pitch_classes,
    heard_pitch_classes,
    neighbour_pitch_classes,
    pitch_class_table,
)
from curricmusic.model import ModelConfig, MusicTransformer

VOCAB = {
    "PAD_None": 0,
    "Bar_None": 1,
    "Position_0": 2,
    "Pitch_60": 3,
    "Pitch_62": 4,
    "NoteOn_61": 5,
    "PitchDrum_36": 6,
    "Pitch_71": 7,
}
BAR, POS, C4, D4, CS4, B4 = 1, 2, 3, 4, 5, 7


def test_the_table_names_the_pitch_class_of_every_note_token_and_nothing_else():
    table = pitch_class_table(VOCAB, 9)  # one id past the vocabulary: no token, no class
    assert table.tolist() == [-1, -1, -1, 0, 2, 1, -1, 11, -1]


def test_heard_profile_counts_the_notes_after_the_first_token_within_the_window():
    table = pitch_class_table(VOCAB, 8)
    pieces = [
        np.array([C4, POS, D4, POS, C4, POS, B4]),  # C4 opens the piece: no prediction for it
        np.array([BAR, POS, BAR]),  # no note: uniform
        np.array([BAR, C4, D4, D4, B4]),  # seq_len 3 keeps C4 and D4 only
    ]
    heard = heard_pitch_classes(pieces, 3, table)
    assert heard[1] == pytest.approx(np.full(12, 1 / 12))
    assert heard[2] == pytest.approx(np.eye(12)[[0, 2]].mean(axis=0))
    full = heard_pitch_classes(pieces[:1], 7, table)[0]
    assert full == pytest.approx((np.eye(12)[2] + np.eye(12)[0] + np.eye(12)[11]) / 3)


def test_neighbour_profile_spreads_each_prediction_around_the_last_note():
    table = pitch_class_table(VOCAB, 8)
    piece = np.array(
        [BAR, C4, POS, D4, POS, B4]
    )  # predictions before D4 (last note C4) and B4 (last D4)
    around_c = np.zeros(12)
    around_c[[10, 11, 0, 1, 2]] = 0.2
    around_d = np.zeros(12)
    around_d[[0, 1, 2, 3, 4]] = 0.2
    assert neighbour_pitch_classes([piece], 6, table)[0] == pytest.approx((around_c + around_d) / 2)
    assert neighbour_pitch_classes([piece], 6, table, reach=0)[0] == pytest.approx(
        (np.eye(12)[0] + np.eye(12)[2]) / 2
    )
    assert neighbour_pitch_classes([np.array([BAR, C4])], 6, table)[0] == pytest.approx(
        np.full(12, 1 / 12)
    )  # no note before it
    with pytest.raises(ValueError, match="reach"):
        neighbour_pitch_classes([piece], 6, table, reach=6)


def _by_hand(model: MusicTransformer, piece: np.ndarray, table: np.ndarray) -> np.ndarray:
    """The profile from the full logits of one unpadded piece: softmax over the whole vocabulary,
    kept on the note tokens and renormalised, folded to classes, averaged over note positions."""
    logits, _ = model(torch.from_numpy(piece[None].astype(np.int64)))  # (1, T, V)
    probs = torch.softmax(logits[0].double(), dim=-1).detach().numpy()
    rows = []
    for t in range(len(piece) - 1):
        if table[piece[t + 1]] >= 0:
            notes = np.where(table >= 0, probs[t], 0.0)
            rows.append(
                np.bincount(table[table >= 0], weights=notes[table >= 0], minlength=12)
                / notes.sum()
            )
    return np.mean(rows, axis=0)


def test_model_profile_equals_the_one_from_its_full_logits_however_batched():
    torch.manual_seed(0)
    model = MusicTransformer(
        ModelConfig(vocab_size=8, max_seq_len=16, d_model=16, n_layers=1, n_heads=2)
    )
    with torch.no_grad():
        model.tok_emb.weight.mul_(40.0)  # far from uniform, so a wrong fold or mask shows
    table = pitch_class_table(VOCAB, 8)
    rng = np.random.default_rng(0)
    pieces = [rng.integers(1, 8, size=n) for n in (9, 4, 12, 6)]  # ragged: padding must not leak
    expected = np.stack([_by_hand(model, p, table) for p in pieces])
    for batch_size in (1, 3, 32):
        got = expected_pitch_classes(model, pieces, 16, table, batch_size=batch_size)
        assert got == pytest.approx(expected, abs=1e-5)
        assert got.sum(axis=1) == pytest.approx(np.ones(4))
    assert np.abs(expected - 1 / 12).max() > 0.05


def test_a_vocabulary_without_note_tokens_is_refused():
    model = MusicTransformer(
        ModelConfig(vocab_size=8, max_seq_len=16, d_model=16, n_layers=1, n_heads=2)
    )
    with pytest.raises(ValueError, match="no pitch tokens"):
        expected_pitch_classes(model, [np.array([1, 2, 1])], 16, np.full(8, -1))
