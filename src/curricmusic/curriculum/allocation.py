"""Whole windows per stage from a mixture's shares, deterministically (no sampling noise).

Each step, :func:`allocate` adds ``weights x batch`` to a running debt per stage and hands out
the batch's windows so that every stage's debt stays within about one window: over a run, stage
k receives sum_t w_k(t) x batch windows to within one window. Two arms whose mixtures give the
same totals (``random-matched`` and the arm it matches) therefore see the same number of tokens of
every stage, and a 10% share is 10% of the windows, not 10% in expectation.

A step of shorter windows (a mixture's ``seq_len``: sequence-length warm-up) holds more of them,
:func:`step_windows`, so that every step trains the same real tokens, ``batch_size x seq_len``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["allocate", "step_windows"]

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


def step_windows(length: int | None, batch_size: int, seq_len: int) -> tuple[int, int]:
    """``(windows, factor)`` of a step whose windows are ``length`` tokens long (None: ``seq_len``).

    ``factor = seq_len // length`` windows stand in for each full-length one, so a step trains
    ``windows x length = batch_size x seq_len`` real tokens whatever its window length (and a
    micro-batch of ``factor x micro`` short windows holds the tokens of ``micro`` full ones).
    ``length`` must divide ``seq_len``.
    """
    length = seq_len if length is None else int(length)
    if length < 1 or length > seq_len or seq_len % length:
        raise ValueError(f"a step's window length must divide the context {seq_len} (got {length})")
    factor = seq_len // length
    return batch_size * factor, factor
