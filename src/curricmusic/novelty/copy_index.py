"""Symbolic copy detection: a transposition- and tempo-invariant n-gram index over training pieces.

Symbols
    A piece (a :data:`~curricmusic.music.notes.NOTE_DTYPE` array sorted by ``(onset, pitch)``)
    becomes one symbol per note transition, ``len(notes) - 1`` symbols::

        symbol[i] = (interval[i] + MAX_INTERVAL) * N_RHYTHM + rhythm[i]
        interval[i] = clip(pitch[i+1] - pitch[i], -MAX_INTERVAL, MAX_INTERVAL)
        ioi[i] = onset[i+1] - onset[i]
        rhythm[i] = CHORD                     if ioi[i] <= CHORD_TOL   (a note of the same chord)
                    START                     if no earlier ioi > CHORD_TOL  (no reference yet)
                    clip(round(12 * log2(ioi[i] / ref)), -36, 36) + 36   otherwise,

    where ``ref`` is the last inter-onset interval above ``CHORD_TOL`` before transition ``i``.
    Intervals make the symbols transposition invariant; the log2 ratio of successive inter-onset
    intervals (12 steps per doubling: 3:2, 4:3, 5:4 and 6:5 fall within 0.16 of distinct grid
    points) makes them invariant to any uniform tempo scaling or re-timing. Durations and
    velocities are ignored.
    A span of ``m`` copied notes is ``m - 1`` consecutive symbols, all equal except that the
    first needs only an equal interval: its rhythm code compares with the inter-onset interval
    *before* the span, which a copy need not share (an excerpt pasted into new material, or one
    starting a piece, where the code is ``START``). So a re-timed, transposed excerpt of ``m``
    notes is found with all ``m`` notes. Hit rates and copy blocking compare whole symbols.

Index
    :class:`NGramIndex` keeps the training symbols in a suffix array
    (:mod:`curricmusic.novelty._suffixarray`) for exact longest-copy and hit-rate queries, and
    sorted 64-bit rolling hashes of the n-grams for each size in ``ns`` for microsecond
    :meth:`NGramIndex.blocked` look-ups at sampling time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from curricmusic.common.paths import cache_dir
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.data.prepared import PreparedData
from curricmusic.novelty import _ngram_store as _store
from curricmusic.novelty import _suffixarray as _sa

__all__ = [
    "MAX_INTERVAL",
    "CHORD_TOL",
    "CHORD",
    "START",
    "N_RHYTHM",
    "N_SYMBOLS",
    "DEFAULT_NS",
    "note_symbols",
    "rhythm_code",
    "symbol_for",
    "symbol_of",
    "CopiedSpan",
    "CopyAnalysis",
    "NGramIndex",
    "training_index",
]

MAX_INTERVAL = 48  # semitones; larger leaps are clipped
RATIO_STEPS = 12  # log2 grid steps per doubling of the inter-onset interval
MAX_RATIO_STEP = 36  # ratios beyond 8x (or 1/8) are clipped
CHORD_TOL = 1e-3  # quarter notes: onsets closer than this are simultaneous
N_RATIO = 2 * MAX_RATIO_STEP + 1
CHORD = N_RATIO  # rhythm code of a note sounding with the previous one
START = N_RATIO + 1  # rhythm code of the first inter-onset interval (no reference yet)
N_RHYTHM = N_RATIO + 2
N_SYMBOLS = (2 * MAX_INTERVAL + 1) * N_RHYTHM
DEFAULT_NS = (4, 8, 16)  # n-gram sizes (in symbols) whose hit rates novelty reports

_FORMAT = 2  # 1: an .npz of int32 text, suffix array and hashes; 2: a memory-mapped file
# Everything a cached index depends on: a change in any of these makes old caches stale.
_ENCODING = [_FORMAT, MAX_INTERVAL, RATIO_STEPS, MAX_RATIO_STEP, CHORD_TOL, N_SYMBOLS]


def rhythm_code(prev_ioi: ArrayLike, ioi: ArrayLike) -> np.ndarray:
    """Rhythm code of a transition with inter-onset interval ``ioi`` after reference ``prev_ioi``.

    ``prev_ioi`` is the last inter-onset interval above :data:`CHORD_TOL` (0 or less when there
    is none yet). Broadcasts over arrays.
    """
    prev = np.asarray(prev_ioi, dtype=np.float64)
    cur = np.asarray(ioi, dtype=np.float64)
    chord = cur <= CHORD_TOL
    has_ref = prev > CHORD_TOL
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.rint(RATIO_STEPS * np.log2(cur / np.where(has_ref, prev, 1.0)))
    steps = np.clip(np.nan_to_num(steps), -MAX_RATIO_STEP, MAX_RATIO_STEP).astype(np.int64)
    return np.where(chord, CHORD, np.where(has_ref, steps + MAX_RATIO_STEP, START))


def symbol_for(prev_pitch: ArrayLike, pitch: ArrayLike, prev_ioi: ArrayLike, ioi: ArrayLike) -> np.ndarray:
    """Symbol of the transition from a note at ``prev_pitch`` to one at ``pitch`` (broadcasts).

    ``ioi`` is the new note's onset minus the previous note's onset; ``prev_ioi`` the last
    inter-onset interval above :data:`CHORD_TOL` before it (0 when none). A generator computes
    the candidate symbols of all 128 pitches at once with
    ``symbol_for(last_pitch, np.arange(128), ref_ioi, ioi)``.
    """
    interval = np.clip(
        np.asarray(pitch, dtype=np.int64) - np.asarray(prev_pitch, dtype=np.int64),
        -MAX_INTERVAL,
        MAX_INTERVAL,
    )
    return ((interval + MAX_INTERVAL) * N_RHYTHM + rhythm_code(prev_ioi, ioi)).astype(np.int32)


def symbol_of(prev_pitch: int, pitch: int, prev_ioi: float, ioi: float) -> int:
    """:func:`symbol_for` of one transition in plain Python (no array overhead: sampling loops).

    Rounding matches ``np.rint`` (half to even, as Python's ``round``).
    """
    interval = min(max(int(pitch) - int(prev_pitch), -MAX_INTERVAL), MAX_INTERVAL)
    if ioi <= CHORD_TOL:
        rhythm = CHORD
    elif prev_ioi > CHORD_TOL:
        step = round(RATIO_STEPS * math.log2(ioi / prev_ioi))
        rhythm = min(max(step, -MAX_RATIO_STEP), MAX_RATIO_STEP) + MAX_RATIO_STEP
    else:
        rhythm = START
    return (interval + MAX_INTERVAL) * N_RHYTHM + rhythm


def note_symbols(notes: np.ndarray) -> np.ndarray:
    """One int32 symbol per note transition (``len(notes) - 1``); see the module docstring."""
    if notes.shape[0] < 2:
        return np.empty(0, dtype=np.int32)
    pitch = notes["pitch"].astype(np.int64)
    ioi = np.diff(notes["onset"].astype(np.float64))
    moving = ioi > CHORD_TOL
    last = np.maximum.accumulate(np.where(moving, np.arange(ioi.size), -1))
    ref_index = np.concatenate(([-1], last[:-1]))  # last moving transition strictly before i
    prev_ioi = np.where(ref_index >= 0, ioi[np.maximum(ref_index, 0)], 0.0)
    return symbol_for(pitch[:-1], pitch[1:], prev_ioi, ioi)


@dataclass(frozen=True)
class CopiedSpan:
    """The longest run of consecutive query notes found contiguously in one training piece.

    ``bars`` is the run's duration in bars: from its first onset to the latest note end among
    its notes, divided by the bar length. With no copied transition at all (``notes <= 1``)
    ``piece_id`` is None and both indices are -1.
    """

    notes: int
    bars: float
    piece_id: str | None
    piece_note_index: int
    query_note_index: int


@dataclass(frozen=True)
class CopyAnalysis:
    """Longest copied span of one query and its n-gram hit rates (NaN when shorter than n)."""

    span: CopiedSpan
    hit_rates: dict[int, float]


class NGramIndex:
    """Transposition- and tempo-invariant copy index over training pieces.

    Build it once with :meth:`build` (note arrays) or :meth:`from_symbols`, cache it with
    :meth:`save` / :meth:`load`. ``ns`` lists the n-gram sizes (in symbols) hashed for
    :meth:`blocked`; a generator that blocks copies longer than ``max_span`` notes must build the
    index with ``max_span`` in ``ns``, e.g. ``NGramIndex.build(pieces, ids, n=(4, 8, 16, 12))``.
    Hit rates and copied spans work for any n without hashing.

    An index always lives in a file (see :mod:`curricmusic.novelty._ngram_store`): the one given
    as ``path`` to the build, or an unnamed temporary one. Its arrays are memory-mapped, so
    loading takes no time whatever the corpus size, memory holds only the pages queries touch,
    and processes that open the same file share them.
    """

    def __init__(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Internal: use :meth:`build`, :meth:`from_symbols` or :meth:`load`."""
        self.piece_ids = list(meta["piece_ids"])
        self._packed = arrays["packed"]  # (total,) uint64: 4-symbol window at each text position
        self._starts = arrays["starts"]  # (pieces,) int64 offset of each piece in the text
        self._lengths = arrays["lengths"]  # (pieces,) int64 symbols per piece
        self._sa = arrays["sa"]  # (symbols,) int32 (int64 from 2**31 positions)
        self._level0 = (arrays["level0_keys"], arrays["level0_rows"])  # (runs,), (runs + 1,)
        self._hashes = {int(n): arrays[f"hash_{n}"] for n in meta["ns"]}  # sorted uint64

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        pieces: Iterable[np.ndarray],
        piece_ids: Sequence[str],
        n: int | Sequence[int] = DEFAULT_NS,
        *,
        path: str | Path | None = None,
        progress: bool = False,
    ) -> NGramIndex:
        """Index note arrays (``NOTE_DTYPE``, sorted; any iterable, read once); ``n`` are the
        hashed n-gram sizes. Written to ``path`` (atomically) or a temporary file."""
        symbols = (note_symbols(p) for p in pieces)
        return cls.from_symbols(symbols, piece_ids, n, path=path, progress=progress)

    @classmethod
    def from_symbols(
        cls,
        symbols: Iterable[np.ndarray],
        piece_ids: Sequence[str],
        n: int | Sequence[int] = DEFAULT_NS,
        *,
        path: str | Path | None = None,
        progress: bool = False,
    ) -> NGramIndex:
        """Index symbol arrays directly (as made by :func:`note_symbols`)."""
        piece_ids = [str(p) for p in piece_ids]
        ns = _hashed_sizes(n)
        with progress_bar("copy index: reading pieces", len(piece_ids), progress) as update:
            vals, lengths = _store.assemble_text(symbols, N_SYMBOLS, update)
        if lengths.size != len(piece_ids):
            raise ValueError(f"{lengths.size} pieces but {len(piece_ids)} piece ids")
        meta = {"encoding": _ENCODING, "piece_ids": piece_ids}
        label = f"copy index: {int(lengths.sum()):,} symbols, %"
        with progress_bar(label, 100, progress) as update, _store.index_file(path) as handle:
            _store.write_index(handle, vals, lengths, meta, ns, update)
            del vals
            handle.flush()
            return cls.load(handle.name)

    def save(self, path: str | Path) -> Path:
        """Write the index to ``path`` atomically (any extension; ``.npz`` caches are stale)."""
        arrays = {
            "packed": self._packed,
            "starts": self._starts,
            "lengths": self._lengths,
            "sa": self._sa,
            "level0_keys": self._level0[0],
            "level0_rows": self._level0[1],
        }
        arrays.update({f"hash_{n}": h for n, h in self._hashes.items()})
        meta = {"encoding": _ENCODING, "piece_ids": self.piece_ids, "ns": list(self.ns)}
        _store.save_arrays(path, _store.INDEX_KIND, arrays, meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> NGramIndex:
        """Memory-map an index written by :meth:`save` or a build (ValueError when stale, torn
        or not an index)."""
        meta, arrays = _store.open_index(path, _ENCODING)
        return cls(meta, arrays)

    def with_table(self, n: int, path: str | Path, progress: bool = False) -> NGramIndex:
        """Add the hash table of size ``n`` for :meth:`blocked`, kept in its own file at ``path``:
        memory-mapped when it is there and valid, else built and written there first."""
        n = _hashed_sizes(n)[0]
        if n in self._hashes:
            return self
        symbols = int(self._lengths.sum())
        try:
            self._hashes[n] = _store.open_table(path, _ENCODING, n, symbols)
            return self
        except (OSError, ValueError):  # missing, stale or torn: build it
            pass
        label = f"copy index: {n}-gram table over {symbols:,} symbols"
        with progress_bar(label, 1, progress) as update:
            meta = {"encoding": _ENCODING, "n": n, "symbols": symbols}
            _store.save_table(path, _store.text_of(self._packed), n, meta)
            update()
        self._hashes[n] = _store.open_table(path, _ENCODING, n, symbols)
        return self

    # -- size ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of indexed pieces."""
        return len(self.piece_ids)

    @property
    def ns(self) -> tuple[int, ...]:
        """Hashed n-gram sizes (what :meth:`blocked` accepts as ``max_span``)."""
        return tuple(sorted(self._hashes))

    @property
    def stats(self) -> dict[str, int | list[int]]:
        """Pieces, symbols, hashed n-gram sizes and distinct n-grams per size."""
        return {
            "pieces": len(self.piece_ids),
            "symbols": int(self._lengths.sum()),
            "ns": list(self.ns),
            "distinct_ngrams": [int(self._hashes[v].size) for v in self.ns],
        }

    # -- queries -------------------------------------------------------------------------------

    def matching_statistics(self, symbol_seqs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (length, text position) of the longest match starting at each symbol.

        ``length[p]`` is the longest ``L`` with ``query[p:p+L]`` inside one training piece;
        the position is -1 where ``L == 0``.
        """
        seqs = [np.asarray(s, dtype=np.int32) for s in symbol_seqs]
        if not seqs:
            return []
        sizes = np.array([s.size for s in seqs], dtype=np.int64)
        query = np.concatenate(seqs)
        if query.size and (query.min() < 0 or query.max() >= N_SYMBOLS):
            raise ValueError(f"query symbols must lie in [0, {N_SYMBOLS})")
        ends = np.repeat(np.cumsum(sizes), sizes)
        limit = ends - np.arange(query.size)
        length, row = _sa.matching_statistics(self._sa, self._packed, self._level0, query, limit)
        where = np.where(row >= 0, self._sa[np.maximum(row, 0)].astype(np.int64), -1)
        cuts = np.cumsum(sizes)[:-1]
        return list(zip(np.split(length, cuts), np.split(where, cuts), strict=True))

    def hit_rate(self, symbols: np.ndarray, n: int) -> float:
        """Fraction of the query's n-grams present in training (NaN when shorter than n)."""
        symbols = np.asarray(symbols, dtype=np.int32)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if symbols.size < n:
            return float("nan")
        if n in self._hashes:
            table = self._hashes[n]
            hashes = _store.ngram_hashes(symbols.astype(np.int64) + 1, n)
            found = np.searchsorted(table, hashes)
            return (
                float(np.mean(table[np.minimum(found, table.size - 1)] == hashes))
                if table.size
                else 0.0
            )
        ((length, _),) = self.matching_statistics([symbols])
        return _rates(length, (n,))[n]

    def longest_match(self, symbols: np.ndarray) -> tuple[int, int, int, int]:
        """(symbols, piece index, piece symbol index, query symbol index) of the longest copy."""
        return self.longest_matches([symbols])[0]

    def longest_matches(
        self, symbol_seqs: Sequence[np.ndarray], *, loose_start: bool = True
    ) -> list[tuple[int, int, int, int]]:
        """:meth:`longest_match` for many queries at once (one vectorised search).

        With ``loose_start`` the run's first symbol needs only an equal interval (see the module
        docstring); without it the result is the plain longest common substring.
        """
        stats = self.matching_statistics(symbol_seqs)
        return [
            self._best(np.asarray(q, dtype=np.int32), length, where, loose_start)
            for q, (length, where) in zip(symbol_seqs, stats, strict=True)
        ]

    def longest_copied_span(self, notes: np.ndarray, bar_len: float = 4.0) -> CopiedSpan:
        """The longest run of ``notes`` copied (transposed and/or re-timed) from one piece."""
        return self.analyze([notes], bar_len=bar_len, ns=())[0].span

    def analyze(
        self,
        pieces: Sequence[np.ndarray],
        bar_len: float | Sequence[float] = 4.0,
        ns: Sequence[int] = DEFAULT_NS,
    ) -> list[CopyAnalysis]:
        """Longest copied span and exact n-gram hit rates of every query piece, in one search."""
        bar_lens = np.broadcast_to(np.asarray(bar_len, dtype=np.float64), (len(pieces),))
        seqs = [note_symbols(p) for p in pieces]
        stats = self.matching_statistics(seqs)
        out = []
        for notes, q, (length, where), bl in zip(pieces, seqs, stats, bar_lens, strict=True):
            run, piece, piece_pos, q_pos = self._best(q, length, where, True)
            out.append(
                CopyAnalysis(
                    self._span(notes, run, piece, piece_pos, q_pos, bl), _rates(length, ns)
                )
            )
        return out

    def blocked(
        self, context_symbols: np.ndarray, candidates: np.ndarray, max_span: int
    ) -> np.ndarray:
        """True for candidate next symbols that would extend a copy past ``max_span`` notes.

        A candidate is blocked when the last ``max_span - 1`` context symbols followed by it
        form a training n-gram (``n = max_span`` symbols = ``max_span + 1`` notes). One hash and
        one ``searchsorted`` per candidate; ``max_span`` must be one of :attr:`ns`. Hash
        collisions (probability about ``table size / 2**64``) could block a novel candidate.
        """
        candidates = np.asarray(candidates)
        if max_span not in self._hashes:
            raise ValueError(
                f"max_span {max_span} not indexed; build the index with it in n (have {self.ns})"
            )
        context = np.asarray(context_symbols, dtype=np.int64)
        if context.size < max_span - 1 or self._hashes[max_span].size == 0:
            return np.zeros(candidates.shape, dtype=bool)
        context = context[context.size - (max_span - 1) :]
        with np.errstate(over="ignore"):
            head = np.zeros(1, dtype=np.uint64)
            for value in context:
                head = head * _store.HASH_BASE + np.uint64(value + 1)
            hashes = head * _store.HASH_BASE + (candidates.astype(np.uint64) + np.uint64(1))
        table = self._hashes[max_span]
        found = np.minimum(np.searchsorted(table, hashes), table.size - 1)
        return table[found] == hashes

    def blocked_rows(self, contexts: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """:meth:`blocked` for many rows at once: contexts (R, n - 1), candidates (R, C) -> (R, C).

        Row r's candidate c is blocked when ``contexts[r]`` followed by ``candidates[r, c]`` is an
        indexed n-gram (n = the contexts' width + 1, which must be one of :attr:`ns`).
        """
        n = contexts.shape[1] + 1
        if n not in self._hashes:
            raise ValueError(f"max_span {n} not indexed; build the index with it in n (have {self.ns})")
        table = self._hashes[n]
        if table.size == 0 or contexts.shape[0] == 0:
            return np.zeros(candidates.shape, dtype=bool)
        with np.errstate(over="ignore"):
            head = np.zeros(contexts.shape[0], dtype=np.uint64)
            for column in contexts.astype(np.int64).T + 1:
                head = head * _store.HASH_BASE + column.astype(np.uint64)
            hashes = head[:, None] * _store.HASH_BASE + (candidates.astype(np.int64) + 1).astype(np.uint64)
        found = np.minimum(np.searchsorted(table, hashes), table.size - 1)
        return table[found] == hashes

    # -- helpers -------------------------------------------------------------------------------

    def _symbols(self, text_pos: np.ndarray) -> np.ndarray:
        """Symbols at text positions (-1 at a sentinel)."""
        vals = (self._packed[text_pos] >> np.uint64(48)).astype(np.int64)
        return np.where(vals == _sa.END, -1, vals - 1)

    def _locate(self, text_pos: int) -> tuple[int, int]:
        piece = int(np.searchsorted(self._starts, text_pos, side="right") - 1)
        return piece, int(text_pos - self._starts[piece])

    def _best(self, q: np.ndarray, length: np.ndarray, where: np.ndarray, loose_start: bool) -> tuple[int, int, int, int]:
        """Longest run of equal symbols, extended left by one symbol of equal interval."""
        if length.size == 0 or length.max() == 0:
            return (0, -1, -1, -1)
        run = int(length.max())
        starts = np.flatnonzero(length == run)
        pos = where[starts]
        if loose_start:
            ok = (starts > 0) & (pos > 0)
            before = self._symbols(np.where(ok, pos - 1, 0))
            ok &= (before >= 0) & (before // N_RHYTHM == q[np.maximum(starts - 1, 0)] // N_RHYTHM)
            if ok.any():
                first = int(np.argmax(ok))
                starts, pos, run = starts - 1, pos - 1, run + 1
                starts, pos = starts[first:], pos[first:]
        piece, piece_pos = self._locate(int(pos[0]))
        return (run, piece, piece_pos, int(starts[0]))

    def _span(self, notes: np.ndarray, run: int, piece: int, piece_pos: int, q_pos: int, bar_len: float) -> CopiedSpan:
        if run == 0:
            return CopiedSpan(min(1, notes.shape[0]), 0.0, None, -1, -1)
        chunk = notes[q_pos : q_pos + run + 1]
        duration = float(np.max(chunk["onset"] + chunk["duration"]) - chunk["onset"][0])
        return CopiedSpan(run + 1, duration / bar_len, self.piece_ids[piece], piece_pos, q_pos)


def _rates(length: np.ndarray, ns: Sequence[int]) -> dict[int, float]:
    """Hit rate per n from matching statistics: n-gram at p present iff length[p] >= n."""
    rates = {}
    for n in ns:
        count = length.size - n + 1
        rates[n] = float(np.mean(length[:count] >= n)) if count > 0 else float("nan")
    return rates


def _hashed_sizes(n: int | Sequence[int]) -> list[int]:
    ns = sorted({int(v) for v in np.atleast_1d(np.asarray(n, dtype=np.int64))})
    if any(v < 1 for v in ns):
        raise ValueError(f"n-gram sizes must be >= 1, got {ns}")
    return ns


def _training_pieces(data: PreparedData) -> tuple[Iterator[np.ndarray], list[str]]:
    """Every stage's training pieces (read lazily, one at a time) and their ids."""
    stages = data.stage_names
    ids = [str(p["id"]) for stage in stages for p in data.pieces(stage, "train")]
    return (notes for stage in stages for notes in data.piece_notes(stage, "train")), ids


def training_index(
    data: PreparedData, ns: Sequence[int] = (), show_progress: bool = True
) -> NGramIndex:
    """The n-gram index of every stage's training pieces, cached by the data's fingerprint.

    ``ns`` are the sizes :meth:`NGramIndex.blocked` will be asked about (copy-blocking); copied
    spans and hit rates need none. The index and each size's hash table are cached in files of
    their own under ``<cache>/ngram/`` and memory-mapped; a stale, torn or older-format file
    (the ``.npz`` caches of format 1) is rebuilt, never trusted.
    """
    folder = cache_dir("ngram")
    path = folder / f"{data.fingerprint}.index"
    try:
        index = NGramIndex.load(path)
    except (OSError, ValueError):  # missing, an older format or a torn file: rebuild it
        pieces, ids = _training_pieces(data)
        if show_progress:
            err_console.print(f"building the copy index over {len(ids)} training pieces (cached afterwards)")
        index = NGramIndex.build(pieces, ids, n=(), path=path, progress=show_progress)
    for n in sorted({int(v) for v in ns}):
        index.with_table(n, folder / f"{data.fingerprint}-{n}.table", progress=show_progress)
    return index
