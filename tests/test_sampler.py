"""Training windows: shifted targets, padding ignored, eligibility, piece weighting, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from curricmusic.config import curriculum_from_midi_dir
from curricmusic.curriculum.pacing import Mixture
from curricmusic.curriculum.windows import IGNORE_INDEX, WindowSampler, eval_windows
from curricmusic.data.prepare import prepare
from tests.helpers import melody_midi


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampler")
    folder = root / "midi"
    folder.mkdir()
    for i, n in enumerate([10, 12, 30, 60, 90, 120, 150, 200]):  # pieces of very different lengths
        (folder / f"m{i}.mid").write_bytes(melody_midi(i, n_notes=n))
    base = curriculum_from_midi_dir(folder)
    config = base.model_copy(update={"split": base.split.model_copy(update={"val": 0.0, "test": 0.0})})
    return prepare(config, root / "prep", show_progress=False).data


def test_windows_are_shifted_and_padding_is_ignored(data):
    stage = data.stage_names[0]
    sampler = WindowSampler(data, [stage], seq_len=64)
    rng = np.random.default_rng(0)
    refs = sampler.draw(rng, 64, Mixture(np.array([1.0])))
    inputs, targets = sampler.gather(refs)
    assert inputs.shape == targets.shape == (64, 64)
    valid = targets != IGNORE_INDEX
    np.testing.assert_array_equal(valid.sum(axis=1), sampler.valid_targets(refs))
    tokens = np.asarray(data.tokens(stage, "train"))
    offsets = data.offsets(stage, "train")
    for row in range(64):
        start = offsets[refs.piece[row]] + refs.start[row]
        n = int(valid[row].sum())
        np.testing.assert_array_equal(inputs[row, :n], tokens[start : start + n])
        np.testing.assert_array_equal(targets[row, :n], tokens[start + 1 : start + n + 1])
        assert n == 64 or start + n + 1 == offsets[refs.piece[row] + 1]  # short only at a piece's end


def test_same_generator_state_same_batch(data):
    sampler = WindowSampler(data, data.stage_names, seq_len=32)
    a = sampler.draw(np.random.default_rng(5), 16, Mixture(np.array([1.0])))
    b = sampler.draw(np.random.default_rng(5), 16, Mixture(np.array([1.0])))
    np.testing.assert_array_equal(a.piece, b.piece)
    np.testing.assert_array_equal(a.start, b.start)


def test_competence_draws_only_eligible_pieces_uniformly(data):
    stage = data.stage_names[0]
    n = len(data.pieces(stage, "train"))
    ranks = np.arange(n)[::-1].copy()  # the hardest stored piece ranks first
    sampler = WindowSampler(data, [stage], seq_len=32, ranks=[ranks])
    refs = sampler.draw(np.random.default_rng(1), 30_000, Mixture(np.array([1.0]), rank_limit=3))
    pieces, counts = np.unique(refs.piece, return_counts=True)
    assert sorted(pieces.tolist()) == sorted(np.flatnonzero(ranks < 3).tolist())
    np.testing.assert_allclose(counts / counts.sum(), 1 / 3, atol=0.02)


def test_stage_pacings_draw_pieces_in_proportion_to_their_windows(data):
    stage = data.stage_names[0]
    sampler = WindowSampler(data, [stage], seq_len=32)
    refs = sampler.draw(np.random.default_rng(2), 50_000, Mixture(np.array([1.0])))
    lengths = np.diff(data.offsets(stage, "train"))
    expected = np.maximum(1, lengths - 32) / np.maximum(1, lengths - 32).sum()
    observed = np.bincount(refs.piece, minlength=lengths.size) / 50_000
    np.testing.assert_allclose(observed, expected, atol=0.01)


def test_eval_windows_are_fixed_round_robin_and_non_overlapping(data, tmp_path):
    stage = data.stage_names[0]
    first = eval_windows(data, stage, seq_len=32, limit=12, split="train")
    second = eval_windows(data, stage, seq_len=32, limit=12, split="train")
    np.testing.assert_array_equal(first[0], second[0])
    assert first[0].shape == (12, 32)
    # the first window of every piece comes first: each starts with BOS
    bos = data.tokenizer.vocab["BOS_None"]
    n_pieces = len(data.pieces(stage, "train"))
    assert (first[0][:n_pieces, 0] == bos).all()
    empty_inputs, _ = eval_windows(data, stage, seq_len=32, limit=4, split="val")
    assert empty_inputs.shape == (0, 32)
