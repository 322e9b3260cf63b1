"""Bootstrap CI, paired comparisons and Holm correction against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curricmusic.evaluation.stats import (
    area_under_curve,
    bootstrap_ci,
    first_reaching,
    holm,
    paired_comparison,
)


def test_holm_matches_hand_computation():
    # sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_bootstrap_ci_of_two_values_is_their_resampling_quantiles():
    # means of resamples of [0, 1] (2 draws) are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    mean, low, high = bootstrap_ci([0.0, 1.0], n_resamples=20_000, seed=1)
    assert mean == 0.5 and low == 0.0 and high == 1.0
    assert bootstrap_ci([3.0]) == (3.0, 3.0, 3.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([1.0, 2.0, math.nan, 3.0], seed=0)[0] == 2.0


def test_bootstrap_ci_covers_the_normal_interval_for_large_samples():
    values = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    mean, low, high = bootstrap_ci(values, seed=0)
    half = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert low == pytest.approx(mean - half, abs=0.05) and high == pytest.approx(mean + half, abs=0.05)


def test_paired_comparison_t_test_by_hand():
    treatment, control = [2.0, 3.0, 5.0], [1.0, 1.0, 2.0]
    result = paired_comparison(treatment, control)
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641, df 2 -> p = 0.07418
    assert result["mean_diff"] == 2.0 and result["n_pairs"] == 3
    assert result["p_value"] == pytest.approx(0.0741799, abs=1e-6)
    assert math.isnan(paired_comparison([1.0], [0.0])["p_value"])


def test_area_and_first_reaching():
    assert area_under_curve([0, 1, 2], [4.0, 2.0, 2.0]) == pytest.approx((3 + 2) / 2)
    assert math.isnan(area_under_curve([0], [1.0]))
    assert first_reaching([10, 20, 30], [3.0, 2.5, 1.9], 2.5) == 20.0
    assert math.isnan(first_reaching([10, 20], [3.0, 2.9], 1.0))
