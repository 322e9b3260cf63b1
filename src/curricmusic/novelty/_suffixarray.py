"""A generalised suffix array over integer symbol streams, built and searched with NumPy only.

The text is the concatenation of every training piece's symbols, each piece followed by one
sentinel (any negative value). Symbols are non-negative and below ``END - 1``.

Packed windows
    Every text position ``i`` gets a 64-bit key holding the four symbols ``text[i:i+4]`` as 16-bit
    fields (``symbol + 1``; a sentinel and everything after it in the window become ``END``).
    Comparing keys compares four symbols at once, and the order of keys agrees with the
    lexicographic order of suffixes (a sentinel sorts above every symbol).

Construction (prefix doubling)
    Sort positions by their packed key (suffixes whose window holds a sentinel are made unique:
    their order is decided there). Then, for ``h = 4, 8, 16, ...``, re-sort only the groups whose
    first ``h`` symbols still tie, by the group rank of the suffix ``h`` positions further on
    (Manber & Myers, with Larsson & Sadakane's "skip sorted groups"). Each round is one NumPy
    argsort over the unresolved suffixes; the number of rounds is ``log2(longest repeat / 4)``.
    Because every piece ends in a sentinel that decides the comparison, a corpus of a thousand
    identical scales costs rounds for one scale's length, not the corpus's.

Search (matching statistics)
    For each query position ``p`` the longest prefix of ``query[p:]`` that occurs in the text, and
    one suffix-array row where it occurs. Level ``j`` narrows the suffix-array range that matches
    the first ``4 j`` symbols by the next packed window: level 0 is ``np.searchsorted`` over the
    sorted level-0 keys, deeper levels a vectorised binary search inside each range. When a range
    empties, the longest partial match is at the insertion point's neighbours. Exact: no hashing.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "END",
    "WIDTH",
    "pack_windows",
    "build_suffix_array",
    "matching_statistics",
    "sorted_unique",
]

WIDTH = 4  # symbols per packed key
FIELD = 16  # bits per symbol field
END = (1 << FIELD) - 1  # a sentinel, and what follows it, inside a packed window
_SHIFTS = [np.uint64(FIELD * (WIDTH - 1 - t)) for t in range(WIDTH)]
_MASK = np.uint64(END)


def pack_windows(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys uint64, has_sentinel bool) for every position of ``text`` (sentinels negative)."""
    n = text.shape[0]
    vals = np.full(n + WIDTH, END, dtype=np.uint64)
    vals[:n] = np.where(text < 0, END, text.astype(np.int64) + 1).astype(np.uint64)
    sent = np.ones(n + WIDTH, dtype=bool)
    sent[:n] = text < 0
    keys = np.zeros(n, dtype=np.uint64)
    seen = np.zeros(n, dtype=bool)
    for t in range(WIDTH):
        seen |= sent[t : t + n]
        keys |= np.where(seen, np.uint64(END), vals[t : t + n]) << _SHIFTS[t]
    return keys, seen


def build_suffix_array(
    text: np.ndarray, packed: np.ndarray, has_sentinel: np.ndarray
) -> np.ndarray:
    """Suffix array (int32 or int64 rows) of the non-sentinel positions of ``text``."""
    n = text.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int32)
    sa = np.argsort(packed, kind="stable").astype(np.int64)  # stable: deterministic ties
    keys = packed[sa]
    boundary = np.ones(n, dtype=bool)
    boundary[1:] = keys[1:] != keys[:-1]
    boundary |= has_sentinel[sa]
    del keys
    rank, active = _ranks_and_active(sa, boundary, np.arange(n, dtype=np.int64), n)
    h = WIDTH
    while active.size:
        idx = sa[active]
        k1 = rank[idx]
        k2 = rank[idx + h]  # tied suffixes hold no sentinel in their first h symbols
        order = np.argsort(k1 * n + k2)
        idx, k1, k2 = idx[order], k1[order], k2[order]
        sa[active] = idx
        boundary = np.ones(active.size, dtype=bool)
        boundary[1:] = (k1[1:] != k1[:-1]) | (k2[1:] != k2[:-1])
        starts = active[np.maximum.accumulate(np.where(boundary, np.arange(active.size), 0))]
        rank[idx] = starts
        end = np.ones(active.size, dtype=bool)
        end[:-1] = boundary[1:]
        active = active[~(boundary & end)]
        h *= 2
    sa = sa[text[sa] >= 0]
    return sa.astype(np.int32) if n < 2**31 else sa


def _ranks_and_active(sa, boundary, rows, n):
    """Group rank (row of the group's first member) per position, and rows of unresolved groups."""
    starts = rows[np.maximum.accumulate(np.where(boundary, np.arange(rows.size), 0))]
    rank = np.empty(n, dtype=np.int64)
    rank[sa] = starts
    end = np.ones(rows.size, dtype=bool)
    end[:-1] = boundary[1:]
    return rank, rows[~(boundary & end)]


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


def _bound(sa, packed, offset, lo, hi, target, *, upper: bool) -> np.ndarray:
    """Per element, first row r in [lo, hi) with key(r) >= target (> target when ``upper``)."""
    a, b = lo.copy(), hi.copy()
    live = np.flatnonzero(a < b)
    while live.size:
        al, bl = a[live], b[live]
        mid = (al + bl) >> 1
        key = packed[sa[mid].astype(np.int64) + offset]
        right = key <= target[live] if upper else key < target[live]
        al = np.where(right, mid + 1, al)
        bl = np.where(right, bl, mid)
        a[live], b[live] = al, bl
        live = live[al < bl]
    return a


def matching_statistics(
    sa: np.ndarray,
    packed: np.ndarray,
    level0: np.ndarray,
    query: np.ndarray,
    limit: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Longest match length and one suffix-array row (-1 when 0) for every query position.

    ``query`` holds all queries concatenated (symbols >= 0); ``limit[p]`` is the number of
    symbols from ``p`` to the end of p's own query, so matches never run into the next query.
    ``level0`` is ``packed[sa]`` (sorted).
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
            a = _bound(sa, packed, depth, lo, hi, low, upper=False)
            b = _bound(sa, packed, depth, lo, hi, high, upper=True)
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
                sa, packed, depth, lo[miss], hi[miss], a[miss], low[miss], rem[miss]
            )
        keep = found & ~done
        pos, lo, hi = pos[keep], a[keep], b[keep]
        depth += WIDTH
    return length, row


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sort and compare (NumPy 2's hashing ``unique`` is slow on uint64)."""
    values = np.sort(values)
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _sorted_searchsorted(haystack, needles, side):
    """np.searchsorted with the needles sorted first: neighbouring probes stay in cache."""
    order = np.argsort(needles)
    out = np.empty(needles.size, dtype=np.int64)
    out[order] = np.searchsorted(haystack, needles[order], side=side)
    return out


def _level0_ranges(level0, low, high):
    return _sorted_searchsorted(level0, low, "left"), _sorted_searchsorted(level0, high, "right")


def _partial(sa, packed, depth, lo, hi, ins, low, rem):
    """(length, row) of the longest partial window match, at row ins-1 or ins of [lo, hi)."""
    best = np.zeros(lo.size, dtype=np.int64)
    best_row = np.where(depth > 0, lo, -1)
    for cand in (ins - 1, ins):
        ok = (cand >= lo) & (cand < hi)
        safe = np.clip(cand, lo, hi - 1)  # a row of the range (it is never empty)
        key = packed[sa[safe].astype(np.int64) + depth]
        common = np.where(ok, np.minimum(_common_fields(key, low), rem), -1)
        better = common > best
        best = np.where(better, common, best)
        best_row = np.where(better, cand, best_row)
    return depth + best, np.where(depth + best > 0, best_row, -1)
