"""Comparing a set of samples with a reference set, as Yang & Lerch (2018) do.

"On the evaluation of generative models in music" compares sets through *pairwise distances*, not
raw feature values: for one feature (a number per piece),

- the intra-set distances of a set: ``|x_i - x_j|`` over its pairs ``i < j``;
- the inter-set distances of two sets: ``|g_i - r_j|`` over every pair across them;

and then sets the distribution (Gaussian KDE) of the reference's intra-set distances against the
inter-set distribution: their overlapping area (1: the samples sit among the reference pieces as
those sit among themselves) and the KL divergence ``KL(intra || inter)``. The same two figures of
the samples' own intra-set distances say whether the samples vary as much as the reference does.

Pieces of different lengths have different feature values (a 16-bar sample against a 60-bar
chorale), so :func:`excerpt` cuts reference pieces to the samples' number of bars first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from curricmusic.evaluation.metrics import kde_kl_divergence, kde_overlap

__all__ = ["intra_set_distances", "inter_set_distances", "set_comparison", "excerpt"]


def _finite(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def intra_set_distances(values: Sequence[float]) -> np.ndarray:
    """``|x_i - x_j|`` for every pair ``i < j`` of the finite values: ``(n (n - 1) / 2,)``.

    >>> intra_set_distances([1.0, 4.0, 6.0]).tolist()
    [3.0, 5.0, 2.0]
    """
    x = _finite(values)
    i, j = np.triu_indices(x.shape[0], k=1)
    return np.abs(x[i] - x[j])


def inter_set_distances(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """``|a_i - b_j|`` for every pair across the two sets' finite values: ``(n_a * n_b,)``.

    >>> inter_set_distances([1.0, 2.0], [4.0]).tolist()
    [3.0, 2.0]
    """
    x, y = _finite(a), _finite(b)
    return np.abs(x[:, None] - y[None, :]).ravel()


def set_comparison(generated: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Yang & Lerch's figures for one feature.

    ``overlap`` / ``kl``: the reference's intra-set distances against the inter-set distances
    (the paper's headline comparison); ``overlap_generated`` / ``kl_generated``: the samples'
    intra-set distances against the inter-set ones. Means of each distance set are given too.
    NaN where a KDE is undefined (fewer than 2 distances or no spread; see ``kde_overlap``).
    """
    intra_ref = intra_set_distances(reference)
    intra_gen = intra_set_distances(generated)
    inter = inter_set_distances(generated, reference)

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else math.nan

    return {
        "n_generated": int(_finite(generated).shape[0]),
        "n_reference": int(_finite(reference).shape[0]),
        "intra_reference_mean": mean(intra_ref),
        "intra_generated_mean": mean(intra_gen),
        "inter_mean": mean(inter),
        "overlap": kde_overlap(intra_ref, inter),
        "kl": kde_kl_divergence(intra_ref, inter),
        "overlap_generated": kde_overlap(intra_gen, inter),
        "kl_generated": kde_kl_divergence(intra_gen, inter),
    }


def excerpt(notes: np.ndarray, bar_len: float, n_bars: int) -> np.ndarray:
    """The first ``n_bars`` bars of a note array (times in quarters, from the first bar line at 0):
    notes starting before ``n_bars * bar_len``, each cut to end there at the latest."""
    if n_bars < 1 or bar_len <= 0:
        raise ValueError(f"n_bars must be >= 1 and bar_len > 0, got {n_bars} and {bar_len}")
    stop = n_bars * bar_len
    kept = notes[notes["onset"] < stop].copy()
    kept["duration"] = np.minimum(kept["duration"], stop - kept["onset"])
    return kept
