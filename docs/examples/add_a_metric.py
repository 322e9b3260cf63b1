"""A worked example: the ``stepwise_motion`` metric, the share of melodic moves that are steps.

In the package the function goes to ``evaluation/metrics.py`` (a pure function of the note
array, NaN on degenerate input, its formula in the docstring) and one line to ``PIECE_METRICS``:

    "stepwise_motion": lambda notes, ctx: stepwise_motion(notes),

From then on ``compute_all`` reports it for every sample and held-out piece, and the experiment's
results compare its distributions (Yang & Lerch). tests/docs/test_examples.py registers it and
checks exact values on tiny pieces.
"""

from __future__ import annotations

import numpy as np


def stepwise_motion(notes: np.ndarray) -> float:
    """Share of the top line's moves of one or two semitones.

    The top line is the highest pitch at each onset; with pitches p_1 .. p_n (n >= 2, repeated
    pitches merged), the value is  #{i : 1 <= |p_(i+1) - p_i| <= 2} / (n - 1).  NaN when the
    line has fewer than two distinct successive pitches.
    """
    if notes.shape[0] == 0:
        return float("nan")
    order = np.lexsort((-notes["pitch"], notes["onset"]))  # by onset, highest pitch first
    onsets, pitches = notes["onset"][order], notes["pitch"][order].astype(np.int64)
    first = np.concatenate([[True], onsets[1:] != onsets[:-1]])
    line = pitches[first]  # (n,) the top line
    moves = np.diff(line)
    moves = moves[moves != 0]  # repeated notes are not moves
    if moves.shape[0] == 0:
        return float("nan")
    return float(np.mean(np.abs(moves) <= 2))
