"""How an n-gram copy index is laid out on disk, built in bounded memory, and opened.

One :mod:`~curricmusic.novelty._arrayfile` file of kind ``curricmusic-ngram-index`` holds:

    packed      (total,) uint64     the packed 4-symbol window at each text position (the text is
                                    its top 16 bits: symbol + 1, END after each piece)
    starts      (pieces,) int64     offset of each piece in the text
    lengths     (pieces,) int64     symbols per piece
    sa          (symbols,) int32    suffix array (int64 from 2**31 text positions on)
    level0_keys (runs,) uint64      the distinct windows at the suffix-array rows, sorted
    level0_rows (runs + 1,) int32   the first row of each, then the number of rows
    hash_<n>    (distinct,) uint64  sorted distinct rolling hashes of the n-grams, per hashed n

and in its footer the encoding (a changed symbol definition makes old files stale), the piece
ids and the hashed sizes. Without hash tables that is 12 bytes a symbol plus 12 per distinct
4-gram (about 16 a symbol at 10M music-like symbols, less on larger corpora); each table adds 8
bytes per distinct n-gram. A table can also live in a file of its own (kind
``curricmusic-ngram-table``), so one cached index serves any number of copy-blocking sizes.

The build streams: pieces are encoded one at a time, the suffix array comes from libdivsufsort
(:func:`~curricmusic.novelty._suffixarray.build_suffix_array`, about 17 bytes a symbol at its
peak), then level-0 keys and hash tables are computed in chunks and written as they are made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import numpy as np

from curricmusic.common.atomic import atomic_path
from curricmusic.novelty import _suffixarray as _sa
from curricmusic.novelty._arrayfile import ArrayWriter, open_array_file

__all__ = [
    "INDEX_KIND",
    "TABLE_KIND",
    "HASH_BASE",
    "assemble_text",
    "index_file",
    "write_index",
    "write_table",
    "save_arrays",
    "save_table",
    "open_index",
    "open_table",
    "ngram_hashes",
    "text_of",
]

INDEX_KIND = "curricmusic-ngram-index"
TABLE_KIND = "curricmusic-ngram-table"
HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible mod 2**64
_CHUNK = 1 << 20
_BLOCK = 1 << 20  # symbols gathered before pieces are merged into one block
# Relative cost of the build's steps per symbol (measured), for the progress bar's estimate.
WORK_SA, WORK_LEVEL0, WORK_TABLE = 6, 1, 2

Progress = Callable[..., None]


def assemble_text(
    symbols: Iterable[np.ndarray], n_symbols: int, update: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """``(vals, lengths)``: the text of every piece's symbols (uint16), and their counts.

    ``ValueError`` when a symbol lies outside ``[0, n_symbols)``. ``update()`` once per piece.
    """
    blocks: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    pending_size = 0
    lengths: list[int] = []
    for sym in symbols:
        sym = np.asarray(sym)
        if sym.size and (sym.min() < 0 or sym.max() >= n_symbols):
            raise ValueError(f"symbols must lie in [0, {n_symbols})")
        part = np.empty(sym.size + 1, dtype=_sa.TEXT_DTYPE)
        part[:-1] = sym + 1
        part[-1] = _sa.END
        pending.append(part)
        pending_size += part.size
        lengths.append(int(sym.size))
        if pending_size >= _BLOCK:
            blocks.append(np.concatenate(pending, dtype=_sa.TEXT_DTYPE))
            pending, pending_size = [], 0
        update()
    blocks.extend(pending)
    blocks.append(np.zeros(0, dtype=_sa.TEXT_DTYPE))
    vals = np.concatenate(blocks, dtype=_sa.TEXT_DTYPE)
    return vals, np.array(lengths, dtype=np.int64)


@contextmanager
def index_file(path: str | os.PathLike[str] | None) -> Iterator[IO[bytes]]:
    """An open file to build an index in: ``path`` (renamed into place on success) or an
    unnamed temporary file (gone once the index that maps it is closed)."""
    if path is None:
        with tempfile.NamedTemporaryFile(prefix="curricmusic-ngram-", suffix=".tmp") as handle:
            yield handle
    else:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            yield handle


def write_index(
    handle: IO[bytes],
    vals: np.ndarray,
    lengths: np.ndarray,
    meta: dict[str, Any],
    ns: Sequence[int],
    update: Progress,
) -> None:
    """Write a whole index (see the module docstring). ``update(percent, info)`` after each step:
    the steps' shares of the work are their measured relative costs."""
    symbols = int(lengths.sum())
    work = max(1, symbols * (WORK_SA + WORK_LEVEL0 + WORK_TABLE * len(ns)))

    def step(cost: int, info: str) -> None:
        update(100 * cost * symbols / work, info=info)

    step(0, "suffix array")
    writer = ArrayWriter(handle, INDEX_KIND)
    starts = np.zeros(lengths.size, dtype=np.int64)
    starts[1:] = np.cumsum(lengths + 1)[:-1]
    writer.begin("packed", np.uint64)
    for start in range(0, vals.size, _CHUNK):
        writer.append(_sa.pack(vals, start, min(vals.size, start + _CHUNK)))
    writer.end()
    handle.flush()
    shape = (vals.size,)
    packed = np.memmap(handle.name, np.uint64, "r", writer.offset("packed"), shape) if vals.size else np.zeros(0, np.uint64)
    writer.add("starts", starts)
    writer.add("lengths", lengths)
    sa = _sa.build_suffix_array(vals)
    writer.add("sa", sa)
    step(WORK_SA, "level-0 keys")
    writer.begin("level0_keys", np.uint64)
    run_rows = []
    for keys, rows in _sa.level0_runs(sa, packed):
        writer.append(keys)
        run_rows.append(rows)
    writer.end()
    del sa, packed
    writer.add("level0_rows", np.concatenate(run_rows))
    step(WORK_LEVEL0, f"{ns[0]}-gram table" if ns else "")
    del run_rows
    for i, n in enumerate(ns):
        write_table(writer, vals, n)
        step(WORK_TABLE, f"{ns[i + 1]}-gram table" if i + 1 < len(ns) else "")
    writer.finish({**meta, "ns": [int(n) for n in ns]})


def write_table(writer: ArrayWriter, vals: np.ndarray, n: int) -> None:
    """Stream ``hash_<n>``: the sorted distinct hashes of every n-gram with no sentinel inside.

    ``vals`` is the text (uint16). Peak memory: 8 bytes a symbol (every hash, sorted in place)
    plus one chunk.
    """
    hashes = np.empty(max(0, vals.size - n + 1), dtype=np.uint64)
    count = 0
    for start in range(0, hashes.size, _CHUNK):
        stop = min(hashes.size, start + _CHUNK)
        found = ngram_hashes(vals[start : stop + n - 1], n)
        hashes[count : count + found.size] = found
        count += found.size
    hashes = hashes[:count]
    hashes.sort()
    writer.begin(f"hash_{n}", np.uint64)
    previous = None
    for start in range(0, count, _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        keep = np.ones(chunk.size, dtype=bool)
        keep[1:] = chunk[1:] != chunk[:-1]
        if previous is not None:
            keep[0] = chunk[0] != previous
        writer.append(chunk[keep])
        previous = chunk[-1]
    writer.end()


def save_arrays(path: str | os.PathLike[str], kind: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write ``arrays`` (1-D, possibly memory-mapped: copied a chunk at a time) atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        writer = ArrayWriter(handle, kind)
        for name, array in arrays.items():
            writer.begin(name, array.dtype)
            for start in range(0, array.size, _CHUNK):
                writer.append(array[start : start + _CHUNK])
            writer.end()
        writer.finish(meta)


def save_table(path: str | os.PathLike[str], vals: np.ndarray, n: int, meta: dict[str, Any]) -> None:
    """A table file: the ``hash_<n>`` table of the text ``vals``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        writer = ArrayWriter(handle, TABLE_KIND)
        write_table(writer, vals, n)
        writer.finish(meta)


def text_of(packed: np.ndarray) -> np.ndarray:
    """The text (uint16: symbol + 1, END after each piece): the packed keys' top field."""
    parts = [np.zeros(0, dtype=np.uint16)]
    for start in range(0, packed.size, _CHUNK):
        parts.append((packed[start : start + _CHUNK] >> np.uint64(48)).astype(np.uint16))
    return np.concatenate(parts)


def ngram_hashes(vals: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash ``sum_k vals[i+k] B**(n-1-k)`` (mod 2**64) of every n-gram of ``vals``
    (``symbol + 1``, END for a sentinel) that holds no sentinel, in order.

    Built by doubling, ``H(i, a + b) = H(i, a) B**b + H(i + a, b)``: about ``2 log2(n)`` passes.
    """
    count = vals.size - n + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    seg = np.asarray(vals).astype(np.uint64)
    block, size = seg, 1  # H(i, size) for every i where it fits
    hashes, length = None, 0
    remaining = n
    with np.errstate(over="ignore"):
        while True:
            if remaining & 1:
                if hashes is None:
                    hashes, length = block, size
                else:
                    fit = seg.size - (length + size) + 1
                    hashes = hashes[:fit] * _power(size) + block[length : length + fit]
                    length += size
            remaining >>= 1
            if not remaining:
                break
            fit = seg.size - 2 * size + 1
            block = block[:fit] * _power(size) + block[size : size + fit]
            size *= 2
    valid = np.ones(count, dtype=bool)
    sentinels = np.flatnonzero(seg == _sa.END)
    for k in range(n):  # the n-grams starting up to n - 1 before a sentinel hold it
        at = sentinels - k
        valid[at[(at >= 0) & (at < count)]] = False
    assert hashes is not None  # n >= 1 sets it in the first pass
    return hashes[:count][valid]


def _power(k: int) -> np.uint64:
    return np.uint64(pow(int(HASH_BASE), k, 1 << 64))


def open_index(path: str | os.PathLike[str], encoding: list[Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of an index file, checked; ``ValueError`` when stale, foreign or torn."""
    try:
        meta, arrays = open_array_file(path, INDEX_KIND)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not an n-gram index of this version ({err}); rebuild it") from err
    if meta.get("encoding") != encoding:
        raise ValueError(f"{path}: not an n-gram index of this version; rebuild it")
    try:
        pieces = len(meta["piece_ids"])
        symbols = int(arrays["lengths"].sum())
        rows = arrays["level0_rows"]
        ok = (
            arrays["starts"].size == pieces == arrays["lengths"].size
            and arrays["packed"].size == symbols + pieces
            and arrays["sa"].size == symbols
            and rows.size == arrays["level0_keys"].size + 1
            and int(rows[-1]) == symbols
            and all(f"hash_{n}" in arrays for n in meta["ns"])
        )
    except KeyError as err:
        raise ValueError(f"{path}: an n-gram index without {err}; rebuild it") from err
    if not ok:
        raise ValueError(f"{path}: an n-gram index with inconsistent sizes; rebuild it")
    return meta, arrays


def open_table(path: str | os.PathLike[str], encoding: list[Any], n: int, symbols: int) -> np.ndarray:
    """The hash table of a table file made for an index of ``symbols`` symbols."""
    try:
        meta, arrays = open_array_file(path, TABLE_KIND)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not an n-gram table of this version ({err}); rebuild it") from err
    if meta.get("encoding") != encoding or meta.get("n") != n or meta.get("symbols") != symbols:
        raise ValueError(f"{path}: an n-gram table of another index or version; rebuild it")
    if f"hash_{n}" not in arrays:
        raise ValueError(f"{path}: an n-gram table without its hashes; rebuild it")
    return arrays[f"hash_{n}"]
