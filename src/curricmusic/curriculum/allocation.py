"""Whole windows per stage from a mixture's shares, deterministically (no sampling noise).

Each step, :func:`allocate` adds ``weights x batch`` to a running debt per stage and hands out
the batch's windows so that every stage's debt stays within about one window: over a run, stage
k receives sum_t w_k(t) x batch windows to within one window. Two arms whose mixtures give the
same totals (``random-matched`` and the arm it matches) therefore see the same number of tokens of
every stage, and a 10% share is 10% of the windows, not 10% in expectation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["allocate", "window_counts"]

_EPS = 1e-9


def allocate(weights: np.ndarray, debt: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows per stage ``(K,)`` int64 summing to ``count``, and the new debt ``(K,)`` float64.

    Stages with zero weight get no window. Among the others, each first gets the whole part of
    its debt, then the remaining windows go one at a time to the largest remainders (ties: the
    lower index), or are taken back from the smallest when the whole parts overshoot.
    """
    weights = np.asarray(weights, dtype=np.float64)
    debt = np.asarray(debt, dtype=np.float64) + weights * count
    active = weights > 0
    counts = np.zeros(weights.shape[0], dtype=np.int64)
    counts[active] = np.maximum(0, np.floor(debt[active] + _EPS)).astype(np.int64)
    indices = np.flatnonzero(active)
    while counts.sum() < count:
        remainder = debt[indices] - counts[indices]
        counts[indices[int(np.argmax(remainder))]] += 1
    while counts.sum() > count:
        remainder = np.where(counts[indices] > 0, debt[indices] - counts[indices], np.inf)
        counts[indices[int(np.argmin(remainder))]] -= 1
    return counts, debt - counts


def window_counts(schedule, batch_size: int) -> dict[str, int]:
    """Windows per stage name that ``schedule`` draws over its whole run (no validation: only
    for pacings whose mixture does not depend on it)."""
    state = schedule.initial_state()
    debt = np.zeros(len(schedule.stages.names))
    totals = np.zeros(len(schedule.stages.names), dtype=np.int64)
    for step in range(schedule.total_steps):
        counts, debt = allocate(schedule.mixture(step, state).weights, debt, batch_size)
        totals += counts
        state = schedule.update(step, state, None)
    return {name: int(n) for name, n in zip(schedule.stages.names, totals, strict=True)}
