"""One file of named NumPy arrays, written in streamed chunks and memory-mapped on open.

Layout (all integers little-endian)::

    [0, 64)            preamble: b"CMARRAYS", then the file kind (ASCII), zero padded
    [64, F)            the arrays' raw bytes, each starting at a multiple of 64
    [F, F + L)         footer: UTF-8 JSON {"kind", "meta", "arrays": {name: {dtype, shape, offset}}}
    [F + L, F + L + 16) trailer: uint64 F, then b"CMARREND"

The footer comes last so that arrays of unknown final length (a sorted, de-duplicated hash table)
can be streamed to disk without holding them in memory. A file cut short anywhere (a killed
writer without the atomic rename, a full disk, a copy that stopped) lacks the trailer or fails
the size checks, and :func:`open_array_file` raises ``ValueError`` instead of returning garbage.
Opening maps the file read-only: it costs no time or memory until pages are read, and processes
that open the same file share its pages.
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["ArrayWriter", "array_offset", "open_array_file"]

_MAGIC = b"CMARRAYS"
_END = b"CMARREND"
_ALIGN = 64


class ArrayWriter:
    """Append arrays to an open binary file; :meth:`finish` writes the footer.

    ``add(name, array)`` writes a whole array; ``begin(name, dtype, row_shape)``, then
    ``append(chunk)`` any number of times, then ``end()`` streams one whose length is known only
    at the end.
    """

    def __init__(self, handle: IO[bytes], kind: str) -> None:
        if len(kind) > _ALIGN - len(_MAGIC):
            raise ValueError(f"kind {kind!r} is too long")
        self._handle = handle
        self._kind = kind
        self._arrays: dict[str, dict[str, Any]] = {}
        self._open: tuple[str, np.dtype, tuple[int, ...], int] | None = None
        handle.write((_MAGIC + kind.encode("ascii")).ljust(_ALIGN, b"\0"))

    def _pad(self) -> int:
        pos = self._handle.tell()
        pad = -pos % _ALIGN
        if pad:
            self._handle.write(b"\0" * pad)
        return pos + pad

    def begin(self, name: str, dtype: DTypeLike, row_shape: tuple[int, ...] = ()) -> None:
        if self._open is not None:
            raise RuntimeError(f"array {self._open[0]!r} is still open")
        if name in self._arrays:
            raise ValueError(f"array {name!r} written twice")
        self._open = (name, np.dtype(dtype), tuple(row_shape), self._pad())
        self._rows = 0

    def append(self, chunk: np.ndarray) -> None:
        assert self._open is not None, "append() before begin()"
        name, dtype, row_shape, _ = self._open
        chunk = np.ascontiguousarray(chunk, dtype=dtype)
        if chunk.shape[1:] != row_shape:
            raise ValueError(f"{name}: rows of shape {chunk.shape[1:]}, expected {row_shape}")
        self._handle.write(chunk.data.cast("B"))
        self._rows += chunk.shape[0]

    def end(self) -> None:
        assert self._open is not None, "end() before begin()"
        name, dtype, row_shape, offset = self._open
        self._arrays[name] = {
            "dtype": dtype.str,
            "shape": [self._rows, *row_shape],
            "offset": offset,
        }
        self._open = None

    def offset(self, name: str) -> int:
        """Byte offset of a finished array in the file."""
        return int(self._arrays[name]["offset"])

    def add(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.ndim == 0:
            array = array[None]
        self.begin(name, array.dtype, array.shape[1:])
        self.append(array)
        self.end()

    def finish(self, meta: dict[str, Any]) -> None:
        if self._open is not None:
            raise RuntimeError(f"array {self._open[0]!r} is still open")
        footer = json.dumps({"kind": self._kind, "meta": meta, "arrays": self._arrays}).encode()
        start = self._pad()
        self._handle.write(footer)
        self._handle.write(np.array([start], dtype="<u8").tobytes() + _END)
        self._handle.flush()


def _footer(path: Path, kind: str) -> tuple[dict[str, Any], int, int]:
    """``(footer, footer start, file size)``; ValueError when foreign or torn."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_ALIGN)
        if size < 2 * _ALIGN or not head.startswith(_MAGIC):
            raise ValueError(f"{path}: not a curricmusic array file")
        if head[len(_MAGIC) :].rstrip(b"\0").decode("ascii", "replace") != kind:
            raise ValueError(f"{path}: not a {kind} file")
        handle.seek(size - 16)
        tail = handle.read(16)
        start = int(np.frombuffer(tail[:8], dtype="<u8")[0])
        if tail[8:] != _END or not _ALIGN <= start < size - 16:
            raise ValueError(f"{path}: incomplete file (no trailer)")
        handle.seek(start)
        try:
            return json.loads(handle.read(size - 16 - start)), start, size
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: damaged footer") from err


def array_offset(path: str | os.PathLike[str], kind: str, name: str) -> int:
    """Byte offset of array ``name`` in a file (for readers that ``pread`` it)."""
    footer, _, _ = _footer(Path(path), kind)
    return int(footer["arrays"][name]["offset"])


def open_array_file(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file written by :class:`ArrayWriter`; arrays are read-only maps.

    ``ValueError`` when the file is not one of ``kind``, or is torn (short, or damaged offsets).
    """
    path = Path(path)
    footer, start, _ = _footer(path, kind)
    with open(path, "rb") as handle:
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    arrays = {}
    for name, spec in footer["arrays"].items():
        dtype, shape, offset = np.dtype(spec["dtype"]), tuple(spec["shape"]), int(spec["offset"])
        count = int(np.prod(shape, dtype=np.int64))
        if offset < _ALIGN or offset + count * dtype.itemsize > start:
            raise ValueError(f"{path}: array {name!r} lies outside the file")
        arrays[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
    return footer["meta"], arrays
