"""Per-piece difficulty features and the combined difficulty score.

Pure NumPy functions over the shared note array (:data:`curricmusic.music.notes.NOTE_DTYPE`, times
in quarter notes). They run once per file while preparing data for thousands of files, so nothing
here loops over notes in Python.

Two notes whose onsets differ by at most :data:`ONSET_TOLERANCE` quarters belong to the same
*onset group*; the group's time is its earliest onset. Onset groups are the "distinct onsets" used
by ``polyphony``, ``mean_abs_interval`` and ``ioi_entropy`` below.

The score is fixed per piece: every feature is mapped to [0, 1] by a fixed reference scale (not by
dataset statistics), so a piece's score never changes when other pieces are added.

=====================  ===============================  ======
feature                mapping to [0, 1] (clipped)      weight
=====================  ===============================  ======
note_density           x / 8   (notes per quarter)      0.25
pitch_range            x / 60  (semitones)              0.15
polyphony              (x - 1) / 4                      0.20
mean_abs_interval      x / 12  (semitones)              0.15
ioi_entropy            x / 4   (bits)                   0.15
pitch_class_entropy    x / log2(12)  (bits)             0.10
=====================  ===============================  ======
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

import numpy as np

__all__ = [
    "FEATURE_NAMES",
    "DIFFICULTY_SCALES",
    "DIFFICULTY_WEIGHTS",
    "ONSET_TOLERANCE",
    "IOI_GRID",
    "difficulty_features",
    "difficulty_score",
]

#: Onsets closer than this (in quarter notes) are one onset: it absorbs float noise such as 1/3 + 2/3.
ONSET_TOLERANCE = 1e-6

#: Inter-onset intervals are quantised to multiples of 1/IOI_GRID quarter (sixteenth triplets and
#: thirty-second-note triplets both land on it).
IOI_GRID = 12

FEATURE_NAMES = (
    "note_density",
    "pitch_range",
    "polyphony",
    "mean_abs_interval",
    "ioi_entropy",
    "pitch_class_entropy",
)

#: name -> (offset, scale): a feature ``x`` maps to ``clip((x - offset) / scale, 0, 1)``.
DIFFICULTY_SCALES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "note_density": (0.0, 8.0),
        "pitch_range": (0.0, 60.0),
        "polyphony": (1.0, 4.0),
        "mean_abs_interval": (0.0, 12.0),
        "ioi_entropy": (0.0, 4.0),
        "pitch_class_entropy": (0.0, math.log2(12)),
    }
)

#: name -> weight of the mapped feature in the score; the weights sum to 1.
DIFFICULTY_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "note_density": 0.25,
        "pitch_range": 0.15,
        "polyphony": 0.20,
        "mean_abs_interval": 0.15,
        "ioi_entropy": 0.15,
        "pitch_class_entropy": 0.10,
    }
)


def _entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy in bits of the distribution given by non-negative ``counts``."""
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def difficulty_features(notes: np.ndarray, bar_len: float = 4.0) -> dict[str, float]:
    """Six difficulty features of one piece (times in quarter notes).

    With ``n`` notes, onsets ``o``, durations ``d`` and pitches ``p``:

    - ``note_density`` = n / (max(o + d) - min(o)): notes per quarter over the piece's span.
      NaN when there is no note or the span is 0 (only zero-length notes at one time).
    - ``pitch_range`` = max(p) - min(p) in semitones. NaN when there is no note (0 for one note).
    - ``polyphony``: at the time t of each onset group, the number of notes sounding there, i.e.
      notes with onset at or before t (within the tolerance) and offset after t (more than the
      tolerance after it); a note always sounds at its own onset, even with zero duration. The
      feature is the mean of that count over the onset groups. NaN when there is no note
      (1 for one note).
    - ``mean_abs_interval``: the melodic line is the highest pitch *starting* in each onset group,
      in time order; the feature is the mean of |h[k+1] - h[k]| over successive groups.
      NaN with fewer than two onset groups (so always for one note).
    - ``ioi_entropy``: inter-onset intervals between successive onset groups are quantised to
      integer multiples of 1/12 quarter, ``q = round(12 * ioi)`` (round half to even; an interval
      under 1/24 quarter is class 0); the feature is the Shannon entropy in bits of the
      distribution of those classes, ``-sum_k P(q = k) log2 P(q = k)``. NaN with fewer than two
      onset groups; 0 when every interval is the same.
    - ``pitch_class_entropy`` = -sum_c P(c) log2 P(c) with P(c) the fraction of *notes* (not of
      duration) whose pitch class is c. NaN when there is no note (0 for one note).

    ``bar_len`` (quarters per bar) is accepted so that every per-piece function has the same
    signature; none of these features depends on the bar.
    """
    del bar_len  # no feature depends on the bar (see the docstring)
    nan = float("nan")
    n = int(notes.shape[0])
    if n == 0:
        return dict.fromkeys(FEATURE_NAMES, nan)

    onset = np.asarray(notes["onset"], dtype=np.float64)
    duration = np.asarray(notes["duration"], dtype=np.float64)
    pitch = np.asarray(notes["pitch"], dtype=np.int64)
    order = np.lexsort((pitch, onset))
    onset, duration, pitch = onset[order], duration[order], pitch[order]
    offset = onset + duration

    span = float(offset.max() - onset[0])
    note_density = n / span if span > 0 else nan
    pitch_range = float(pitch.max() - pitch.min())
    pc_entropy = _entropy_bits(np.bincount(pitch % 12, minlength=12))

    # Onset groups: a new group starts where the onset moves on by more than the tolerance.
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.greater(np.diff(onset), ONSET_TOLERANCE, out=new_group[1:])
    group_start = np.flatnonzero(new_group)  # (G,) index of each group's first note
    group_time = onset[group_start]  # (G,)
    snapped = group_time[np.cumsum(new_group) - 1]  # (n,) each note's onset snapped to its group

    # Sounding at group time t: snapped <= t and (offset - tol > t or snapped == t). Groups are more
    # than tol apart, so "effective end" max(offset - tol, snapped + tol / 2) > t says exactly that.
    effective_end = np.sort(np.maximum(offset - ONSET_TOLERANCE, snapped + ONSET_TOLERANCE / 2))
    started = np.searchsorted(snapped, group_time, side="right")
    ended = np.searchsorted(effective_end, group_time, side="right")
    polyphony = float(np.mean(started - ended))

    if group_start.shape[0] < 2:
        mean_abs_interval = nan
        ioi_entropy = nan
    else:
        highest = np.maximum.reduceat(pitch, group_start)  # (G,) top of each onset group
        mean_abs_interval = float(np.mean(np.abs(np.diff(highest))))
        ioi_class = np.rint(np.diff(group_time) * IOI_GRID).astype(np.int64)
        ioi_entropy = _entropy_bits(np.unique(ioi_class, return_counts=True)[1])

    return {
        "note_density": float(note_density),
        "pitch_range": pitch_range,
        "polyphony": polyphony,
        "mean_abs_interval": mean_abs_interval,
        "ioi_entropy": ioi_entropy,
        "pitch_class_entropy": pc_entropy,
    }


def difficulty_score(features: Mapping[str, float]) -> float:
    """Combined difficulty in [0, 1]: a fixed weighted mean of the fixed-scale features.

    ``score = sum_f w_f * clip((x_f - offset_f) / scale_f, 0, 1)`` over the six features of
    :func:`difficulty_features`, with ``(offset_f, scale_f)`` from :data:`DIFFICULTY_SCALES` and
    ``w_f`` from :data:`DIFFICULTY_WEIGHTS` (see the table in the module docstring; the weights
    sum to 1). A NaN feature counts as 0. Nothing depends on other pieces, so a piece's score is
    the same whatever dataset it is in.

    Raises ``KeyError`` naming the first feature missing from ``features``.
    """
    score = 0.0
    for name, weight in DIFFICULTY_WEIGHTS.items():
        if name not in features:
            raise KeyError(f"difficulty feature {name!r} missing; expected all of {FEATURE_NAMES}")
        value = float(features[name])
        if math.isnan(value):
            continue
        offset, scale = DIFFICULTY_SCALES[name]
        score += weight * min(1.0, max(0.0, (value - offset) / scale))
    return score
