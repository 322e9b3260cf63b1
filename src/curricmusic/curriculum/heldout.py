"""Held-out windows that score every token of every piece once, with as much context as fits.

A piece of L tokens has L - 1 targets (every token after its BOS). A piece with L - 1 <= seq_len
is one window. A longer one is cut into windows of exactly ``seq_len`` inputs whose last targets
are at seq_len, seq_len + stride, seq_len + 2 stride, ... and finally L - 1; each window scores
the targets after the previous window's last one. So target j (1-based, j > seq_len) is scored in
the window that ends at e(j) = min(L - 1, seq_len + stride x ceil((j - seq_len) / stride)), with the
``e(j) - seq_len`` tokens before it as context: at least ``seq_len - stride`` tokens.

The windows depend only on the data, ``seq_len`` and ``stride``: every arm is scored on the same
ones, at every evaluation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from curricmusic.curriculum.windows import IGNORE_INDEX
from curricmusic.data.prepared import PreparedData

__all__ = ["HeldOut", "piece_windows", "heldout_windows", "piece_subset", "SUBSET_STREAM"]

#: Mixed into the seed of every evaluation subset (independent of every other random stream).
SUBSET_STREAM = 0xE7A1


@dataclass(frozen=True)
class HeldOut:
    """Windows of one stage's split, longest first (so a micro-batch can be cut to its longest row).

    ``inputs`` and ``targets`` ``(N, T)`` int64 (inputs padded with 0 after ``lengths``, targets not scored
    set to ``IGNORE_INDEX``), ``lengths`` ``(N,)`` the used columns of each row, ``n_targets`` the
    scored targets (the split's tokens minus one per piece).
    """

    inputs: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray
    n_targets: int

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def piece_windows(length: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows of a piece of ``length`` tokens: (first input, end of inputs, first scored target),
    positions in the piece; the window's targets are tokens ``first + 1 .. end`` and those from
    ``scored`` on count."""
    if length < 2:
        return []
    last = length - 1  # index of the last target
    if last <= seq_len:
        return [(0, last, 1)]
    windows, scored = [], 1
    end = seq_len
    while True:
        end = min(end, last)
        windows.append((end - seq_len, end, scored))
        if end == last:
            return windows
        scored = end + 1
        end += stride


def piece_subset(n_pieces: int, limit: int | None, name: str) -> np.ndarray:
    """Stored indices (ascending) of at most ``limit`` of ``n_pieces`` pieces: a seeded subset
    that depends only on the stage's (or style's) ``name``, so every arm, seed and evaluation of
    an experiment scores the same pieces. All of them when ``limit`` is None or not smaller."""
    if limit is None or limit >= n_pieces:
        return np.arange(n_pieces, dtype=np.int64)
    rng = np.random.default_rng([SUBSET_STREAM, zlib.crc32(name.encode())])
    return np.sort(rng.permutation(n_pieces)[:limit]).astype(np.int64)


def heldout_windows(
    data: PreparedData, stage: str, split: str, seq_len: int, stride: int, pieces: np.ndarray | None = None
) -> HeldOut:
    """Every token of ``stage``'s ``split`` pieces as strided windows (see the module docstring);
    ``pieces``: only those stored indices (every token of each)."""
    tokens = np.asarray(data.tokens(stage, split))
    offsets = data.offsets(stage, split)
    keep = np.arange(offsets.shape[0] - 1) if pieces is None else np.asarray(pieces, dtype=np.int64)
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for begin, end in zip(offsets[:-1][keep], offsets[1:][keep], strict=True):
        piece = tokens[int(begin) : int(end)].astype(np.int64)
        for first, stop, scored in piece_windows(piece.shape[0], seq_len, stride):
            inputs = piece[first:stop]
            targets = piece[first + 1 : stop + 1].copy()
            targets[: scored - first - 1] = IGNORE_INDEX
            rows.append((inputs, targets))
    rows.sort(key=lambda row: -row[0].shape[0])  # stable: longest first, then piece order
    n = len(rows)
    inputs = np.zeros((n, seq_len), dtype=np.int64)  # after a row's length: never attended to, never scored
    targets = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    for i, (x, y) in enumerate(rows):
        inputs[i, : x.shape[0]] = x
        targets[i, : y.shape[0]] = y
        lengths[i] = x.shape[0]
    return HeldOut(inputs, targets, lengths, int((targets != IGNORE_INDEX).sum()))
