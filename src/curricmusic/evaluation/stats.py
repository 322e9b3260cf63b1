"""Statistics over seeds that stay honest at few seeds: intervals, censored times, paired effects.

Pure functions of their inputs (and a seed where they resample); NaN where undefined.

Intervals
    :func:`t_interval` is ``mean +- t_{n-1, (1+c)/2} s / sqrt(n)``; :func:`bca_interval` is
    ``scipy.stats.bootstrap``'s bias-corrected and accelerated interval (not defined below 3
    values). A percentile bootstrap over 2 seeds is ``[min, max]``, an interval that looks tight
    and covers far less than 95%; neither of these does that.

Times to a target (censored)
    A seed that never reaches the target within the budget is *censored* at the budget, never
    dropped: :func:`time_to_target` gives ``(time, reached)``; :func:`kaplan_meier` the survival
    curve ``S(t) = P(not reached by t)``; :func:`km_median` the first time with ``S <= 1/2`` (NaN
    while more than half never arrive); :func:`restricted_mean` the restricted mean time
    ``RMST(h) = integral_0^h S(t) dt`` (an arm whose seeds never arrive scores the budget ``h``).

Paired effects
    :func:`paired_effect` compares two arms seed by seed: mean difference with its t-interval,
    ratio (geometric mean of the per-seed ratios, t-interval on the log scale) and ``d_z`` (mean
    difference over the standard deviation of the differences). The paired t-test's p-value is
    given from :data:`MIN_PAIRS_FOR_P` pairs on (a 1-df t-test on two seeds is no evidence);
    :func:`holm` corrects a family of them.

One rule for small samples
    Below :data:`MIN_SEEDS_FOR_CI` seeds (or pairs) the figures written to ``results.json``
    (:func:`mean_ci`, :func:`censored_summary`, :func:`paired_effect`) carry no interval: the
    bounds are NaN (``null`` in JSON), ``no_interval`` says why (:func:`no_interval_reason`), and
    the values of the seeds are kept, so a report shows them instead. A paired effect then has
    no ``d_z`` and no detectable difference either: both rest on a spread that two seeds cannot
    estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# a 1-D series of numbers: a list or an array
Floats = Sequence[float] | np.ndarray
Bools = Sequence[bool] | np.ndarray

__all__ = [
    "MIN_SEEDS_FOR_CI",
    "MIN_PAIRS_FOR_P",
    "MIN_VAL_PIECES",
    "finite",
    "no_interval_reason",
    "t_interval",
    "bca_interval",
    "mean_ci",
    "time_to_target",
    "interpolated_time_to_target",
    "kaplan_meier",
    "km_median",
    "restricted_mean",
    "censored_summary",
    "value_at",
    "paired_effect",
    "detectable_difference",
    "holm",
    "area_under_curve",
    "first_reaching",
]

#: Fewer seeds than this: the report shows the values, not an interval that looks solid.
MIN_SEEDS_FOR_CI = 3
#: Fewer held-out pieces than this: the report says a loss rests on a handful of tunes.
MIN_VAL_PIECES = 10
#: Fewer complete pairs than this: no p-value.
MIN_PAIRS_FOR_P = 5

_NAN = float("nan")


def finite(values: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """The finite values as float64 (None, NaN and inf dropped)."""
    return np.asarray(
        [v for v in values if v is not None and math.isfinite(float(v))], dtype=np.float64
    )


def no_interval_reason(n: int) -> str:
    """Why ``n`` seeds (or pairs) get no interval in results.json and the reports.

    >>> no_interval_reason(2)
    '2 seeds: a 95% interval needs 3 or more'
    """
    return f"{n} seed{'' if n == 1 else 's'}: a 95% interval needs {MIN_SEEDS_FOR_CI} or more"


def t_interval(values: Floats, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: ``mean +- t_{n-1, (1 + confidence) / 2} * s / sqrt(n)``.

    ``s`` is the sample standard deviation (ddof 1). Non-finite values are dropped. One value
    gives ``(v, NaN, NaN)``, none gives NaNs; identical values give a zero-width interval.
    """
    from scipy import stats

    data = finite(values)
    if data.size == 0:
        return (_NAN, _NAN, _NAN)
    mean = float(data.mean())
    if data.size == 1:
        return (mean, _NAN, _NAN)
    half = float(stats.t.ppf((1 + confidence) / 2, data.size - 1)) * float(data.std(ddof=1)) / math.sqrt(data.size)
    return (mean, mean - half, mean + half)


def bca_interval(
    values: Floats, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)`` from ``scipy.stats.bootstrap(method="BCa")`` of the mean.

    NaN interval below 3 finite values, and ``(v, v, v)``-like zero width when all are equal.
    """
    from scipy import stats

    data = finite(values)
    if data.size == 0:
        return (_NAN, _NAN, _NAN)
    mean = float(data.mean())
    if data.size < 3:
        return (mean, _NAN, _NAN)
    if np.ptp(data) == 0:
        return (mean, mean, mean)
    result = stats.bootstrap(
        (data,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
        method="BCa", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    interval = result.confidence_interval
    return (mean, float(interval.low), float(interval.high))


def mean_ci(values: Sequence[float | None], confidence: float = 0.95) -> dict:
    """Mean, t-interval, count and the values as given (for results.json); below
    :data:`MIN_SEEDS_FOR_CI` finite values no interval, and ``no_interval`` says why."""
    data = finite(values)
    mean, low, high = t_interval(data, confidence)
    too_few = bool(data.size < MIN_SEEDS_FOR_CI)
    out = {
        "n": int(data.size),
        "mean": mean,
        "sd": float(data.std(ddof=1)) if data.size > 1 else _NAN,
        "ci_low": _NAN if too_few else low,
        "ci_high": _NAN if too_few else high,
        "interval": "t",
        "too_few": too_few,
        "values": [float(v) if v is not None else _NAN for v in values],
    }
    if too_few:
        out["no_interval"] = no_interval_reason(int(data.size))
    return out


# --- times to a target ---------------------------------------------------------------------------


def first_reaching(x: Sequence[float], y: Sequence[float | None], target: float) -> float:
    """The first x at which y <= target (no interpolation); NaN if it never does."""
    for a, b in zip(x, y, strict=True):
        if b is not None and math.isfinite(b) and b <= target:
            return float(a)
    return _NAN


def time_to_target(
    x: Sequence[float], y: Sequence[float | None], target: float, budget: float
) -> tuple[float, bool]:
    """``(first x with y <= target, True)``, or ``(budget, False)`` when y never gets there."""
    reached = first_reaching(x, y, target) if math.isfinite(target) else _NAN
    if math.isfinite(reached) and reached <= budget:
        return (reached, True)
    return (float(budget), False)


def interpolated_time_to_target(
    x: Sequence[float], y: Sequence[float | None], target: float, budget: float
) -> tuple[float, bool]:
    """``(x where y first falls to target, True)``, linear between the evaluation before the
    crossing and the first at or below it (``x_0`` when ``y_0`` is already there), or
    ``(budget, False)`` when y never gets there (censored at the budget).

    ``x_c = x_{i-1} + (y_{i-1} - target) / (y_{i-1} - y_i) (x_i - x_{i-1})`` for the first ``i``
    with ``y_i <= target``; non-finite values are skipped."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y, strict=True) if b is not None and math.isfinite(b)]
    if not math.isfinite(target):
        return (float(budget), False)
    for i, (a, b) in enumerate(pairs):
        if b <= target:
            a0, b0 = pairs[i - 1] if i else (a, b)
            crossing = a0 + (b0 - target) / (b0 - b) * (a - a0) if i else a
            return (crossing, True) if crossing <= budget else (float(budget), False)
    return (float(budget), False)


def kaplan_meier(times: Floats, reached: Bools) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival ``S(t) = P(not reached by t)``: ``(event times, S just after each)``.

    ``S`` steps down at each time where at least one seed reached the target:
    ``S(t_j) = prod_{i <= j} (1 - d_i / n_i)`` with ``d_i`` seeds reaching at ``t_i`` and
    ``n_i`` seeds still at risk (not yet reached nor censored before ``t_i``). A censored seed
    leaves the risk set after its time.
    """
    t = np.asarray(times, dtype=np.float64)
    e = np.asarray(reached, dtype=bool)
    if t.shape != e.shape:
        raise ValueError("times and reached must have the same length")
    event_times = np.unique(t[e])
    survival = np.empty(event_times.shape[0])
    s = 1.0
    for j, time in enumerate(event_times):
        at_risk = np.count_nonzero(t >= time)
        events = np.count_nonzero((t == time) & e)
        s *= 1.0 - events / at_risk
        survival[j] = s
    return event_times, survival


def km_median(times: Floats, reached: Bools) -> float:
    """First time at which the Kaplan-Meier ``S(t) <= 0.5``; NaN if it never falls that low
    (more than half the seeds never arrive: the median is beyond the budget)."""
    event_times, survival = kaplan_meier(times, reached)
    below = np.flatnonzero(survival <= 0.5 + 1e-12)
    return float(event_times[below[0]]) if below.size else _NAN


def restricted_mean(times: Floats, reached: Bools, horizon: float) -> float:
    """``RMST(horizon) = integral_0^horizon S(t) dt`` of the Kaplan-Meier curve. NaN if no time.

    When every censored seed is censored at ``horizon`` (the budget) this is the plain mean of
    ``min(time, horizon)``: a seed that never arrives counts as the whole budget.
    """
    if len(times) == 0:
        return _NAN
    event_times, survival = kaplan_meier(times, reached)
    area, previous_t, previous_s = 0.0, 0.0, 1.0
    for time, s in zip(event_times, survival, strict=True):
        if time >= horizon:
            break
        area += (time - previous_t) * previous_s
        previous_t, previous_s = time, s
    return float(area + (horizon - previous_t) * previous_s)


def censored_summary(times: Floats, reached: Bools, budget: float, confidence: float = 0.95) -> dict:
    """Every seed's time to target, censored ones included: share that reached it, restricted
    mean (with a t-interval over the seeds' ``min(time, budget)``, from :data:`MIN_SEEDS_FOR_CI`
    seeds on), Kaplan-Meier median."""
    t = np.minimum(np.asarray(times, dtype=np.float64), budget)
    e = np.asarray(reached, dtype=bool)
    n = int(t.size)
    _, low, high = t_interval(t, confidence)
    if n < MIN_SEEDS_FOR_CI:
        low = high = _NAN
    out = {
        "n": n,
        "n_reached": int(e.sum()),
        "reached_share": float(e.mean()) if n else _NAN,
        "restricted_mean": restricted_mean(t, e, budget),
        "mean": restricted_mean(t, e, budget),  # the figure plotted and compared
        "ci_low": low,
        "ci_high": high,
        "interval": "t",
        "km_median": km_median(t, e),
        "budget": float(budget),
        "too_few": bool(n < MIN_SEEDS_FOR_CI),
        "values": t.tolist(),
        "reached": e.tolist(),
    }
    if n < MIN_SEEDS_FOR_CI:
        out["no_interval"] = no_interval_reason(n)
    return out


def value_at(x: Sequence[float], y: Sequence[float | None], at: float) -> float:
    """y at ``x = at``, linear between the two nearest points; NaN outside ``[x_0, x_last]``."""
    pairs = [(float(a), float(b)) for a, b in zip(x, y, strict=True) if b is not None and math.isfinite(b)]
    if not pairs or not pairs[0][0] <= at <= pairs[-1][0]:
        return _NAN
    xs, ys = zip(*pairs, strict=True)
    return float(np.interp(at, xs, ys))


# --- paired comparisons --------------------------------------------------------------------------


def detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean paired difference that a two-sided paired t-test at level ``alpha`` finds
    with probability ``power``, for ``n`` pairs whose differences have standard deviation ``sd``
    (the noncentral t solved exactly; NaN below 2 pairs or without spread). With the observed
    ``sd`` it says how large an effect the seeds could have shown: a null result with a small
    detectable difference says more than one with a large one."""
    from scipy import optimize, stats

    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return _NAN
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(d_z: float) -> float:  # power of the test at standardised effect d_z, minus the goal
        shift = d_z * math.sqrt(n)
        upper, lower = (float(v) for v in (stats.nct.sf(critical, df, shift), stats.nct.cdf(-critical, df, shift)))
        return upper + (lower if math.isfinite(lower) else 0.0) - power  # the far tail vanishes (scipy: NaN)

    high = 1.0
    while not shortfall(high) > 0:  # widen the bracket (NaN counts as not there yet)
        high *= 2
        if high > 64:
            return _NAN
    return float(optimize.brentq(shortfall, 1e-9, high)) * sd


def paired_effect(
    treatment: Sequence[float | None],
    control: Sequence[float | None],
    confidence: float = 0.95,
    min_pairs_for_p: int = MIN_PAIRS_FOR_P,
) -> dict:
    """Seed-paired effect of ``treatment`` against ``control`` (same seeds, same order).

    - ``diff``: mean of ``t_i - c_i`` with its t-interval;
    - ``ratio``: ``exp(mean(ln t_i - ln c_i))`` (the geometric mean ratio) with the t-interval
      of the log ratios exponentiated; NaN unless every value is positive;
    - ``d_z``: ``mean(d) / sd(d)`` (ddof 1), the paired standardised effect; NaN below 2 pairs
      or when the differences do not vary;
    - ``p_value``: two-sided paired t-test from ``min_pairs_for_p`` complete pairs on, else NaN;
    - ``detectable_diff``: :func:`detectable_difference` at the observed SD (80% power, 5%);
    - ``pairs``: each pair ``[treatment, control]`` in seed order (the values a report shows
      when there are too few for an interval).

    Below :data:`MIN_SEEDS_FOR_CI` pairs the intervals, ``d_z`` and ``detectable_diff`` are NaN
    and ``no_interval`` says why (the module's one rule for small samples).
    """
    from scipy import stats

    pairs = [
        (float(t), float(c))
        for t, c in zip(treatment, control, strict=True)
        if t is not None and c is not None and math.isfinite(t) and math.isfinite(c)
    ]
    n = len(pairs)
    diffs = np.array([t - c for t, c in pairs], dtype=np.float64)
    mean, low, high = t_interval(diffs, confidence)
    ratio = ratio_low = ratio_high = _NAN
    if n and all(t > 0 and c > 0 for t, c in pairs):
        logs = np.array([math.log(t) - math.log(c) for t, c in pairs])
        log_mean, log_low, log_high = t_interval(logs, confidence)
        ratio, ratio_low, ratio_high = (math.exp(v) if math.isfinite(v) else _NAN for v in (log_mean, log_low, log_high))
    sd = float(diffs.std(ddof=1)) if n > 1 else _NAN
    d_z = mean / sd if n > 1 and sd > 0 else _NAN
    p_value = _NAN
    if n >= max(2, min_pairs_for_p) and sd > 0:
        p_value = float(stats.ttest_rel([t for t, _ in pairs], [c for _, c in pairs]).pvalue)
    detectable = detectable_difference(sd, n)
    if n < MIN_SEEDS_FOR_CI:
        low = high = ratio_low = ratio_high = d_z = detectable = _NAN
    out = {
        "n_pairs": n,
        "diff": mean,
        "diff_ci_low": low,
        "diff_ci_high": high,
        "ratio": ratio,
        "ratio_ci_low": ratio_low,
        "ratio_ci_high": ratio_high,
        "d_z": d_z,
        "p_value": p_value,
        "too_few_for_p": n < min_pairs_for_p,
        "detectable_diff": detectable,
        "pairs": [[t, c] for t, c in pairs],
    }
    if n < MIN_SEEDS_FOR_CI:
        out["no_interval"] = no_interval_reason(n)
    return out


def holm(p_values: Sequence[float], family_size: int | None = None) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN).

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)), with m the number of
    finite p-values, or ``family_size`` (a declared family: a comparison without a p-value still
    counts, which only makes the correction stricter).
    """
    finite_p = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    adjusted = [_NAN] * len(p_values)
    m = len(finite_p) if family_size is None else max(int(family_size), len(finite_p))
    running = 0.0
    for rank, (p, index) in enumerate(sorted(finite_p)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def area_under_curve(x: Sequence[float], y: Sequence[float | None]) -> float:
    """Trapezoid area under y(x) divided by the x-span: the curve's mean height (NaN if < 2 points)."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if b is not None and math.isfinite(b)]
    if len(pairs) < 2:
        return _NAN
    xs = np.array([a for a, _ in pairs], dtype=np.float64)
    ys = np.array([b for _, b in pairs], dtype=np.float64)
    span = xs[-1] - xs[0]
    if span <= 0:
        return _NAN
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0 / span)
