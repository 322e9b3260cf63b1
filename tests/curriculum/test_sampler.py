"""Training windows from packed stages (every real token equally likely, no padding) and held-out
windows that score every token once."""

from __future__ import annotations

import numpy as np
import pytest

from curricmusic.config import curriculum_from_midi_dir
from curricmusic.curriculum.heldout import heldout_windows, piece_windows
from curricmusic.curriculum.pacing import Mixture
from curricmusic.curriculum.windows import IGNORE_INDEX, PackedStage, WindowSampler
from curricmusic.data.prepare import prepare
from tests.helpers import melody_midi

LENGTHS = [10, 12, 30, 60, 90, 120, 150, 200]  # notes per piece: very different token counts


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampler")
    folder = root / "midi"
    folder.mkdir()
    for i, n in enumerate(LENGTHS):
        (folder / f"m{i}.mid").write_bytes(melody_midi(i, n_notes=n))
    base = curriculum_from_midi_dir(folder)
    config = base.model_copy(update={"split": base.split.model_copy(update={"val": 0.0, "test": 0.0})})
    return prepare(config, root / "prep", show_progress=False).data


def stream(data, stage, order=None):
    """The stage's packed stream, built the slow way: pieces back to back in ``order``."""
    tokens = np.asarray(data.tokens(stage, "train")).astype(np.int64)
    offsets = data.offsets(stage, "train")
    order = range(len(offsets) - 1) if order is None else order
    return np.concatenate([tokens[offsets[i] : offsets[i + 1]] for i in order])


def test_windows_are_consecutive_stream_tokens_shifted_and_never_padded(data):
    stage = data.stage_names[0]
    sampler = WindowSampler(data, [stage], seq_len=64)
    refs = sampler.draw(np.random.default_rng(0), np.array([64]), Mixture(np.array([1.0])))
    inputs, targets = sampler.gather(refs)
    assert inputs.shape == targets.shape == (64, 64)
    assert not (targets == IGNORE_INDEX).any()
    packed = stream(data, stage)
    bos = data.tokenizer.vocab["BOS_None"]
    assert packed[0] == bos and (packed == bos).sum() == len(LENGTHS)  # each piece keeps its BOS
    for row in range(64):
        positions = (refs.start[row] + np.arange(65)) % packed.shape[0]  # circular
        np.testing.assert_array_equal(inputs[row], packed[positions[:-1]])
        np.testing.assert_array_equal(targets[row], packed[positions[1:]])


def test_every_real_token_is_drawn_in_proportion_whatever_its_piece_length(data):
    """A planted short piece gets its share of the targets (within 10% over a long run); before
    packing a piece's weight was max(1, length - seq_len), which starved short pieces."""
    stage = data.stage_names[0]
    lengths = np.diff(data.offsets(stage, "train"))
    seq_len = 64
    assert lengths.min() < seq_len < lengths.max()  # short pieces beside long ones
    sampler = WindowSampler(data, [stage], seq_len=seq_len)
    refs = sampler.draw(np.random.default_rng(2), np.array([40_000]), Mixture(np.array([1.0])))
    total = int(lengths.sum())
    hits = np.zeros(total, dtype=np.int64)  # how often each stream position is a target
    for start in refs.start:
        np.add.at(hits, (start + 1 + np.arange(seq_len)) % total, 1)
    piece_of = np.repeat(np.arange(lengths.shape[0]), lengths)
    share = np.bincount(piece_of, weights=hits) / hits.sum()
    np.testing.assert_allclose(share / (lengths / total), 1.0, rtol=0.10)
    shortest = int(np.argmin(lengths))
    assert abs(share[shortest] / (lengths[shortest] / total) - 1) < 0.10


def test_a_step_can_draw_shorter_windows(data):
    """The seam for sequence-length warm-up: a mixture's seq_len sets the step's window length."""
    sampler = WindowSampler(data, data.stage_names, seq_len=64)
    refs = sampler.draw(np.random.default_rng(3), np.array([5]), Mixture(np.array([1.0]), seq_len=16))
    inputs, targets = sampler.gather(refs)
    assert inputs.shape == targets.shape == (5, 16) and refs.length == 16
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    with pytest.raises(ValueError, match="window length"):
        sampler.draw(np.random.default_rng(3), np.array([5]), Mixture(np.array([1.0]), seq_len=65))


def test_same_generator_state_same_batch(data):
    sampler = WindowSampler(data, data.stage_names, seq_len=32)
    a = sampler.draw(np.random.default_rng(5), np.array([16]), Mixture(np.array([1.0])))
    b = sampler.draw(np.random.default_rng(5), np.array([16]), Mixture(np.array([1.0])))
    np.testing.assert_array_equal(a.start, b.start)
    np.testing.assert_array_equal(sampler.gather(a)[0], sampler.gather(b)[0])


def test_competence_draws_from_the_eligible_prefix_in_rank_order(data):
    stage = data.stage_names[0]
    n = len(data.pieces(stage, "train"))
    ranks = np.arange(n)[::-1].copy()  # the hardest stored piece ranks first
    sampler = WindowSampler(data, [stage], seq_len=32, ranks=[ranks])
    refs = sampler.draw(np.random.default_rng(1), np.array([2000]), Mixture(np.array([1.0]), rank_limit=3))
    order = np.argsort(ranks)  # stored pieces in rank order
    packed = stream(data, stage, order)
    lengths = np.diff(data.offsets(stage, "train"))
    prefix = int(lengths[order[:3]].sum())
    assert refs.prefix.tolist() == [prefix] * 2000 and refs.start.max() < prefix
    inputs, targets = sampler.gather(refs)
    for row in range(0, 2000, 97):
        positions = (refs.start[row] + np.arange(33)) % prefix
        np.testing.assert_array_equal(inputs[row], packed[positions[:-1]])
    # the starts are uniform over the prefix's tokens
    observed = np.bincount(refs.start * 4 // prefix, minlength=4) / 2000
    np.testing.assert_allclose(observed, 0.25, atol=0.05)


def test_a_stage_shorter_than_a_window_wraps_and_every_target_is_real():
    tokens = np.array([1, 5, 6, 2, 1, 7, 2], dtype=np.uint16)  # two pieces: [BOS 5 6 EOS] [BOS 7 EOS]
    packed = PackedStage(tokens, np.array([0, 4, 7]), ranks=np.array([1, 0]))
    assert packed.read(np.arange(7)).tolist() == [1, 7, 2, 1, 5, 6, 2]  # rank order
    assert packed.prefix(1) == 3 and packed.prefix(None) == 7
    assert packed.read(np.arange(10) % packed.prefix(1)).tolist() == [1, 7, 2, 1, 7, 2, 1, 7, 2, 1]


@pytest.mark.parametrize("seq_len,stride", [(8, 8), (8, 3), (8, 1), (5, 2)])
def test_heldout_windows_score_every_target_once_with_the_documented_context(seq_len, stride):
    for length in [1, 2, 3, 8, 9, 10, 17, 40, 41]:
        scored = []
        for first, stop, start_scoring in piece_windows(length, seq_len, stride):
            assert stop - first <= seq_len and first >= 0 and stop <= length - 1
            if length - 1 > seq_len:
                assert stop - first == seq_len  # long pieces: every window full
            for j in range(max(first + 1, start_scoring), stop + 1):
                scored.append(j)
                if j > seq_len and stop < length - 1:
                    expected_end = seq_len + stride * -(-(j - seq_len) // stride)
                    assert stop == expected_end
                assert j - first >= min(j, seq_len - stride + 1)  # context: at least seq_len - stride
        assert sorted(scored) == list(range(1, length)), (length, scored)


def test_heldout_windows_of_a_split_cover_all_its_tokens(data):
    stage = data.stage_names[0]
    lengths = np.diff(data.offsets(stage, "train"))
    held = heldout_windows(data, stage, "train", seq_len=32, stride=16)
    assert held.n_targets == int((lengths - 1).sum())
    assert np.all(np.diff(held.lengths) <= 0)  # longest first
    assert (held.targets != IGNORE_INDEX).sum() == held.n_targets
    again = heldout_windows(data, stage, "train", seq_len=32, stride=16)
    np.testing.assert_array_equal(held.inputs, again.inputs)  # the same windows every time
    empty = heldout_windows(data, stage, "val", seq_len=32, stride=16)
    assert len(empty) == 0 and empty.n_targets == 0
