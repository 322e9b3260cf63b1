"""What pitch classes does a model expect? Its next-pitch predictions, folded to the 12 classes.

A model that has learned which notes a key allows puts its next-pitch probability on them. Where
the next token of a held-out piece starts a note, the model's predicted distribution over the pitch
tokens (renormalised among them) is folded onto the 12 pitch classes; the mean over those positions
is the piece's *expected pitch-class profile* ``(12,)``. A linear probe on it reads the key the
model predicts in, not the key of the tokens it was given: an untrained network predicts the same
near-uniform spread whatever the piece, so the probe on its profile stays close to chance, which a
probe on pooled hidden states never does (a random network's pooled states are a random
projection of the input tokens, which spell out the pitches).

The *heard* profile is the same mean over the same positions of the pitch that actually came
next: the profile of a model that predicted every next pitch exactly, the ceiling of the probe.

The *neighbour* profile is the key-blind control: a predictor that knows only that melodies move
by small steps and expects the next pitch anywhere within ``reach`` semitones of the last note,
uniformly. Its profile is a blurred copy of the notes played, which in a scale already points to
the key; a trained model whose probe reads no better than this one has learned contour, and
nothing shows it has learned which notes a key allows.

:func:`scale_mass` reads the same profiles against a known key without any probe: the share of the
expected next-pitch probability on the key's seven diatonic pitch classes (major, or natural
minor). A uniform spread puts 7/12 there; the heard profile shows how much the music itself does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from curricmusic.model.expectation import (
    expected_pitch_classes,
    note_positions,
    pitch_class_table,
    scale_mass,
)

__all__ = [
    "pitch_class_table",
    "expected_pitch_classes",
    "heard_pitch_classes",
    "neighbour_pitch_classes",
    "scale_mass",
]


def heard_pitch_classes(
    pieces: Sequence[np.ndarray], seq_len: int, pitch_class: np.ndarray
) -> np.ndarray:
    """``(N, 12)``: each piece's pitch-class frequencies over the notes of its first ``seq_len``
    tokens that follow another token (uniform for a piece without one)."""
    out = np.full((len(pieces), 12), 1.0 / 12)
    for row, piece in enumerate(pieces):
        ids = np.asarray(piece[:seq_len], dtype=np.int64)
        at = note_positions(ids, pitch_class)
        if at.any():
            out[row] = np.bincount(pitch_class[ids[1:][at]], minlength=12) / at.sum()
    return out


def neighbour_pitch_classes(
    pieces: Sequence[np.ndarray], seq_len: int, pitch_class: np.ndarray, reach: int = 2
) -> np.ndarray:
    """``(N, 12)``: the key-blind control's profile: at each note position after a first note,
    1 / (2 * reach + 1) on each pitch class within ``reach`` semitones of the last note so far,
    averaged (uniform for a piece without such a position)."""
    if not 0 <= reach <= 5:
        raise ValueError(
            f"reach must be 0..5 semitones (wider wraps around the octave), got {reach}"
        )
    steps = np.arange(-reach, reach + 1)
    out = np.full((len(pieces), 12), 1.0 / 12)
    for row, piece in enumerate(pieces):
        ids = np.asarray(piece[:seq_len], dtype=np.int64)
        classes = pitch_class[ids]  # (T,) -1 where no note starts
        profile, count, last = np.zeros(12), 0, -1
        for t in range(len(ids) - 1):
            last = classes[t] if classes[t] >= 0 else last
            if classes[t + 1] >= 0 and last >= 0:
                np.add.at(profile, (last + steps) % 12, 1.0 / steps.shape[0])
                count += 1
        if count:
            out[row] = profile / count
    return out
