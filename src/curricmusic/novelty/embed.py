"""MIDI files to embeddings: render (audio embedders) or read notes (symbolic), batched, cached.

:func:`iter_embeddings` yields one row per file, in order, embedding the files not in the cache
in batches; :func:`embed_midi_files` gathers the rows into an array (samples, held-out pieces)
and :func:`embed_bank` streams them into a memory-mapped bank file
(:mod:`curricmusic.novelty.bank`) for the training bank, whatever its size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.atomic import atomic_path, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.paths import cache_dir
from curricmusic.common.progress import progress_bar
from curricmusic.music.notes import score_notes
from curricmusic.novelty.bank import open_bank, write_bank
from curricmusic.novelty.embedders import Embedder
from curricmusic.novelty.render import load_score, render, renderer_spec
from curricmusic.novelty.score import EmbeddingBank

__all__ = ["EmbeddingCache", "embedding_key", "iter_embeddings", "embed_midi_files", "embed_bank"]


class EmbeddingCache:
    """One ``.npy`` per (file content hash) under a directory per (embedder, renderer) key."""

    def __init__(self, key: dict[str, Any]) -> None:
        text = json.dumps(key, sort_keys=True, default=str)
        self.key = key
        self.directory = cache_dir("embeddings", hashlib.sha256(text.encode()).hexdigest()[:32])
        manifest = self.directory / "key.json"
        if not manifest.is_file():
            write_text(manifest, text + "\n")

    def _path(self, content_hash: str) -> Path:
        return self.directory / f"{content_hash}.npy"

    def get(self, content_hash: str) -> np.ndarray | None:
        path = self._path(content_hash)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # a damaged entry is recomputed

    def put(self, content_hash: str, vector: np.ndarray) -> None:
        with atomic_path(self._path(content_hash)) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(vector, dtype=np.float32), allow_pickle=False)


def embedding_key(
    embedder: Embedder, renderer: str, soundfont: str | os.PathLike[str] | None, max_seconds: float | None
) -> dict[str, Any]:
    """What a cached vector depends on: the embedder, and for audio the renderer and clip length."""
    key: dict[str, Any] = {"embedder": embedder.cache_key()}
    if embedder.input == "audio":
        key["renderer"] = renderer_spec(renderer, soundfont, embedder.audio_rate)
        if max_seconds is not None:
            key["max_seconds"] = float(max_seconds)
    return key


def _read(path: str | os.PathLike[str]) -> tuple[bytes | None, str | None]:
    """(file bytes, None) or (None, why it cannot be read)."""
    try:
        return Path(path).read_bytes(), None
    except OSError as err:
        return None, f"cannot read file: {err.strerror or err}"


def _model_input(
    data: bytes, embedder: Embedder, renderer: str, soundfont: str | os.PathLike[str] | None, max_seconds: float | None
) -> tuple[Any, str | None]:
    """The embedder's input for one MIDI file (its notes, or its rendered samples), or a reason
    to skip it (corrupt, no notes, too long to render)."""
    try:
        score = load_score(data)
    except UserError as err:
        return None, str(err).replace(" (<bytes>)", "")
    notes = score_notes(score)
    if notes.shape[0] == 0:
        return None, "no notes"
    if embedder.input != "audio":
        return notes, None
    try:
        clip = render(score, embedder.audio_rate, renderer=renderer, soundfont=soundfont)
    except UserError as err:  # e.g. a damaged file claiming an hours-long score
        return None, str(err)
    samples = clip.samples
    if max_seconds is not None:
        samples = samples[: int(round(max_seconds * clip.sample_rate))]
    return samples, None


def _embed_batch(embedder: Embedder, inputs: list[Any]) -> list[np.ndarray]:
    if embedder.input == "audio":
        return list(embedder.embed_audio(inputs, embedder.audio_rate))
    return list(embedder.embed_notes(inputs))


Row = tuple[int, np.ndarray | None, str | None]  # (file index, vector or None, skip reason)


def iter_embeddings(
    paths: Sequence[str | os.PathLike[str]],
    embedder: Embedder,
    *,
    renderer: str = "soundfont",
    soundfont: str | os.PathLike[str] | None = None,
    progress: bool = True,
    use_cache: bool = True,
    chunk: int = 16,
    max_seconds: float | None = None,
) -> Iterator[Row]:
    """``(index, vector, reason)`` for every file, in the order of ``paths``.

    Files missing from the cache are embedded ``chunk`` at a time; rows wait for the batch
    before them, at most ``8 * chunk`` of them. ``vector`` is None and ``reason`` says why for
    unreadable, corrupt, note-less or too-long files.
    """
    cache = EmbeddingCache(embedding_key(embedder, renderer, soundfont, max_seconds)) if use_cache else None
    ready: dict[int, tuple[np.ndarray | None, str | None]] = {}
    pending: list[tuple[int, str, Any]] = []  # (index, content hash, model input)
    next_out = 0
    with progress_bar(f"embedding ({embedder.spec})", len(paths), progress) as update:
        for index, path in enumerate(paths):
            vector, reason, todo = _resolve(path, embedder, cache, renderer, soundfont, max_seconds)
            if todo is None:
                ready[index] = (vector, reason)
            else:
                pending.append((index, *todo))
            if len(pending) >= chunk or len(ready) >= 8 * chunk:
                _flush(embedder, cache, pending, ready)
            while next_out in ready:
                yield (next_out, *ready.pop(next_out))
                next_out += 1
                update()
        _flush(embedder, cache, pending, ready)
        while next_out in ready:
            yield (next_out, *ready.pop(next_out))
            next_out += 1
            update()


def _resolve(
    path: str | os.PathLike[str],
    embedder: Embedder,
    cache: EmbeddingCache | None,
    renderer: str,
    soundfont: str | os.PathLike[str] | None,
    max_seconds: float | None,
) -> tuple[np.ndarray | None, str | None, tuple[str, Any] | None]:
    """``(vector, reason, None)`` for a finished row (a cache hit or a skip), or
    ``(None, None, (content hash, model input))`` for a file to embed."""
    data, reason = _read(path)
    if data is None:
        return None, reason, None
    digest = hashlib.sha256(data).hexdigest()
    hit = cache.get(digest) if cache is not None else None
    if hit is not None and hit.shape == (embedder.dim,):
        return hit, None, None
    item, reason = _model_input(data, embedder, renderer, soundfont, max_seconds)
    return (None, reason, None) if item is None else (None, None, (digest, item))


def _flush(
    embedder: Embedder,
    cache: EmbeddingCache | None,
    pending: list[tuple[int, str, Any]],
    ready: dict[int, tuple[np.ndarray | None, str | None]],
) -> None:
    """Embed the pending inputs in one batch, cache them, and mark their rows ready."""
    if not pending:
        return
    vectors = _embed_batch(embedder, [item for _, _, item in pending])
    for (index, digest, _), vector in zip(pending, vectors, strict=True):
        ready[index] = (vector, None)
        if cache is not None:
            cache.put(digest, vector)
    pending.clear()


def _skipped(paths: Sequence[str | os.PathLike[str]], reasons: dict[int, str]) -> list[dict[str, str]]:
    return [{"path": str(paths[i]), "reason": reason} for i, reason in sorted(reasons.items())]


def embed_midi_files(
    paths: Sequence[str | os.PathLike[str]],
    embedder: Embedder,
    **options: Any,
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Embed MIDI files: render (audio embedders) or read notes (symbolic), in batches, cached.

    Returns ``(embeddings, skipped)``: ``embeddings`` is ``(N, D)`` float32 with one row per
    file that was not skipped, in the order of ``paths``; ``skipped`` lists ``{path, reason}``
    for unreadable, corrupt or note-less files. The cache key is (file content sha256,
    ``embedder.cache_key()``, renderer spec), so a changed soundfont or checkpoint never reuses
    stale vectors. ``max_seconds`` keeps only the first seconds of each rendered piece (long
    training pieces then cost a bounded time; part of the cache key). ``options`` are those of
    :func:`iter_embeddings`.
    """
    rows: list[np.ndarray] = []
    reasons: dict[int, str] = {}
    for index, vector, reason in iter_embeddings(paths, embedder, **options):
        if vector is None:
            reasons[index] = reason or "skipped"
        else:
            rows.append(vector)
    embeddings = np.stack(rows).astype(np.float32) if rows else np.zeros((0, embedder.dim), np.float32)
    return embeddings, _skipped(paths, reasons)


def embed_bank(
    paths: Sequence[str | os.PathLike[str]],
    embedder: Embedder,
    **options: Any,
) -> tuple[EmbeddingBank, list[dict[str, str]]]:
    """:func:`embed_midi_files` into a memory-mapped bank file: ``(bank, skipped)``.

    Rows are streamed to the file as they are made, so memory stays bounded whatever the number
    of files. With the cache on (the default) the bank lives in the cache, named by the files'
    paths, sizes and modification times (one ``stat`` each: reopening a cached bank reads no
    MIDI file), and a changed file makes a new bank (its unchanged rows still come from the
    per-file cache). Without the cache, in an unnamed temporary file.
    """
    if not options.get("use_cache", True):
        folder = Path(tempfile.mkdtemp(prefix="curricmusic-bank-"))
        try:
            return _write_bank(folder / "bank", paths, embedder, options)
        finally:
            shutil.rmtree(folder)  # the open map keeps the data until the bank is dropped
    key = embedding_key(
        embedder, options.get("renderer", "soundfont"), options.get("soundfont"), options.get("max_seconds")
    )
    files = json.dumps([_signature(path) for path in paths])
    name = hashlib.sha256(files.encode()).hexdigest()[:32]
    path = EmbeddingCache(key).directory / f"bank-{name}.bank"
    try:
        bank, meta = open_bank(path)
        if meta.get("files") == len(paths) and bank.vectors.shape[1] == embedder.dim:
            reasons = {int(i): r for i, r in meta["skipped"].items()}
            return bank, _skipped(paths, reasons)
    except (OSError, ValueError, KeyError):  # missing, torn or stale: write it again
        pass
    return _write_bank(path, paths, embedder, options)


def _signature(path: str | os.PathLike[str]) -> list[Any]:
    """``[path, size, modification time in ns]`` (``None`` for a file that cannot be read)."""
    try:
        stat = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _write_bank(
    path: Path, paths: Sequence[str | os.PathLike[str]], embedder: Embedder, options: dict[str, Any]
) -> tuple[EmbeddingBank, list[dict[str, str]]]:
    reasons: dict[int, str] = {}
    with write_bank(path, embedder.dim, {"files": len(paths)}) as writer:
        for index, vector, reason in iter_embeddings(paths, embedder, **options):
            if vector is None:
                reasons[index] = reason or "skipped"
            else:
                writer.add(vector)
        writer.meta["skipped"] = {str(i): r for i, r in reasons.items()}
    bank, _ = open_bank(path)
    return bank, _skipped(paths, reasons)
