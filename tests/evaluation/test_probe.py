"""The linear probe: exact folds and labels, recovery of a planted label, chance on noise, pooling."""

from __future__ import annotations

import numpy as np
import torch

from curricmusic.evaluation.probe import (
    _stratified_folds,
    cross_validated_accuracy,
    key_label,
    meter_label,
    pooled_features,
    probe_pieces,
)
from curricmusic.model import ModelConfig, MusicTransformer
from curricmusic.music.notes import make_notes


def test_folds_deal_every_class_round_robin():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    fold = _stratified_folds(labels, 3, seed=0)
    for label in (0, 1, 2):
        counts = np.bincount(fold[labels == label], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.bincount(fold, minlength=3).tolist() in ([4, 3, 3], [3, 4, 3], [3, 3, 4])


def test_a_planted_label_is_recovered_and_noise_stays_at_chance():
    rng = np.random.default_rng(0)
    labels = [f"k{i % 6}" for i in range(120)]
    one_hot = np.eye(6)[[i % 6 for i in range(120)]]
    planted = np.hstack([one_hot * 2.0, rng.normal(size=(120, 10))]) + rng.normal(scale=0.1, size=(120, 16))
    accuracy, chance, folds = cross_validated_accuracy(planted, labels)
    assert (accuracy, chance, folds) == (1.0, 20 / 120, 5)
    noise = rng.normal(size=(120, 16))
    accuracy, chance, _ = cross_validated_accuracy(noise, labels)
    assert accuracy < chance + 0.15


def test_labels_come_from_the_generator_or_the_key_estimate():
    assert key_label({"meta": {"key": "f#"}}, make_notes([], [], [])) == "F# minor"
    c_major = make_notes([0, 1, 2, 3, 4, 5, 6, 7], [1] * 8, [60, 62, 64, 65, 67, 69, 71, 72])
    assert key_label({"meta": {}}, c_major) == "C major"
    assert key_label({}, make_notes([], [], [])) is None
    assert meter_label({"meta": {"time_signature": "3/4"}, "bar_len": 3.0}) == "3/4"
    assert meter_label({"meta": {}, "bar_len": 3.0}) == "3q"
    assert meter_label({"meta": {}}) is None


def test_structure_pooling_averages_only_the_kept_positions():
    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=12, max_seq_len=16, d_model=16, n_layers=1, n_heads=2))
    pieces = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9])]
    keep = np.zeros(12, dtype=bool)
    keep[[2, 4, 8]] = True
    pooled = pooled_features(model, pieces, seq_len=4, keep=keep)  # (2, 16)
    with torch.no_grad():
        first = model.hidden_states(torch.tensor([[1, 2, 3, 4]]))[0]
        second = model.hidden_states(torch.tensor([[7, 8, 9]]))[0]
    np.testing.assert_allclose(pooled[0], first[[1, 3]].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(pooled[1], second[[1]].mean(0).numpy(), atol=1e-6)
    nothing_kept = pooled_features(model, pieces[1:], seq_len=4, keep=np.zeros(12, dtype=bool))
    np.testing.assert_allclose(nothing_kept[0], second.mean(0).numpy(), atol=1e-6)


def test_probe_pieces_skips_unknown_labels():
    torch.manual_seed(0)
    model = MusicTransformer(ModelConfig(vocab_size=12, max_seq_len=16, d_model=16, n_layers=1, n_heads=2))
    pieces = [np.array([1 + i % 10, 2, 3]) for i in range(12)]
    labels = {"key": ["a" if i % 2 else "b" for i in range(12)], "meter": [None] * 11 + ["3/4"]}
    key, meter = probe_pieces(model, pieces, labels, seq_len=8)
    assert (key.task, key.n_pieces, key.n_classes) == ("key", 12, 2)
    assert (meter.n_pieces, meter.n_classes, meter.folds) == (1, 1, 0)
