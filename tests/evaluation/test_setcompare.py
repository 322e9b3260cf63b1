"""Yang & Lerch set comparison: pairwise distances within and across sets, and length-matched excerpts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.evaluation.metrics import kde_overlap
from curricmusic.evaluation.setcompare import (
    excerpt,
    inter_set_distances,
    intra_set_distances,
    set_comparison,
)
from curricmusic.music.notes import make_notes


def test_pairwise_distances_by_hand():
    assert intra_set_distances([1.0, 4.0, 6.0, math.nan]).tolist() == [3.0, 5.0, 2.0]
    assert intra_set_distances([2.0]).tolist() == []
    assert inter_set_distances([1.0, 2.0], [4.0, 0.0]).tolist() == [3.0, 1.0, 2.0, 2.0]


def test_set_comparison_uses_distances_not_raw_values():
    reference = [0.0, 1.0, 2.0, 3.0]
    # samples shifted far away: raw-value overlap is 0, and inter-set distances are far from intra
    shifted = [10.0, 11.0, 12.0, 13.0]
    far = set_comparison(shifted, reference)
    assert far["intra_reference_mean"] == pytest.approx(10 / 6)  # |pairs| of 0..3: 1,2,3,1,2,1
    assert far["inter_mean"] == pytest.approx(10.0)
    assert far["overlap"] < 0.05
    assert far["overlap"] == pytest.approx(kde_overlap(intra_set_distances(reference), inter_set_distances(shifted, reference)))
    # samples drawn from the same distribution: the two distance distributions overlap well
    rng = np.random.default_rng(0)
    same = set_comparison(rng.normal(0, 1, 200), rng.normal(0, 1, 200))
    assert same["overlap"] > 0.8 and same["kl"] < 0.1
    assert same["n_generated"] == same["n_reference"] == 200
    # a sample set with no variety: its own intra-set distances are all 0
    flat = set_comparison([1.5] * 10, reference)
    assert flat["intra_generated_mean"] == 0.0


def test_excerpt_keeps_the_first_bars_and_cuts_held_notes():
    notes = make_notes([0, 3, 7.5, 8, 12], [1, 4, 2, 1, 1], [60, 62, 64, 65, 67])
    cut = excerpt(notes, 4.0, 2)  # 8 quarters
    assert cut["pitch"].tolist() == [60, 62, 64]
    assert cut["duration"].tolist() == [1.0, 4.0, 0.5]
    assert excerpt(notes, 4.0, 10).shape == notes.shape
    with pytest.raises(ValueError, match="n_bars"):
        excerpt(notes, 4.0, 0)
