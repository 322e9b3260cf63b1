"""Embedding banks in files: written row block by row block, memory-mapped for searching.

A bank file (an :mod:`~curricmusic.novelty._arrayfile` file of kind
``curricmusic-embedding-bank``) holds, for N rows of dimension D:

    vectors (N, D) float32   the embeddings, read only for the rows a search rescores
    screen  (N, D) uint16    their bfloat16 bits (round to nearest even), read in blocks by
                             every search: 2 bytes a dimension
    norms   (N,)   float32   upper bounds on the float32 row norms (the screen's error bound)

and in its footer the caller's metadata. :func:`open_bank` maps it read-only and returns an
:class:`~curricmusic.novelty.score.EmbeddingBank`; :func:`~curricmusic.novelty.score.nearest_neighbors`
over it screens with the bfloat16 copy and rescores candidates in float32, so its results equal
a float32 brute-force search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from curricmusic.common.atomic import atomic_path
from curricmusic.novelty._arrayfile import ArrayWriter, array_offset, open_array_file
from curricmusic.novelty.score import EmbeddingBank, bf16_rows

__all__ = ["BANK_KIND", "BankRows", "write_bank", "open_bank"]

BANK_KIND = "curricmusic-embedding-bank"
_BLOCK = 65536  # rows converted at once when the screen is written


class BankRows:
    """The rows of a bank file being written (see :func:`write_bank`)."""

    def __init__(self, handle: BinaryIO, dim: int, meta: dict[str, Any]) -> None:
        self.dim = int(dim)
        self.meta = meta  # written in the footer when the bank is finished
        self.rows = 0
        self._handle = handle
        self._writer = ArrayWriter(handle, BANK_KIND)
        self._writer.begin("vectors", np.float32, (self.dim,))

    def add(self, rows: np.ndarray) -> None:
        """Append rows (B, D) (or one row (D,))."""
        rows = np.asarray(rows, dtype=np.float32).reshape(-1, self.dim)
        self._writer.append(rows)
        self.rows += rows.shape[0]

    def finish(self, path: Path) -> None:
        """Write the bfloat16 screen and norms (reading the rows back in blocks), then the footer."""
        self._writer.end()
        self._handle.flush()
        shape = (self.rows, self.dim)
        offset = self._writer.offset("vectors")
        vectors = np.memmap(path, np.float32, "r", offset, shape) if self.rows else np.zeros(shape, np.float32)
        norms = [np.zeros(0, np.float32)]
        self._writer.begin("screen", np.uint16, (self.dim,))
        for start in range(0, self.rows, _BLOCK):
            bits, block_norms = bf16_rows(vectors[start : start + _BLOCK])
            self._writer.append(bits)
            norms.append(block_norms)
        self._writer.end()
        del vectors
        self._writer.add("norms", np.concatenate(norms))
        self._writer.finish({**self.meta, "dim": self.dim, "rows": self.rows})


@contextmanager
def write_bank(
    path: str | os.PathLike[str], dim: int, meta: dict[str, Any] | None = None
) -> Iterator[BankRows]:
    """Write a bank file at ``path`` atomically: ``rows.add(...)`` inside the ``with`` block;
    nothing appears at ``path`` when the block raises."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        rows = BankRows(handle, dim, dict(meta or {}))
        yield rows
        rows.finish(tmp)


class RowReader:
    """Reads float32 rows of a bank file with ``pread``: the rows a search rescores come through
    the page cache without being mapped, so they do not stay in the process's resident memory
    (mapped, the kernel's fault-around would map their neighbours too)."""

    def __init__(self, path: str | os.PathLike[str], offset: int, dim: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - kept open for the bank's lifetime
        self._offset = int(offset)
        self._row = 4 * int(dim)
        self._dim = int(dim)

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        unique, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        out = np.empty((unique.size, self._dim), dtype=np.float32)
        if unique.size == 0:
            return out
        fd, row = self._file.fileno(), self._row
        # one read per run of consecutive rows
        breaks = np.flatnonzero(np.diff(unique) != 1) + 1
        for first, last in zip(np.r_[0, breaks], np.r_[breaks, unique.size], strict=True):
            data = os.pread(fd, row * (last - first), self._offset + row * int(unique[first]))
            out[first:last] = np.frombuffer(data, dtype=np.float32).reshape(last - first, self._dim)
        return out[inverse.reshape(-1)]

    def __del__(self) -> None:
        self._file.close()


def open_bank(path: str | os.PathLike[str]) -> tuple[EmbeddingBank, dict[str, Any]]:
    """``(bank, meta)`` of a bank file, memory-mapped; ``ValueError`` when torn or not a bank."""
    meta, arrays = open_array_file(path, BANK_KIND)
    try:
        vectors, screen, norms = arrays["vectors"], arrays["screen"], arrays["norms"]
    except KeyError as err:
        raise ValueError(f"{path}: a bank file without {err}") from err
    if list(vectors.shape) != [meta.get("rows"), meta.get("dim")]:
        raise ValueError(f"{path}: a bank file with inconsistent sizes")
    if vectors.shape[0] == 0:
        return EmbeddingBank(np.zeros((0, vectors.shape[1]), np.float32)), meta
    rows = RowReader(path, array_offset(path, BANK_KIND, "vectors"), vectors.shape[1])
    return EmbeddingBank(vectors, screen=screen, norms=norms, rows=rows), meta
