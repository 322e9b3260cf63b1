"""Copy-blocking while sampling: no span longer than L notes copied from the training data.

The guard follows the notes each row has written (onsets from Bar and Position tokens, pitches
from Pitch tokens) as the transposition- and tempo-invariant symbols of
:mod:`curricmusic.novelty.copying`. Before a Pitch token it computes the symbol every candidate
pitch would add and blocks (or down-weights) the candidates that would complete a run found in
the training pieces. The n-gram index is built once per prepared dataset and cached.
"""

from __future__ import annotations

import numpy as np
import torch

from curricmusic.data.prepared import PreparedData
from curricmusic.grammar import Kind, TokenTable
from curricmusic.novelty.copying import CHORD_TOL, NGramIndex, symbol_for
from curricmusic.paths import cache_dir
from curricmusic.progress import err_console

__all__ = ["CopyGuard", "training_index", "index_n_for"]


def index_n_for(max_notes: int) -> int:
    """The n-gram size that keeps every copied span at or below ``max_notes`` notes.

    A copied span of m notes is m - 1 symbols, the first matched on its interval alone (see
    :mod:`curricmusic.novelty.copying`), so forbidding every exact run of ``max_notes - 1``
    symbols bounds m by ``max_notes``.
    """
    return max(1, max_notes - 1)


def training_index(data: PreparedData, ns: tuple[int, ...], show_progress: bool = True) -> NGramIndex:
    """The n-gram index of every stage's training pieces, cached by the data's fingerprint."""
    path = cache_dir("ngram") / f"{data.fingerprint}-{'-'.join(map(str, sorted(set(ns))))}.npz"
    if path.is_file():
        try:
            return NGramIndex.load(path)
        except (ValueError, OSError, KeyError):  # an older format or a torn file: rebuild it
            path.unlink(missing_ok=True)
    pieces, ids = [], []
    for stage in data.stage_names:
        pieces.extend(data.piece_notes(stage, "train"))
        ids.extend(p["id"] for p in data.pieces(stage, "train"))
    if show_progress:
        err_console.print(f"building the copy index over {len(pieces)} training pieces (cached afterwards)")
    index = NGramIndex.build(pieces, ids, n=tuple(sorted(set(ns))))
    index.save(path)
    return index


class CopyGuard:
    """Per-row note tracking and the candidate-pitch mask for a batch."""

    def __init__(
        self,
        index: NGramIndex,
        max_notes: int,
        table: TokenTable,
        positions_per_beat: int,
        batch: int,
        penalty: float | None = None,
    ) -> None:
        self.index = index
        self.n = index_n_for(max_notes)
        self.penalty = penalty
        self.positions_per_beat = positions_per_beat
        self.pitch_ids = np.flatnonzero(table.kind == Kind.PITCH)
        self.pitch_values = table.pitch[self.pitch_ids]
        self.table = table
        self.symbols: list[list[int]] = [[] for _ in range(batch)]
        self.last_pitch = np.full(batch, -1, dtype=np.int64)
        self.last_onset = np.zeros(batch)
        self.ref_ioi = np.zeros(batch)
        self.bar_start = np.full(batch, -4.0)  # quarters; the first Bar moves it to 0
        self.beats_per_bar = np.full(batch, 4.0)
        self.onset = np.zeros(batch)
        self.blocked_count = np.zeros(batch, dtype=np.int64)

    def observe(self, tokens: np.ndarray) -> None:
        """Follow one emitted token per row ``(B,)``."""
        kinds = self.table.kind[tokens]
        for row in np.flatnonzero(kinds == Kind.BAR):
            self.bar_start[row] += self.beats_per_bar[row]
            self.onset[row] = self.bar_start[row]
        for row in np.flatnonzero(kinds == Kind.POSITION):
            self.onset[row] = self.bar_start[row] + self.table.position[tokens[row]] / self.positions_per_beat
        for row in np.flatnonzero(kinds == Kind.PITCH):
            pitch = int(self.table.pitch[tokens[row]])
            if self.last_pitch[row] >= 0:
                ioi = self.onset[row] - self.last_onset[row]
                self.symbols[row].append(int(symbol_for(self.last_pitch[row], pitch, self.ref_ioi[row], ioi)))
                if ioi > CHORD_TOL:
                    self.ref_ioi[row] = ioi
            self.last_pitch[row], self.last_onset[row] = pitch, self.onset[row]

    def adjust(self, scores: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        """Block (``-inf``) or down-weight the pitch tokens that would extend a copy, for ``rows``."""
        for row in rows:
            if self.last_pitch[row] < 0 or len(self.symbols[row]) < self.n - 1:
                continue
            ioi = self.onset[row] - self.last_onset[row]
            candidates = symbol_for(self.last_pitch[row], self.pitch_values, self.ref_ioi[row], ioi)
            blocked = self.index.blocked(np.asarray(self.symbols[row][-(self.n - 1) :]), candidates, self.n)
            if not blocked.any():
                continue
            ids = torch.as_tensor(self.pitch_ids[blocked], device=scores.device)
            allowed_before = torch.isfinite(scores[row, ids])
            self.blocked_count[row] += int(allowed_before.sum())
            if self.penalty is None:
                scores[row, ids] = float("-inf")
            else:
                scores[row, ids] = scores[row, ids] - self.penalty
        return scores
