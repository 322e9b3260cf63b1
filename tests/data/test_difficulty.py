"""Difficulty features on tiny hand-written pieces, with the arithmetic in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.data.difficulty import (
    DIFFICULTY_SCALES,
    DIFFICULTY_WEIGHTS,
    FEATURE_NAMES,
    difficulty_features,
    difficulty_score,
)
from curricmusic.music.notes import NOTE_DTYPE, make_notes

C_MAJOR_SCALE = make_notes(range(8), [1] * 8, [60, 62, 64, 65, 67, 69, 71, 72])

# A held bass note under a chord, a passing note, and a zero-length note at the end:
#   onset  dur  pitch
#   0      2    48      (bass, held to 2)
#   0      1    60, 64  (chord)
#   1      1    62
#   1.5    0.5  67
#   2      0    72      (zero length: sounds at its own onset only)
TEXTURE = make_notes([0, 0, 0, 1, 1.5, 2], [2, 1, 1, 1, 0.5, 0], [48, 60, 64, 62, 67, 72])


def test_c_major_scale_features():
    f = difficulty_features(C_MAJOR_SCALE)
    # 8 notes over offsets 0..8 -> 8 / 8
    assert f["note_density"] == 1.0
    # 72 - 60
    assert f["pitch_range"] == 12.0
    # one note sounding at each of the 8 onsets
    assert f["polyphony"] == 1.0
    # steps 2 2 1 2 2 2 1 -> 12 / 7
    assert f["mean_abs_interval"] == pytest.approx(12 / 7)
    # every IOI is one quarter (class 12) -> entropy 0
    assert f["ioi_entropy"] == 0.0
    # C twice, six other classes once: P = 2/8, 6 x 1/8 -> 0.25*2 + 6 * 0.125*3 = 2.75 bits
    assert f["pitch_class_entropy"] == pytest.approx(2.75)


def test_texture_features():
    f = difficulty_features(TEXTURE)
    # 6 notes over offsets 0..2 -> 6 / 2
    assert f["note_density"] == 3.0
    # 72 - 48
    assert f["pitch_range"] == 24.0
    # sounding at t=0: 48 60 64 (3); t=1: 48 62 (2: 60 and 64 ended at 1);
    # t=1.5: 48 62 67 (3); t=2: only the zero-length 72 (1: everything else ends at 2)
    # -> (3 + 2 + 3 + 1) / 4
    assert f["polyphony"] == 2.25
    # highest starting pitch per onset: 64, 62, 67, 72 -> (2 + 5 + 5) / 3
    assert f["mean_abs_interval"] == 4.0
    # IOIs 1, 0.5, 0.5 -> classes 12, 6, 6 -> P = 1/3, 2/3
    # H = -(1/3 log2 1/3 + 2/3 log2 2/3) = log2(3) - 2/3
    assert f["ioi_entropy"] == pytest.approx(math.log2(3) - 2 / 3)
    # pitch classes 0 (48, 60, 72), 4, 2, 7 -> P = 1/2, 1/6, 1/6, 1/6
    # H = 1/2 * 1 + 3 * (1/6) log2 6 = 0.5 + 0.5 log2 6
    assert f["pitch_class_entropy"] == pytest.approx(0.5 + 0.5 * math.log2(6))


def test_triplets_with_float_noise_are_one_onset_each():
    third = 1 / 3
    onsets = [0, third, 2 * third, third + 2 * third, third + 1e-9]  # 1/3 + 2/3 may be 1 + eps
    notes = make_notes(onsets, [third] * 5, [60, 62, 64, 65, 55])
    f = difficulty_features(notes)
    # onsets 0, 1/3 (62 and 55 together), 2/3, 1 -> IOIs 1/3 x 3 -> class 4 only
    assert f["ioi_entropy"] == 0.0
    # tops 60, 62, 64, 65 -> (2 + 2 + 1) / 3
    assert f["mean_abs_interval"] == pytest.approx(5 / 3)
    # each triplet ends exactly where the next starts: at 1/3 two notes sound, else one
    # -> (1 + 2 + 1 + 1) / 4
    assert f["polyphony"] == pytest.approx(5 / 4)


def test_ioi_quantised_to_twelfths():
    # IOIs 0.25 (class 3), 0.26 (class round(3.12) = 3), 0.5 (class 6) -> P = 2/3, 1/3
    notes = make_notes([0, 0.25, 0.51, 1.01], [0.25] * 4, [60, 60, 60, 60])
    assert difficulty_features(notes)["ioi_entropy"] == pytest.approx(math.log2(3) - 2 / 3)


def test_order_of_input_does_not_matter():
    shuffled = TEXTURE[[4, 2, 5, 0, 3, 1]]
    assert difficulty_features(shuffled) == difficulty_features(TEXTURE)


def test_empty_piece_is_all_nan():
    f = difficulty_features(np.empty(0, dtype=NOTE_DTYPE))
    assert set(f) == set(FEATURE_NAMES)
    assert all(math.isnan(v) for v in f.values())


def test_one_note_piece():
    f = difficulty_features(make_notes([1.0], [0.5], [67]))
    assert f["note_density"] == 2.0  # 1 note / 0.5 quarter
    assert f["pitch_range"] == 0.0
    assert f["polyphony"] == 1.0
    assert f["pitch_class_entropy"] == 0.0
    # no interval between onsets exists
    assert math.isnan(f["mean_abs_interval"])
    assert math.isnan(f["ioi_entropy"])


def test_zero_span_density_is_nan():
    f = difficulty_features(make_notes([2, 2], [0, 0], [60, 64]))
    assert math.isnan(f["note_density"])
    assert f["polyphony"] == 2.0  # zero-length notes sound at their own onset


def test_tables_are_consistent():
    assert tuple(DIFFICULTY_SCALES) == FEATURE_NAMES
    assert tuple(DIFFICULTY_WEIGHTS) == FEATURE_NAMES
    assert sum(DIFFICULTY_WEIGHTS.values()) == pytest.approx(1.0)
    with pytest.raises(TypeError):
        DIFFICULTY_WEIGHTS["note_density"] = 1.0  # type: ignore[index]


def test_score_of_c_major_scale_by_hand():
    # 0.25 * 1/8 + 0.15 * 12/60 + 0.20 * 0 + 0.15 * (12/7)/12 + 0.15 * 0 + 0.10 * 2.75/log2(12)
    expected = 0.25 / 8 + 0.15 * 0.2 + 0.15 / 7 + 0.10 * 2.75 / math.log2(12)
    assert difficulty_score(difficulty_features(C_MAJOR_SCALE)) == pytest.approx(expected)


def test_score_nan_counts_as_zero_and_clips():
    assert difficulty_score(dict.fromkeys(FEATURE_NAMES, float("nan"))) == 0.0
    assert difficulty_score(dict.fromkeys(FEATURE_NAMES, 1e9)) == pytest.approx(1.0)
    assert difficulty_score(dict.fromkeys(FEATURE_NAMES, -5.0)) == 0.0
    with pytest.raises(KeyError, match="polyphony"):
        difficulty_score({k: 0.0 for k in FEATURE_NAMES if k != "polyphony"})


def test_fast_chromatic_run_with_chords_is_harder_than_a_scale():
    # sixteenths climbing chromatically over two octaves, a three-note chord on every beat
    run = np.arange(48)
    onsets = np.concatenate([run * 0.25, np.repeat(np.arange(12.0), 3)])
    pitches = np.concatenate([60 + (run % 25), np.tile([36, 43, 52], 12)])
    durations = np.concatenate([np.full(48, 0.25), np.full(36, 1.0)])
    hard = difficulty_features(make_notes(onsets, durations, pitches))
    easy = difficulty_features(C_MAJOR_SCALE)
    assert hard["note_density"] > easy["note_density"]
    assert hard["polyphony"] > easy["polyphony"]
    assert difficulty_score(hard) > difficulty_score(easy) + 0.2


@pytest.mark.parametrize("seed", range(5))
def test_score_in_unit_interval(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 200))
    notes = make_notes(
        rng.integers(0, 64, n) / 4, rng.integers(0, 8, n) / 4, rng.integers(21, 109, n)
    )
    score = difficulty_score(difficulty_features(notes))
    assert 0.0 <= score <= 1.0
