"""A generalised suffix array over a 16-bit symbol text: built with libdivsufsort, searched with NumPy.

Text
    ``vals``: uint16, ``symbol + 1`` per symbol (symbols lie in ``[0, END - 1)``), and ``END`` for
    the sentinel that follows every piece.

Packed windows
    Every text position ``i`` gets a 64-bit key holding the four values ``vals[i:i+4]`` as 16-bit
    fields, the first the most significant; a sentinel and everything after it in the window
    become ``END`` (:func:`pack`). Comparing keys compares four symbols at once, and the order of
    keys agrees with the order of suffixes. The keys are stored (8 bytes a symbol, native, so a
    search gathers them at memory speed) and the text is their top field.

Order and construction
    Suffixes are ordered lexicographically, a sentinel above every symbol, and suffixes equal up
    to and including their sentinel by position: as if each piece ended in its own sentinel,
    the earlier piece's smaller. :func:`build_suffix_array` gives libdivsufsort exactly that
    text: each position a big-endian word of 3 bytes (4 with more than ~16.7M pieces), symbols
    as themselves and the k-th sentinel as ``END + k``; the byte suffix array's rows at word
    starts, less the sentinels, are the suffix array. Memory: the byte text (3 bytes a symbol)
    and libdivsufsort's int32 output (12 bytes a symbol), then int32 rows (4 bytes a symbol):
    about 17 bytes a symbol at the peak. Positions are int32 below 2**31 text positions.

Search (matching statistics)
    For each query position ``p`` the longest prefix of ``query[p:]`` that occurs in the text, and
    one suffix-array row where it occurs. Level ``j`` narrows the suffix-array range that matches
    the first ``4 j`` symbols by the next packed window: level 0 is ``np.searchsorted`` over the
    distinct level-0 keys (``packed[sa[r]]``, sorted, stored once per run with the run's first
    row: :func:`level0_runs`), deeper levels a vectorised binary search inside each range. When
    a range empties, the longest partial match is at the insertion point's neighbours. Exact: no
    hashing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import Literal

import numpy as np

__all__ = [
    "END",
    "WIDTH",
    "TEXT_DTYPE",
    "pack",
    "build_suffix_array",
    "level0_runs",
    "matching_statistics",
]

WIDTH = 4  # symbols per packed key
FIELD = 16  # bits per symbol field
END = (1 << FIELD) - 1  # a sentinel (and the padding after the text)
TEXT_DTYPE = np.dtype(np.uint16)
_SHIFTS = [np.uint64(FIELD * (WIDTH - 1 - t)) for t in range(WIDTH)]
_MASK = np.uint64(END)
_CHUNK = 1 << 20  # positions per chunk wherever a whole-text temporary would be needed
_WORD3 = 1 << 24  # sentinels get values END + k: 3-byte words while they stay below this


def pack(vals: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Packed keys (uint64) of text positions ``[start, stop)`` (see the module docstring)."""
    window = np.full(stop - start + WIDTH - 1, END, dtype=np.uint64)
    part = vals[start : stop + WIDTH - 1]
    window[: part.size] = part
    keys = np.zeros(stop - start, dtype=np.uint64)
    seen = np.zeros(stop - start, dtype=bool)
    for t in range(WIDTH):
        seen |= window[t : t + stop - start] == END
        keys |= np.where(seen, np.uint64(END), window[t : t + stop - start]) << _SHIFTS[t]
    return keys


def build_suffix_array(vals: np.ndarray) -> np.ndarray:
    """Suffix array of the non-sentinel positions of ``vals`` (unpadded; see the module docstring).

    int32 rows when the text has fewer than 2**31 positions, int64 otherwise.
    """
    from pydivsufsort.dll import libdivsufsort, libdivsufsort64  # the compiled library

    total = int(vals.size)
    if total == 0:
        return np.empty(0, dtype=np.int32)
    sentinels = int(np.count_nonzero(vals == END))
    width = 3 if END + sentinels < _WORD3 else 4
    raw = _word_text(vals, width)
    use64 = raw.size >= 2**31
    out = np.empty(raw.size, dtype=np.int64 if use64 else np.int32)
    c_index = ctypes.c_int64 if use64 else ctypes.c_int32
    sort = libdivsufsort64.divsufsort64 if use64 else libdivsufsort.divsufsort
    status = sort(
        raw.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)),
        out.ctypes.data_as(ctypes.POINTER(c_index)),
        c_index(raw.size),
    )
    if status != 0:
        raise RuntimeError(f"libdivsufsort failed with status {status}")
    del raw
    kept = 0
    for start in range(0, out.size, _CHUNK):
        rows = out[start : start + _CHUNK]
        rows = rows[rows % width == 0] // width
        rows = rows[vals[rows] != END]
        out[kept : kept + rows.size] = rows
        kept += rows.size
    dtype = np.int32 if total < 2**31 else np.int64
    return out[:kept].astype(dtype)


def _word_text(vals: np.ndarray, width: int) -> np.ndarray:
    """Every position as a big-endian word of ``width`` bytes: symbols as themselves, the k-th
    sentinel as ``END + k`` (distinct, above every symbol, increasing with position)."""
    raw = np.empty((vals.size, width), dtype=np.uint8)
    seen = 0
    for start in range(0, vals.size, _CHUNK):
        word = vals[start : start + _CHUNK].astype(np.uint32)
        sentinel = word == END
        rank = np.cumsum(sentinel, dtype=np.int64) - 1 + seen
        seen += int(np.count_nonzero(sentinel))
        word = np.where(sentinel, END + rank, word).astype(np.uint32)
        for b in range(width):
            raw[start : start + word.size, b] = (word >> np.uint32(8 * (width - 1 - b))) & 0xFF
    return raw.reshape(-1)


def level0_runs(sa: np.ndarray, packed: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The distinct values of ``packed[sa]`` (sorted) with the first row of each, in chunks of
    ``(keys, rows)``, the last chunk ending with the row ``sa.size``. ``searchsorted`` over them
    finds level-0 ranges exactly as over all of ``packed[sa]``."""
    last = None
    for start in range(0, sa.size, _CHUNK):
        chunk = packed[sa[start : start + _CHUNK]]
        new = np.ones(chunk.size, dtype=bool)
        new[1:] = chunk[1:] != chunk[:-1]
        if last is not None:
            new[0] = chunk[0] != last
        last = chunk[-1]
        yield chunk[new], (np.flatnonzero(new) + start).astype(sa.dtype)
    yield np.zeros(0, dtype=np.uint64), np.array([sa.size], dtype=sa.dtype)


def _query_keys(
    qvals: np.ndarray, pos: np.ndarray, rem: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Packed query windows at ``pos`` with ``rem`` valid symbols: padded low (0) and high (END)."""
    low = np.zeros(pos.size, dtype=np.uint64)
    high = np.zeros(pos.size, dtype=np.uint64)
    for t in range(WIDTH):
        valid = rem > t
        field = qvals[pos + t]
        low |= np.where(valid, field, np.uint64(0)) << _SHIFTS[t]
        high |= np.where(valid, field, np.uint64(END)) << _SHIFTS[t]
    return low, high


def _common_fields(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Number of leading equal 16-bit fields of two packed keys."""
    x = a ^ b
    count = np.zeros(a.size, dtype=np.int64)
    alive = np.ones(a.size, dtype=bool)
    for t in range(WIDTH):
        alive &= ((x >> _SHIFTS[t]) & _MASK) == 0
        count += alive
    return count


def _bound(
    sa: np.ndarray,
    keys: np.ndarray,
    offset: np.ndarray | int,
    lo: np.ndarray,
    hi: np.ndarray,
    target: np.ndarray,
    *,
    upper: bool,
) -> np.ndarray:
    """Per element, first row r in [lo, hi) with key(r) >= target (> target when ``upper``)."""
    a, b = lo.copy(), hi.copy()
    live = np.flatnonzero(a < b)
    while live.size:
        al, bl = a[live], b[live]
        mid = (al + bl) >> 1
        key = keys[sa[mid].astype(np.int64) + offset]
        right = key <= target[live] if upper else key < target[live]
        al = np.where(right, mid + 1, al)
        bl = np.where(right, bl, mid)
        a[live], b[live] = al, bl
        live = live[al < bl]
    return a


def matching_statistics(
    sa: np.ndarray,
    keys: np.ndarray,
    level0: tuple[np.ndarray, np.ndarray],
    query: np.ndarray,
    limit: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Longest match length and one suffix-array row (-1 when 0) for every query position.

    ``query`` holds all queries concatenated (symbols >= 0); ``limit[p]`` is the number of
    symbols from ``p`` to the end of p's own query, so matches never run into the next query.
    ``keys`` are the packed keys of the text and ``level0`` the keys and rows of :func:`level0_runs`.
    """
    total = query.shape[0]
    length = np.zeros(total, dtype=np.int64)
    row = np.full(total, -1, dtype=np.int64)
    if total == 0 or sa.size == 0:
        return length, row
    qvals = np.zeros(total + WIDTH, dtype=np.uint64)
    qvals[:total] = query.astype(np.uint64) + np.uint64(1)
    pos = np.flatnonzero(limit > 0)
    lo = np.zeros(pos.size, dtype=np.int64)
    hi = np.full(pos.size, sa.size, dtype=np.int64)
    depth = 0
    while pos.size:
        rem = np.minimum(limit[pos] - depth, WIDTH)
        low, high = _query_keys(qvals, pos + depth, rem)
        if depth == 0:
            a, b = _level0_ranges(level0, low, high)
        else:
            a = _bound(sa, keys, depth, lo, hi, low, upper=False)
            b = _bound(sa, keys, depth, a, hi, high, upper=True)
        found = a < b
        # Found: the whole window matches (or the query ends inside it).
        done = found & (limit[pos] <= depth + WIDTH)
        length[pos[done]] = np.minimum(limit[pos[done]], depth + WIDTH)
        row[pos[done]] = a[done]
        # Not found: the best partial match is next to the insertion point.
        miss = np.flatnonzero(~found)
        if miss.size:
            at = pos[miss]
            length[at], row[at] = _partial(
                sa, keys, depth, lo[miss], hi[miss], a[miss], low[miss], rem[miss]
            )
        keep = found & ~done
        pos, lo, hi = pos[keep], a[keep], b[keep]
        depth += WIDTH
    return length, row


def _sorted_searchsorted(haystack: np.ndarray, needles: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """np.searchsorted with the needles sorted first: neighbouring probes stay in cache."""
    order = np.argsort(needles)
    out = np.empty(needles.size, dtype=np.int64)
    out[order] = np.searchsorted(haystack, needles[order], side=side)
    return out


def _level0_ranges(level0: tuple[np.ndarray, np.ndarray], low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    run_keys, run_rows = level0
    a = run_rows[_sorted_searchsorted(run_keys, low, "left")].astype(np.int64)
    return a, run_rows[_sorted_searchsorted(run_keys, high, "right")].astype(np.int64)


def _partial(
    sa: np.ndarray,
    keys: np.ndarray,
    depth: np.ndarray | int,
    lo: np.ndarray,
    hi: np.ndarray,
    ins: np.ndarray,
    low: np.ndarray,
    rem: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(length, row) of the longest partial window match, at row ins-1 or ins of [lo, hi)."""
    best = np.zeros(lo.size, dtype=np.int64)
    best_row = np.where(depth > 0, lo, -1)
    for cand in (ins - 1, ins):
        ok = (cand >= lo) & (cand < hi)
        safe = np.clip(cand, lo, hi - 1)  # a row of the range (it is never empty)
        key = keys[sa[safe].astype(np.int64) + depth]
        common = np.where(ok, np.minimum(_common_fields(key, low), rem), -1)
        better = common > best
        best = np.where(better, common, best)
        best_row = np.where(better, cand, best_row)
    return depth + best, np.where(depth + best > 0, best_row, -1)
