"""Few-shot subsets of a split: nested, seeded, the same for every model of a seed.

The adaptation phase fine-tunes each model on ``k`` pieces of a new style for several ``k``. The
subsets come from one seeded permutation of the style's training pieces: the ``k`` smallest
subset is the first ``k`` pieces of the permutation, so every smaller subset lies inside every
larger one (the 8 pieces are among the 32), and every model of a seed (each arm's final model and
the from-scratch one) sees exactly the same pieces; another seed draws another permutation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SHOT_STREAM", "shot_order", "shot_subset"]

#: Mixed into the seed so the subsets are independent of every other random stream of the run.
SHOT_STREAM = 0x5407


def shot_order(n_pieces: int, seed: int) -> np.ndarray:
    """The seeded order ``(n_pieces,)`` int64 in which pieces join the subsets."""
    return np.random.default_rng([seed, SHOT_STREAM]).permutation(n_pieces).astype(np.int64)


def shot_subset(n_pieces: int, shots: int, seed: int) -> np.ndarray:
    """Indices (storage order, ascending) of the ``shots`` pieces of ``seed``'s subset."""
    if not 1 <= shots <= n_pieces:
        raise ValueError(f"{shots} shots from {n_pieces} pieces: expected 1 to {n_pieces}")
    return np.sort(shot_order(n_pieces, seed)[:shots])

