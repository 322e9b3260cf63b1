"""Intervals, censored times to target, paired effects and Holm correction against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from curricmusic.evaluation.stats import (
    area_under_curve,
    bca_interval,
    censored_summary,
    first_reaching,
    holm,
    kaplan_meier,
    km_median,
    mean_ci,
    paired_effect,
    restricted_mean,
    t_interval,
    time_to_target,
    value_at,
)

T975_DF2 = 4.302652729749462  # t quantile 0.975 with 2 degrees of freedom


def test_holm_matches_hand_computation():
    # sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> max 0.06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_t_interval_by_hand():
    mean, low, high = t_interval([1.0, 2.0, 3.0])  # sd 1, n 3
    assert mean == 2.0
    assert low == pytest.approx(2.0 - T975_DF2 / math.sqrt(3), abs=1e-12)
    assert high == pytest.approx(2.0 + T975_DF2 / math.sqrt(3), abs=1e-12)
    # two seeds: t_{0.975, 1} = 12.706, so the interval is wide, not [min, max]
    mean, low, high = t_interval([0.0, 1.0])
    assert (low, high) == pytest.approx((0.5 - 12.706204736 * math.sqrt(0.5) / math.sqrt(2), 0.5 + 12.706204736 * 0.5))
    assert low < 0.0 and high > 1.0
    one = t_interval([3.0])
    assert one[0] == 3.0 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in t_interval([]))
    assert t_interval([1.0, math.nan, 3.0, None])[0] == 2.0


def test_mean_ci_flags_too_few_seeds():
    two = mean_ci([1.0, 2.0])
    assert two["too_few"] and two["n"] == 2 and two["interval"] == "t"
    assert not mean_ci([1.0, 2.0, 4.0])["too_few"]


def test_bca_interval_needs_three_values_and_matches_t_for_normal_samples():
    assert math.isnan(bca_interval([1.0, 2.0])[1])
    assert bca_interval([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    values = np.random.default_rng(0).normal(10.0, 2.0, size=200)
    _, low, high = bca_interval(values, seed=0)
    _, t_low, t_high = t_interval(values)
    assert low == pytest.approx(t_low, abs=0.06) and high == pytest.approx(t_high, abs=0.06)


def test_a_seed_that_never_reaches_the_target_counts_in_the_share_and_the_mean():
    curves = [([10, 20, 30], [3.0, 2.4, 2.0]), ([10, 20, 30], [2.9, 2.8, 2.7])]
    times = [time_to_target(x, y, 2.5, budget=30) for x, y in curves]
    assert times == [(20.0, True), (30.0, False)]
    summary = censored_summary([t for t, _ in times], [r for _, r in times], budget=30)
    assert summary["reached_share"] == 0.5 and summary["n"] == 2 and summary["n_reached"] == 1
    assert summary["restricted_mean"] == 25.0  # (20 + 30) / 2: the censored seed counts as the budget
    assert summary["km_median"] == 20.0  # S(20) = 1/2
    assert summary["too_few"]
    never = censored_summary([30.0, 30.0, 30.0], [False, False, False], budget=30)
    assert never["reached_share"] == 0.0 and never["restricted_mean"] == 30.0 and math.isnan(never["km_median"])


def test_kaplan_meier_and_restricted_mean_with_censoring_midway():
    times, reached = [5.0, 8.0, 10.0, 12.0], [True, False, True, True]
    event_times, survival = kaplan_meier(times, reached)
    # at 5: 4 at risk, 1 event -> 3/4; 8 censored; at 10: 2 at risk -> 3/8; at 12: 1 at risk -> 0
    assert event_times.tolist() == [5.0, 10.0, 12.0]
    assert survival.tolist() == pytest.approx([0.75, 0.375, 0.0])
    assert km_median(times, reached) == 10.0
    assert restricted_mean(times, reached, 12.0) == pytest.approx(5 * 1 + 5 * 0.75 + 2 * 0.375)
    # censoring only at the horizon: RMST is the mean of min(time, horizon)
    assert restricted_mean([10.0, 20.0, 100.0], [True, True, False], 100.0) == pytest.approx(130 / 3)
    assert math.isnan(km_median([10.0, 100.0, 100.0], [True, False, False]))


def test_paired_effect_by_hand():
    result = paired_effect([2.0, 3.0, 5.0], [1.0, 1.0, 2.0])
    # differences 1, 2, 3: mean 2, sd 1; ratios 2, 3, 2.5: geometric mean 15 ** (1/3)
    assert result["n_pairs"] == 3 and result["diff"] == 2.0 and result["d_z"] == 2.0
    assert result["diff_ci_low"] == pytest.approx(2.0 - T975_DF2 / math.sqrt(3))
    assert result["ratio"] == pytest.approx(15 ** (1 / 3))
    logs = np.log([2.0, 3.0, 2.5])
    half = T975_DF2 * logs.std(ddof=1) / math.sqrt(3)
    assert result["ratio_ci_high"] == pytest.approx(math.exp(logs.mean() + half))
    assert math.isnan(result["p_value"]) and result["too_few_for_p"]  # 3 pairs: no p-value
    five = paired_effect([2.0, 3.0, 4.0, 5.0, 6.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    # differences 1..5: mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5) / sqrt(5)) = 4.2426, df 4
    t = 3 / (math.sqrt(2.5) / math.sqrt(5))
    assert five["p_value"] == pytest.approx(2 * scipy_stats.t.sf(t, 4), rel=1e-9)
    assert not five["too_few_for_p"]
    assert math.isnan(paired_effect([1.0, -1.0], [1.0, 1.0])["ratio"])  # ratio needs positive values
    assert math.isnan(paired_effect([1.0], [0.5])["d_z"])


def test_value_at_interpolates_inside_the_curve_only():
    assert value_at([0, 10, 20], [4.0, 3.0, 1.0], 15) == 2.0
    assert value_at([0, 10, 20], [4.0, None, 1.0], 10) == 2.5
    assert math.isnan(value_at([0, 10], [4.0, 3.0], 11))


def test_area_and_first_reaching():
    assert area_under_curve([0, 1, 2], [4.0, 2.0, 2.0]) == pytest.approx((3 + 2) / 2)
    assert math.isnan(area_under_curve([0], [1.0]))
    assert first_reaching([10, 20, 30], [3.0, 2.5, 1.9], 2.5) == 20.0
    assert math.isnan(first_reaching([10, 20], [3.0, 2.9], 1.0))


def test_detectable_difference_is_where_the_paired_t_test_reaches_80_percent_power():
    from scipy import stats as scipy_stats

    from curricmusic.evaluation.stats import detectable_difference

    for n in (3, 5, 8, 20):
        d = detectable_difference(1.0, n)
        critical, shift = scipy_stats.t.ppf(0.975, n - 1), d * math.sqrt(n)
        power = scipy_stats.nct.sf(critical, n - 1, shift) + scipy_stats.nct.cdf(-critical, n - 1, shift)
        assert power == pytest.approx(0.8, abs=1e-6)
    assert detectable_difference(1.0, 8) == pytest.approx(1.156, abs=1e-3)  # G*Power: d_z 1.156 for 8 pairs
    assert detectable_difference(2.0, 8) == pytest.approx(2 * detectable_difference(1.0, 8))  # scales with the SD
    assert detectable_difference(1.0, 20) < detectable_difference(1.0, 8) < detectable_difference(1.0, 5)
    assert math.isnan(detectable_difference(1.0, 1)) and math.isnan(detectable_difference(0.0, 5))
    assert paired_effect([2.0, 3.0, 5.0], [1.0, 1.0, 2.0])["detectable_diff"] == pytest.approx(detectable_difference(1.0, 3))
