"""Copy-blocking while sampling: no span longer than L notes copied from the training data.

The guard follows the notes each row has written (their onsets, from the token tracker of
:mod:`curricmusic.music.grammar`, and their pitches) as the transposition- and tempo-invariant
symbols of :mod:`curricmusic.novelty.copy_index`. Before a note-starting token it computes the
symbol every candidate pitch would add and blocks (or down-weights) the candidates that would
complete a run found in the training pieces. The n-gram index
(:func:`curricmusic.novelty.copy_index.training_index`) is built once per prepared dataset and cached.
"""

from __future__ import annotations

import numpy as np
import torch

from curricmusic.music.grammar import Kind, TokenTable
from curricmusic.novelty.copy_index import CHORD_TOL, NGramIndex, symbol_for, symbol_of

__all__ = ["CopyGuard", "index_n_for"]


def index_n_for(max_notes: int) -> int:
    """The n-gram size that keeps every copied span at or below ``max_notes`` notes.

    A copied span of m notes is m - 1 symbols, the first matched on its interval alone (see
    :mod:`curricmusic.novelty.copy_index`), so forbidding every exact run of ``max_notes - 1``
    symbols bounds m by ``max_notes``.
    """
    return max(1, max_notes - 1)


class CopyGuard:
    """Per-row note tracking and the candidate-pitch mask for a batch."""

    def __init__(
        self,
        index: NGramIndex,
        max_notes: int,
        table: TokenTable,
        batch: int,
        penalty: float | None = None,
    ) -> None:
        self.index = index
        self.n = index_n_for(max_notes)
        self.penalty = penalty
        self.pitch_ids = np.flatnonzero(table.kind == Kind.PITCH)  # tokens that start a note
        self.pitch_values = table.pitch[self.pitch_ids]
        self.symbols: list[list[int]] = [[] for _ in range(batch)]
        self.last_pitch = np.full(batch, -1, dtype=np.int64)
        self.last_onset = np.zeros(batch)
        self.ref_ioi = np.zeros(batch)
        self.onset = np.zeros(batch)
        self.blocked_count = np.zeros(batch, dtype=np.int64)

    def observe(self, pitches: np.ndarray, onsets: np.ndarray) -> None:
        """Follow one token per row: ``pitches`` ``(B,)`` the note it starts (-1: none), ``onsets``
        ``(B,)`` each row's time in quarter notes after it."""
        self.onset = np.asarray(onsets, dtype=np.float64)
        for row in np.flatnonzero(np.asarray(pitches) >= 0):
            pitch = int(pitches[row])
            if self.last_pitch[row] >= 0:
                ioi = self.onset[row] - self.last_onset[row]
                self.symbols[row].append(symbol_of(int(self.last_pitch[row]), pitch, float(self.ref_ioi[row]), float(ioi)))
                if ioi > CHORD_TOL:
                    self.ref_ioi[row] = ioi
            self.last_pitch[row], self.last_onset[row] = pitch, self.onset[row]

    def blocked(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (row, token id) pairs, as two arrays, of the pitch tokens of ``rows`` that would
        extend a copy of the training data."""
        width = self.n - 1
        rows = np.asarray([r for r in rows if self.last_pitch[r] >= 0 and len(self.symbols[r]) >= width], dtype=np.int64)
        if rows.size == 0:
            return rows, rows
        contexts = np.array([self.symbols[r][len(self.symbols[r]) - width :] for r in rows], dtype=np.int64)
        contexts = contexts.reshape(rows.size, width)  # (R, n - 1)
        ioi = (self.onset[rows] - self.last_onset[rows])[:, None]  # (R, 1)
        candidates = symbol_for(self.last_pitch[rows][:, None], self.pitch_values[None, :], self.ref_ioi[rows][:, None], ioi)
        row_index, pitch_index = np.nonzero(self.index.blocked_rows(contexts, candidates))  # of (R, P)
        return rows[row_index], self.pitch_ids[pitch_index]

    def adjust(self, scores: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        """Block (``-inf``) or down-weight the pitch tokens that would extend a copy, for ``rows``."""
        row_ids, token_ids = self.blocked(rows)
        if row_ids.size == 0:
            return scores
        mask = np.zeros(tuple(scores.shape), dtype=bool)
        mask[row_ids, token_ids] = True
        mask_t = torch.as_tensor(mask, device=scores.device)
        newly = mask_t & torch.isfinite(scores)
        self.blocked_count += newly.sum(dim=1).cpu().numpy()
        if self.penalty is None:
            return scores.masked_fill(mask_t, float("-inf"))
        return scores - self.penalty * mask_t.to(scores.dtype)
