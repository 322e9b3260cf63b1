"""Training windows drawn from packed stages: every real token of a stage equally likely.

Each stage's training pieces are packed back to back, with their own BOS and EOS, in the arm's
rank order (under competence pacing the eligible pieces are then a prefix of the stream). A
window is ``seq_len + 1`` consecutive tokens of that stream (inputs and shifted targets) at a
uniformly random start. The stream is circular: a window that runs past the end of the eligible
prefix continues at its beginning, and a prefix shorter than a window repeats. So every window is
full of real tokens (no padding), every real token of the prefix is a target of a window with the
same probability ``seq_len / prefix`` whatever its piece's length, and every arm trains on exactly
``steps x batch_size x seq_len`` real tokens. Attention crosses piece boundaries, as in language
model pre-training on packed documents.

How many windows of each stage a batch holds comes from the schedule
(:func:`~curricmusic.curriculum.allocation.allocate`), so only the starts are random. Every process
draws the whole global batch from the same generator and keeps its own slice, so a run on N
processes sees exactly the windows a run on one process sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.curriculum.pacing import Mixture
from curricmusic.data.prepared import PreparedData
from curricmusic.model.transformer import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "PackedStage", "WindowSampler", "WindowRefs"]



@dataclass(frozen=True)
class WindowRefs:
    """Where each window of a batch starts ``(G,)`` each: its stage, its start in the stage's
    packed stream, and the length of that stage's eligible prefix; ``length`` tokens of inputs."""

    stage: np.ndarray
    start: np.ndarray
    prefix: np.ndarray
    length: int

    def __len__(self) -> int:
        return int(self.stage.shape[0])

    def slice(self, lo: int, hi: int) -> WindowRefs:
        return WindowRefs(self.stage[lo:hi], self.start[lo:hi], self.prefix[lo:hi], self.length)


class PackedStage:
    """One stage's split packed in rank order, read as a circular stream without copying it.

    ``tokens`` and ``offsets`` are the cache (pieces in storage order); ``ranks`` ``(P,)`` give each
    stored piece its rank (None: storage order); ``keep`` (stored indices; None: every piece)
    restricts the stream to those pieces (a few-shot subset). Stream position p lies in the piece
    at rank ``searchsorted(stream_offsets, p) - 1``.
    """

    def __init__(
        self, tokens: np.ndarray, offsets: np.ndarray, ranks: np.ndarray | None = None, keep: np.ndarray | None = None
    ) -> None:
        self.tokens = tokens
        self.offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.diff(self.offsets)
        ranks = np.arange(lengths.shape[0]) if ranks is None else np.asarray(ranks)
        self.order = np.argsort(ranks, kind="stable")  # stored piece index at each stream rank
        if keep is not None:
            self.order = self.order[np.isin(self.order, np.asarray(keep, dtype=np.int64))]
        self.sorted_ranks = ranks[self.order]
        self.stream_offsets = np.concatenate([[0], np.cumsum(lengths[self.order])]).astype(np.int64)  # (P + 1,)
        self.in_storage_order = bool(np.array_equal(self.order, np.arange(self.order.shape[0])))

    @property
    def n_tokens(self) -> int:
        return int(self.stream_offsets[-1])

    def prefix(self, rank_limit: int | None) -> int:
        """Tokens of the pieces that rank below ``rank_limit`` (all of them for None)."""
        if rank_limit is None:
            return self.n_tokens
        return int(self.stream_offsets[int(np.searchsorted(self.sorted_ranks, rank_limit))])

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Tokens at stream positions (any shape, each in [0, n_tokens)) as int64."""
        if self.in_storage_order:
            return np.asarray(self.tokens[positions.ravel()], dtype=np.int64).reshape(positions.shape)
        rank = np.searchsorted(self.stream_offsets, positions, side="right") - 1
        stored = self.offsets[self.order[rank]] + (positions - self.stream_offsets[rank])
        return np.asarray(self.tokens[stored.ravel()], dtype=np.int64).reshape(positions.shape)


class WindowSampler:
    """Draws batches of windows from the training split of an arm's stages."""

    def __init__(
        self,
        data: PreparedData,
        stages: Sequence[str],
        seq_len: int,
        ranks: Sequence[np.ndarray] | None = None,
        split: str = "train",
        pieces: Sequence[np.ndarray | None] | None = None,
    ) -> None:
        """``pieces[k]``: the stored indices of stage k's pieces to draw from (None: all)."""
        self.seq_len = int(seq_len)
        self.stages = list(stages)
        self._stages: list[PackedStage] = []
        for i, stage in enumerate(self.stages):
            packed = PackedStage(
                data.tokens(stage, split),
                data.offsets(stage, split),
                None if ranks is None else ranks[i],
                None if pieces is None else pieces[i],
            )
            if packed.n_tokens == 0:
                raise UserError(f"{data.root}: stage {stage!r} has no {split} pieces; the arm cannot sample from it")
            self._stages.append(packed)

    def prefix_tokens(self, rank_limit: int | None) -> np.ndarray:
        """Eligible tokens of each stage ``(K,)`` under ``rank_limit``."""
        return np.array([s.prefix(rank_limit) for s in self._stages], dtype=np.int64)

    def draw(self, rng: np.random.Generator, counts: np.ndarray, mixture: Mixture) -> WindowRefs:
        """``counts[k]`` windows of stage k, stages in order (consumes ``rng`` deterministically)."""
        counts = np.asarray(counts, dtype=np.int64)
        prefixes = self.prefix_tokens(mixture.rank_limit)
        if np.any((counts > 0) & (prefixes == 0)):
            raise RuntimeError("the schedule gave windows to a stage with no eligible piece")
        length = int(mixture.seq_len or self.seq_len)
        if not 1 <= length <= self.seq_len:
            raise ValueError(f"a step's window length must be in [1, {self.seq_len}] (the model's context), got {length}")
        stage = np.repeat(np.arange(counts.shape[0]), counts)
        prefix = prefixes[stage]
        start = np.minimum(np.floor(rng.random(stage.shape[0]) * prefix).astype(np.int64), prefix - 1)
        return WindowRefs(stage, start, prefix, length)

    def gather(self, refs: WindowRefs) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets ``(B, T)`` int64 of the referenced windows (every target is real)."""
        window = np.zeros((len(refs), refs.length + 1), dtype=np.int64)
        offsets = np.arange(refs.length + 1)
        for k in np.unique(refs.stage):
            rows = np.flatnonzero(refs.stage == k)
            positions = (refs.start[rows, None] + offsets[None, :]) % refs.prefix[rows, None]
            window[rows] = self._stages[int(k)].read(positions)
        return window[:, :-1].copy(), window[:, 1:].copy()
