"""A worked example: the ``pitch-classes`` embedder, a piece's duration-weighted pitch-class
histogram (12 numbers, no audio, no weights).

In the package this class is one file, ``novelty/embedders/pitch_classes.py``, plus one line in
``EMBEDDERS`` (``novelty/embedders/__init__.py``): ``"pitch-classes": PitchClassEmbedder,``.
Then ``curricmusic novelty SAMPLES --against RUN --embedder pitch-classes`` uses it.
tests/docs/test_examples.py registers it and checks its rows on tiny pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from curricmusic.novelty.embedders.base import Embedder, l2_rows


class PitchClassEmbedder(Embedder):
    """How long each of the 12 pitch classes sounds, as a unit vector (key-dependent)."""

    spec = "pitch-classes"
    kind = "no-weights"  # a formula, not a network: the report says so
    weights_real = None
    input = "notes"  # it embeds note arrays; an audio embedder sets "audio" and embed_audio
    dim = 12
    source = "pitch-class histogram"

    def cache_key(self) -> dict[str, Any]:
        return {"spec": self.spec, "version": 1}  # bump the version when the formula changes

    def embed_notes(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        rows = np.zeros((len(pieces), self.dim))  # (N, 12)
        for row, notes in zip(rows, pieces, strict=True):
            np.add.at(row, notes["pitch"] % 12, notes["duration"])
        return l2_rows(rows)  # (N, 12) float32, unit rows (an empty piece: zeros)
