"""Tunes: which pieces share a melody, in any key and any rhythm, so that a split can keep them together.

Two harmonisations of one chorale melody, a piece and its transposition, or a scale in C and in
F sharp are one *tune*: a model that trained on one has in effect seen the other. Splitting by
exact content puts them on both sides of the split; :func:`tune_groups` puts each tune in one
group, and the preparation assigns a whole group to one split.

The fingerprint of a piece
    1. :func:`top_line`: the melody is the top line, the highest voice that starts a note. At each
       onset the highest starting pitch enters the line when no higher note is still sounding
       (an inner voice moving under a held soprano note does not).
    2. :func:`melody_intervals`: repeated pitches are merged (a re-timed copy that splits a note
       in two has the same line) and the line becomes its successive intervals in semitones, so
       every transposition gives the same sequence. Durations play no part.
    3. :func:`shingles`: the set of interval n-grams (``n = 5`` intervals, six notes: about a
       chorale phrase's half), each hashed to 64 bits. A line shorter than ``n`` intervals is one
       shingle of the whole line.

Which pieces are one tune
    Pieces ``a`` and ``b`` are *linked* when the Jaccard similarity of their shingle sets,
    ``|A & B| / |A | B|``, is at least ``threshold``. Groups are the connected components of
    the links. A transposed or re-timed copy scores 1. On the 409 Bach chorales of music21,
    harmonisations of one chorale tune score 0.25-1 (the soprano lines differ by passing notes
    and cadences) and 98% of all pairs score under 0.15; at the default threshold 0.3 the largest
    groups are the known tune families (11 settings of "Herzlich tut mich verlangen", 8 of "Jesu,
    meine Freude", 7 of "Wer nur den lieben Gott", 7 of "Was mein Gott will") and one chain joins
    two tunes ("O Welt, ich muss dich lassen" and "Allein Gott in der Hoh"). A threshold of 0.25
    or lower chains unrelated tunes into groups of 20 and more; 0.5 leaves settings of one tune
    apart. Merging too much only coarsens the split; merging too little leaks.

    Every pair's Jaccard is exact: the pieces x shingles 0/1 matrix times its transpose counts
    the shared shingles of all pairs at once, a block of rows at a time (sparse, so pairs that
    share nothing cost nothing). Unlike a MinHash estimate, no pair over the threshold can be
    missed, and the result is the same on every machine; a block holds at most 20M pair counts,
    so 100,000 pieces take about a minute.

Everything here is a pure function of its inputs; the shingle hashes are fixed (blake2b), so
groups and splits are the same on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = [
    "SHINGLE_SIZE",
    "LINK_THRESHOLD",
    "top_line",
    "melody_intervals",
    "shingles",
    "tune_fingerprint",
    "jaccard",
    "tune_groups",
    "tune_links",
]

SHINGLE_SIZE = 5
LINK_THRESHOLD = 0.3
_MAX_PAIRS_PER_BLOCK = 20_000_000  # bounds the memory of one block of pair counts


def top_line(notes: np.ndarray) -> np.ndarray:
    """Pitches of the top line, in time order: ``(n_line,)`` int64.

    ``notes`` is a note array (:data:`curricmusic.music.notes.NOTE_DTYPE`) sorted by onset. At
    each distinct onset, the highest pitch starting there joins the line unless a strictly higher
    note started earlier and still sounds (``onset < t < onset + duration``).

    >>> from curricmusic.music.notes import make_notes
    >>> # soprano E held for two beats while the alto moves C -> D under it, then soprano F
    >>> top_line(make_notes([0, 0, 1, 2], [2, 1, 1, 1], [64, 60, 62, 65])).tolist()
    [64, 65]
    """
    if notes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    onset = np.asarray(notes["onset"], dtype=np.float64)
    end = onset + np.asarray(notes["duration"], dtype=np.float64)
    pitch = np.asarray(notes["pitch"], dtype=np.int64)
    times, first = np.unique(onset, return_index=True)
    # highest pitch starting at each distinct onset
    group = np.searchsorted(times, onset)
    highest = np.full(times.shape[0], -1, dtype=np.int64)
    np.maximum.at(highest, group, pitch)
    line = []
    held_pitch: list[int] = []  # notes still sounding, as (pitch, end) kept in two lists
    held_end: list[float] = []
    for index, time in enumerate(times):
        keep = [i for i, e in enumerate(held_end) if e > time + 1e-9]
        held_pitch = [held_pitch[i] for i in keep]
        held_end = [held_end[i] for i in keep]
        top = int(highest[index])
        if not held_pitch or top >= max(held_pitch):
            line.append(top)
        start = first[index]
        stop = first[index + 1] if index + 1 < times.shape[0] else onset.shape[0]
        held_pitch.extend(pitch[start:stop].tolist())
        held_end.extend(end[start:stop].tolist())
    return np.asarray(line, dtype=np.int64)


def melody_intervals(line: np.ndarray) -> np.ndarray:
    """Successive intervals (semitones) of ``line`` with repeated pitches merged: ``(n - 1,)``.

    >>> melody_intervals(np.array([60, 60, 62, 62, 59])).tolist()
    [2, -3]
    """
    line = np.asarray(line, dtype=np.int64)
    if line.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.ones(line.shape[0], dtype=bool)
    keep[1:] = line[1:] != line[:-1]
    return np.diff(line[keep])


def _hash64(values: Sequence[int]) -> int:
    data = np.asarray(values, dtype="<i2").tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def shingles(intervals: np.ndarray, n: int = SHINGLE_SIZE) -> np.ndarray:
    """Sorted unique 64-bit hashes (``uint64``) of the ``n``-grams of ``intervals``.

    A sequence shorter than ``n`` (but not empty) is one shingle of itself; an empty one has none.
    """
    intervals = np.clip(np.asarray(intervals, dtype=np.int64), -127, 127)
    if n < 1:
        raise ValueError(f"shingle size must be >= 1, got {n}")
    if intervals.shape[0] == 0:
        return np.zeros(0, dtype=np.uint64)
    if intervals.shape[0] < n:
        grams = [intervals.tolist()]
    else:
        grams = [intervals[i : i + n].tolist() for i in range(intervals.shape[0] - n + 1)]
    return np.unique(np.array([_hash64(g) for g in grams], dtype=np.uint64))


def tune_fingerprint(notes: np.ndarray, n: int = SHINGLE_SIZE) -> np.ndarray:
    """The shingle set of a piece's top line: ``shingles(melody_intervals(top_line(notes)), n)``."""
    return shingles(melody_intervals(top_line(notes)), n)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``|a & b| / |a | b|`` of two sorted unique arrays; 0 when both are empty."""
    union = np.union1d(a, b).shape[0]
    return np.intersect1d(a, b, assume_unique=True).shape[0] / union if union else 0.0


def tune_groups(fingerprints: Sequence[np.ndarray], threshold: float = LINK_THRESHOLD) -> np.ndarray:
    """Group index of every piece, ``(n,)`` int64: pieces linked (Jaccard >= ``threshold``),
    directly or through a chain of links, share a group; a group's index is its first piece's.

    A piece with an empty fingerprint (no notes) is linked to nothing.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    n = len(fingerprints)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy import sparse

    rows = np.repeat(np.arange(n), [f.shape[0] for f in fingerprints])
    values = np.concatenate([np.asarray(f, dtype=np.uint64) for f in fingerprints])
    _, columns = np.unique(values, return_inverse=True)
    matrix = sparse.csr_matrix(
        (np.ones(rows.shape[0], dtype=np.int32), (rows, columns.reshape(-1))),
        shape=(n, int(columns.max(initial=-1)) + 1),
    )  # (pieces, shingles) 0/1
    sizes = np.diff(matrix.indptr)  # (pieces,) shingles per piece
    block = max(1, _MAX_PAIRS_PER_BLOCK // n)
    for start in range(0, n, block):
        shared = (matrix[start : start + block] @ matrix.T).tocoo()  # (block, pieces) |A & B|
        i = shared.row + start
        j = shared.col
        union = sizes[i] + sizes[j] - shared.data
        linked = (j > i) & (shared.data >= threshold * union)
        for a, b in zip(i[linked].tolist(), j[linked].tolist(), strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def tune_links(
    pieces: Sequence[np.ndarray], others: Sequence[np.ndarray], threshold: float = LINK_THRESHOLD
) -> np.ndarray:
    """For each fingerprint of ``pieces``, the index of the first fingerprint of ``others`` it is
    linked to directly (Jaccard >= ``threshold``), or -1: ``(len(pieces),)`` int64. The same exact
    Jaccard as :func:`tune_groups`, between two sets (a new style against a pretraining stage):
    a linked piece is one tune with a piece of the other set."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    out = np.full(len(pieces), -1, dtype=np.int64)
    if not len(pieces) or not len(others):
        return out
    from scipy import sparse

    every = [*pieces, *others]
    rows = np.repeat(np.arange(len(every)), [f.shape[0] for f in every])
    values = np.concatenate([np.asarray(f, dtype=np.uint64) for f in every])
    if values.shape[0] == 0:
        return out
    _, columns = np.unique(values, return_inverse=True)
    matrix = sparse.csr_matrix(
        (np.ones(rows.shape[0], dtype=np.int32), (rows, columns.reshape(-1))),
        shape=(len(every), int(columns.max()) + 1),
    )  # (pieces + others, shingles) 0/1
    sizes = np.diff(matrix.indptr)
    mine, theirs = matrix[: len(pieces)], matrix[len(pieces) :]
    block = max(1, _MAX_PAIRS_PER_BLOCK // len(others))
    for start in range(0, len(pieces), block):
        shared = (mine[start : start + block] @ theirs.T).tocoo()  # (block, others) |A & B|
        i, j = shared.row + start, shared.col
        union = sizes[i] + sizes[len(pieces) + j] - shared.data
        linked = shared.data >= threshold * union
        for a, b in sorted(zip(i[linked].tolist(), j[linked].tolist(), strict=True)):
            if out[a] < 0:
                out[a] = b
    return out
