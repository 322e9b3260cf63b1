"""What every embedder is: unit-norm float32 rows, and an account of itself for the report.

Every embedder returns float32 rows with unit L2 norm, so cosine similarity is a dot product.
Three fields say what produced the numbers, for the report header:

- ``kind``: ``"learned"`` (a neural network) or ``"no-weights"`` (a fixed formula);
- ``weights_real``: ``True`` when a learned model's weights were loaded from a checkpoint,
  ``False`` for a randomly initialised model (benchmarks), ``None`` when there are no weights;
- ``fallback_reason``: ``None``, or why the requested embedder could not be used (its weights
  missing) and this one was used instead.

An embedder class is built from the text after the colon of its SPEC by :meth:`Embedder.from_spec`
(``None`` when there is none); it raises :class:`EmbedderUnavailable` when it cannot run on this
machine (weights or a package missing), which lets ``load_embedder`` fall back.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import Any

import numpy as np

from curricmusic.common.errors import UserError

__all__ = ["Embedder", "EmbedderUnavailable", "l2_rows", "resample"]


class EmbedderUnavailable(UserError):
    """The embedder cannot run here (its weights or a package are missing); the message says how to fix it."""


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``samples`` at ``rate_out`` (soxr, high quality); unchanged when the rates match."""
    if int(rate_in) == int(rate_out) or samples.size == 0:
        return np.asarray(samples, dtype=np.float32)
    import soxr

    return soxr.resample(
        np.asarray(samples, dtype=np.float32), int(rate_in), int(rate_out), quality="HQ"
    )


def _l2_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def l2_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(ABC):
    """An embedder: ``input`` says whether it takes audio clips or note arrays."""

    spec: str
    kind: str  # "learned" | "no-weights"
    weights_real: bool | None
    dim: int
    input: str  # "audio" | "notes"
    sample_rate: int | None = None  # the rate ``embed_audio`` works at (audio embedders)
    fallback_reason: str | None = None
    requested_spec: str | None = None  # the spec asked for, when this embedder is its fallback
    source: str = ""

    @property
    def audio_rate(self) -> int:
        """The rate an audio embedder works at (an error for an embedder of note arrays)."""
        if self.sample_rate is None:
            raise UserError(f"embedder {self.spec!r} embeds note arrays, not audio")
        return int(self.sample_rate)

    def embed_audio(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """(N, D) float32, L2-normalised; clips are mono float arrays at ``sample_rate``."""
        raise UserError(f"embedder {self.spec!r} embeds note arrays, not audio")

    def embed_notes(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32, L2-normalised; pieces are ``NOTE_DTYPE`` arrays."""
        raise UserError(f"embedder {self.spec!r} embeds audio, not note arrays")

    def cache_key(self) -> dict[str, Any]:
        """What identifies this embedder's output (spec, weights, version)."""
        return {"spec": self.spec}

    def describe(self) -> dict[str, Any]:
        """The report header's account of the embedder."""
        return {
            "spec": self.spec,
            "requested_spec": self.requested_spec or self.spec,
            "kind": self.kind,
            "weights_real": self.weights_real,
            "dim": self.dim,
            "source": self.source,
            "fallback_reason": self.fallback_reason,
        }

    @classmethod
    def from_spec(cls, argument: str | None, *, batch_size: int = 16, device: str | None = None) -> Embedder:
        """The embedder for ``SPEC = name[:argument]``; formula embedders take no argument."""
        if argument:
            raise UserError(f"embedder {cls.spec!r} takes no argument (got {cls.spec}:{argument})")
        return cls()
