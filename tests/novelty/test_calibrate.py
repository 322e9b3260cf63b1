"""The flag's calibration parts by hand: stratified rho, the calibrated threshold, separation AUC, probes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.music.notes import make_notes
from curricmusic.novelty.calibrate import fresh_melody, probe_copy, probe_indices
from curricmusic.novelty.score import calibrated_threshold, separation_auc, stratified_ratio


def test_stratified_ratio_divides_by_the_median_of_the_nearest_stage():
    heldout_d = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5])
    heldout_stage = np.array(["scales"] * 5 + ["chorales"] * 5 + ["etudes"])
    rho, medians = stratified_ratio(np.array([0.03, 0.3, 0.3]), np.array(["scales", "chorales", "etudes"]), heldout_d, heldout_stage)
    assert medians["scales"] == 0.03 and medians["chorales"] == 0.6 and "etudes" not in medians  # 1 piece < 5
    assert medians["*"] == 0.2  # pooled median of all 11
    assert rho.tolist() == pytest.approx([1.0, 0.5, 1.5])
    # a pooled median would have called the scale-near sample a copy: 0.03 / 0.2 = 0.15
    only_pooled, _ = stratified_ratio(np.array([0.03]), np.array(["scales"]), heldout_d, heldout_stage, min_pieces=6)
    assert only_pooled.tolist() == pytest.approx([0.15])


def test_calibrated_threshold_and_separation_auc():
    assert calibrated_threshold(np.arange(101.0), 0.02) == pytest.approx(2.0)
    assert calibrated_threshold([math.nan, 1.0, 3.0], 0.5) == 2.0
    with pytest.raises(ValueError, match="quantile"):
        calibrated_threshold([1.0], 0.0)
    assert separation_auc([0.1, 0.2], [0.5, 0.6, 0.7]) == 1.0  # every copy closer
    assert separation_auc([1.5, 2.0], [0.5, 0.6]) == 0.0  # copies farther: this embedder cannot flag
    # pairs: (0.5 vs 0.5) tie = 1/2, (0.5 < 0.9) = 1, (1.0 vs 0.5) = 0, (1.0 > 0.9) = 0 -> 1.5 / 4
    assert separation_auc([0.5, 1.0], [0.5, 0.9]) == 0.375
    assert math.isnan(separation_auc([], [1.0]))


def test_probes_are_transposed_retimed_copies_and_fresh_melodies_are_seeded():
    notes = make_notes([2, 3, 4.5], [1, 1.5, 0.5], [60, 64, 67])
    up, bar = probe_copy(notes, 4.0, 0)
    assert up["pitch"].tolist() == [63, 67, 70] and up["onset"].tolist() == [0.0, 1.5, 3.75]
    assert up["duration"].tolist() == [1.5, 2.25, 0.75] and bar == 6.0
    down, bar = probe_copy(notes, 3.0, 1)
    assert down["pitch"].tolist() == [58, 62, 65] and bar == 2.25
    assert probe_indices(100, 4) == [0, 33, 66, 99] and probe_indices(3, 16) == [0, 1, 2] and probe_indices(5, 0) == []
    np.testing.assert_array_equal(fresh_melody(3), fresh_melody(3))
    assert not np.array_equal(fresh_melody(3)["pitch"], fresh_melody(4)["pitch"])
