"""Statistics for comparing arms over seeds: bootstrap intervals, paired tests, Holm correction.

Pure functions of their inputs (and a seed where they resample); NaN where undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "paired_comparison", "holm", "area_under_curve", "first_reaching"]


def bootstrap_ci(
    values: Sequence[float], confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval ``(mean, low, high)`` of ``values``.

    Non-finite values are dropped. One value gives ``(v, v, v)``; none gives NaNs. The interval is
    the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the means of ``n_resamples``
    resamples with replacement (Efron's percentile method).
    """
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(data.mean())
    if data.size == 1:
        return (mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (mean, float(low), float(high))


def paired_comparison(treatment: Sequence[float], control: Sequence[float], seed: int = 0) -> dict:
    """Paired differences ``treatment - control`` (same seeds): mean, 95% bootstrap CI, p-value.

    The p-value is the two-sided paired t-test's (scipy.stats.ttest_rel); with fewer than two
    complete pairs, or zero variance of the differences, it is NaN.
    """
    from scipy import stats

    pairs = [
        (t, c)
        for t, c in zip(treatment, control, strict=True)
        if t is not None and c is not None and math.isfinite(t) and math.isfinite(c)
    ]
    diffs = [t - c for t, c in pairs]
    mean, low, high = bootstrap_ci(diffs, seed=seed)
    p_value = math.nan
    if len(pairs) >= 2 and np.std(diffs) > 0:
        p_value = float(stats.ttest_rel([t for t, _ in pairs], [c for _, c in pairs]).pvalue)
    return {"n_pairs": len(pairs), "mean_diff": mean, "ci_low": low, "ci_high": high, "p_value": p_value}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN and is not counted).

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)) for m finite p-values.
    """
    finite = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    m = len(finite)
    running = 0.0
    for rank, (p, index) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def area_under_curve(x: Sequence[float], y: Sequence[float]) -> float:
    """Trapezoid area under y(x) divided by the x-span: the curve's mean height (NaN if < 2 points)."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if b is not None and math.isfinite(b)]
    if len(pairs) < 2:
        return math.nan
    xs = np.array([a for a, _ in pairs], dtype=np.float64)
    ys = np.array([b for _, b in pairs], dtype=np.float64)
    span = xs[-1] - xs[0]
    if span <= 0:
        return math.nan
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / span)


def first_reaching(x: Sequence[float], y: Sequence[float], target: float) -> float:
    """The first x at which y <= target (no interpolation); NaN if it never does."""
    for a, b in zip(x, y, strict=True):
        if b is not None and math.isfinite(b) and b <= target:
            return float(a)
    return math.nan
