"""Fixed-length token windows drawn from the prepared caches by a schedule's mixture.

A window is ``seq_len + 1`` consecutive tokens of one piece (inputs and shifted targets); a piece
shorter than that is padded, and padded targets are ``-100`` (ignored by the loss). A window is
drawn as: a stage by the mixture's weight, then a piece (in proportion to its number of window
starts, so uniform over the stage's tokens; uniformly under competence pacing), then a start.

Every process draws the whole global batch from the same generator and keeps its own slice, so a
run on N processes sees exactly the windows a run on one process sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.curriculum.pacing import Mixture
from curricmusic.data.prepared import PreparedData

__all__ = ["IGNORE_INDEX", "WindowSampler", "WindowRefs", "eval_windows"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class WindowRefs:
    """Where each window of a batch starts: stage index, piece index, token start ``(G,)`` each."""

    stage: np.ndarray
    piece: np.ndarray
    start: np.ndarray

    def __len__(self) -> int:
        return int(self.stage.shape[0])

    def slice(self, lo: int, hi: int) -> WindowRefs:
        return WindowRefs(self.stage[lo:hi], self.piece[lo:hi], self.start[lo:hi])


class _StageWindows:
    """One stage/split: its tokens, piece offsets, and pieces ordered by rank for prefix sampling."""

    def __init__(self, data: PreparedData, stage: str, split: str, seq_len: int, ranks: np.ndarray | None):
        self.tokens = data.tokens(stage, split)
        offsets = data.offsets(stage, split)
        self.starts = offsets[:-1]
        self.lengths = np.diff(offsets)
        self.n_windows = np.maximum(1, self.lengths - seq_len)  # (P,) window starts per piece
        ranks = np.arange(self.lengths.shape[0]) if ranks is None else np.asarray(ranks)
        self.order = np.argsort(ranks, kind="stable")  # pieces in rank order
        self.sorted_ranks = ranks[self.order]
        self.cum_windows = np.cumsum(self.n_windows[self.order]).astype(np.float64)

    def draw(
        self, rng: np.random.Generator, count: int, rank_limit: int | None, uniform_pieces: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        eligible = self.order.shape[0] if rank_limit is None else int(np.searchsorted(self.sorted_ranks, rank_limit))
        if eligible == 0:
            raise RuntimeError("schedule gave weight to a stage with no eligible piece")
        if uniform_pieces:
            position = np.minimum((rng.random(count) * eligible).astype(np.int64), eligible - 1)
        else:
            u = rng.random(count) * self.cum_windows[eligible - 1]
            position = np.minimum(np.searchsorted(self.cum_windows, u, side="right"), eligible - 1)
        piece = self.order[position]
        start = np.floor(rng.random(count) * self.n_windows[piece]).astype(np.int64)
        return piece, start


class WindowSampler:
    """Draws batches of windows from the training split of an arm's stages."""

    def __init__(
        self,
        data: PreparedData,
        stages: Sequence[str],
        seq_len: int,
        ranks: Sequence[np.ndarray] | None = None,
        split: str = "train",
    ) -> None:
        self.seq_len = int(seq_len)
        self.stages = list(stages)
        self.pad_id = int(data.tokenizer.vocab["PAD_None"])
        self._stages = []
        for i, stage in enumerate(self.stages):
            windows = _StageWindows(data, stage, split, self.seq_len, None if ranks is None else ranks[i])
            if windows.lengths.shape[0] == 0:
                raise UserError(f"{data.root}: stage {stage!r} has no {split} pieces; the arm cannot sample from it")
            self._stages.append(windows)

    def draw(self, rng: np.random.Generator, count: int, mixture: Mixture) -> WindowRefs:
        """``count`` window references for one global batch (consumes ``rng`` deterministically)."""
        weights = np.asarray(mixture.weights, dtype=np.float64)
        stage = rng.choice(weights.shape[0], size=count, p=weights / weights.sum())
        piece = np.zeros(count, dtype=np.int64)
        start = np.zeros(count, dtype=np.int64)
        for k in np.unique(stage):
            mask = stage == k
            piece[mask], start[mask] = self._stages[k].draw(
                rng, int(mask.sum()), mixture.rank_limit, mixture.uniform_pieces
            )
        return WindowRefs(stage.astype(np.int64), piece, start)

    def gather(self, refs: WindowRefs) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets ``(B, T)`` int64 for the referenced windows."""
        return gather_windows([self._stages[k] for k in refs.stage], refs.piece, refs.start, self.seq_len, self.pad_id)

    def valid_targets(self, refs: WindowRefs) -> np.ndarray:
        """Number of non-ignored targets of each window ``(G,)``, without reading tokens."""
        lengths = np.array([self._stages[k].lengths[p] for k, p in zip(refs.stage, refs.piece, strict=True)])
        return np.minimum(self.seq_len, lengths - refs.start - 1)


def gather_windows(
    stages: Sequence[_StageWindows], pieces: np.ndarray, starts: np.ndarray, seq_len: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    count = len(stages)
    window = np.full((count, seq_len + 1), pad_id, dtype=np.int64)
    valid = np.zeros(count, dtype=np.int64)
    for row, (stage, piece, start) in enumerate(zip(stages, pieces, starts, strict=True)):
        begin = int(stage.starts[piece] + start)
        end = min(begin + seq_len + 1, int(stage.starts[piece] + stage.lengths[piece]))
        window[row, : end - begin] = stage.tokens[begin:end]
        valid[row] = end - begin - 1
    inputs = window[:, :-1].copy()
    targets = window[:, 1:].copy()
    positions = np.arange(seq_len)[None, :]
    targets[positions >= valid[:, None]] = IGNORE_INDEX
    return inputs, targets


def eval_windows(data: PreparedData, stage: str, seq_len: int, limit: int, split: str = "val") -> tuple[np.ndarray, np.ndarray]:
    """Fixed held-out windows of a stage: non-overlapping windows taken round-robin over pieces.

    The first window of every piece, then the second of every piece, ... until ``limit``; the same
    windows at every evaluation of every arm. Returns inputs and targets ``(n, T)``, possibly empty.
    """
    windows = _StageWindows(data, stage, split, seq_len, None)
    refs: list[tuple[int, int]] = []
    per_piece = [list(range(0, max(1, int(n) - 1), seq_len)) for n in windows.lengths]
    depth = 0
    while len(refs) < limit and any(depth < len(starts) for starts in per_piece):
        for piece, starts in enumerate(per_piece):
            if depth < len(starts) and len(refs) < limit:
                refs.append((piece, starts[depth]))
        depth += 1
    if not refs:
        empty = np.zeros((0, seq_len), dtype=np.int64)
        return empty, empty
    pieces = np.array([r[0] for r in refs])
    starts = np.array([r[1] for r in refs])
    pad_id = int(data.tokenizer.vocab["PAD_None"])
    return gather_windows([windows] * len(refs), pieces, starts, seq_len, pad_id)
