"""The ``symbolic`` embedder: histograms of the notes themselves (no audio, no weights)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from curricmusic.music.keys import key_from_histogram
from curricmusic.novelty.embedders.base import Embedder

__all__ = ["SymbolicEmbedder"]

# Rhythm bins in quarter notes, centred on 1/8, 1/4, 1/2, 1, 2, 4, 8, 16 quarters.
_RHYTHM_EDGES = np.array([0.1875, 0.375, 0.75, 1.5, 3.0, 6.0, 12.0])


class SymbolicEmbedder(Embedder):
    """Histograms of the notes themselves: no audio, no weights, transposition-invariant.

    Groups (each L2-normalised on its own, so each weighs the same), then the whole vector
    L2-normalised:

    - pitch class (12), duration-weighted, rotated so the Krumhansl-Kessler key estimate's tonic
      is bin 0 (a transposed piece gets the same histogram);
    - melodic interval (25): successive pitches of the top voice (highest note per onset),
      clipped to -12..12 semitones;
    - inter-onset interval (8) and duration (8), in quarter notes, binned around
      1/8, 1/4, ..., 16 quarters;
    - two scalars in [0, 1): note density ``d / (d + 4)`` with ``d`` notes per quarter, and
      pitch range ``r / (r + 24)`` with ``r`` semitones.

    An empty piece embeds to the zero vector (cosine 0 with everything).
    """

    spec = "symbolic"
    kind = "no-weights"
    weights_real = None
    input = "notes"
    dim = 12 + 25 + 8 + 8 + 2
    source = "note histograms"

    def cache_key(self) -> dict[str, Any]:
        return {"spec": self.spec, "version": 1}

    @staticmethod
    def _unit(values: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(values)
        return values / norm if norm > 0 else values

    def embed_one(self, notes: np.ndarray) -> np.ndarray:
        if notes.shape[0] == 0:
            return np.zeros(self.dim, dtype=np.float32)
        pitches = notes["pitch"].astype(np.int64)
        onsets = notes["onset"].astype(np.float64)
        durations = np.maximum(notes["duration"].astype(np.float64), 0.0)
        pitch_class = np.bincount(pitches % 12, weights=durations + 1e-3, minlength=12)
        tonic, _ = key_from_histogram(pitch_class)
        pitch_class = np.roll(pitch_class, -tonic)
        order = np.argsort(onsets, kind="stable")
        unique_onsets, first = np.unique(onsets[order], return_index=True)
        top = np.maximum.reduceat(pitches[order], first)  # highest pitch per onset
        intervals = np.clip(np.diff(top), -12, 12) + 12
        interval_hist = np.bincount(intervals, minlength=25).astype(np.float64)
        ioi_hist = np.bincount(np.digitize(np.diff(unique_onsets), _RHYTHM_EDGES), minlength=8)
        duration_hist = np.bincount(np.digitize(durations, _RHYTHM_EDGES), minlength=8)
        span = max(float((onsets + durations).max() - onsets.min()), 1.0)
        density = notes.shape[0] / span
        pitch_range = float(pitches.max() - pitches.min())
        vector = np.concatenate(
            [
                self._unit(pitch_class),
                self._unit(interval_hist),
                self._unit(ioi_hist.astype(np.float64)),
                self._unit(duration_hist.astype(np.float64)),
                [density / (density + 4.0), pitch_range / (pitch_range + 24.0)],
            ]
        )
        return self._unit(vector).astype(np.float32)

    def embed_notes(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        if not pieces:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_one(piece) for piece in pieces])
