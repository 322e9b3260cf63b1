"""MIDI files to embeddings: render (audio embedders) or read notes (symbolic), batched, cached."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.atomic import atomic_path, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.paths import cache_dir
from curricmusic.common.progress import err_console
from curricmusic.music.notes import score_notes
from curricmusic.novelty.embedders import Embedder
from curricmusic.novelty.render import load_score, render, renderer_spec

__all__ = ["EmbeddingCache", "embed_midi_files"]


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


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not (enabled and err_console.is_terminal),
    )


def embed_midi_files(
    paths: Sequence[str | os.PathLike[str]],
    embedder: Embedder,
    *,
    renderer: str = "soundfont",
    soundfont: str | os.PathLike[str] | None = None,
    progress: bool = True,
    use_cache: bool = True,
    chunk: int = 16,
    max_seconds: float | None = None,
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Embed MIDI files: render (audio embedders) or read notes (symbolic), in batches, cached.

    Returns ``(embeddings, skipped)``: ``embeddings`` is ``(N, D)`` float32 with one row per
    file that was not skipped, in the order of ``paths``; ``skipped`` lists ``{path, reason}``
    for unreadable, corrupt or note-less files. The cache key is (file content sha256,
    ``embedder.cache_key()``, renderer spec), so a changed soundfont or checkpoint never reuses
    stale vectors. ``max_seconds`` keeps only the first seconds of each rendered piece (long
    training pieces then cost a bounded time; part of the cache key).
    """
    audio = embedder.input == "audio"
    sample_rate = int(embedder.sample_rate or 0)  # audio embedders always have one
    key: dict[str, Any] = {"embedder": embedder.cache_key()}
    if audio:
        key["renderer"] = renderer_spec(renderer, soundfont, sample_rate)
        if max_seconds is not None:
            key["max_seconds"] = float(max_seconds)
    cache = EmbeddingCache(key) if use_cache else None
    rows: list[np.ndarray | None] = [None] * len(paths)
    skipped: dict[int, str] = {}
    pending: list[tuple[int, str, Any]] = []  # (index, content hash, clip or notes)

    def flush() -> None:
        if not pending:
            return
        inputs = [item for _, _, item in pending]
        if audio:
            vectors = embedder.embed_audio(inputs, sample_rate)
        else:
            vectors = embedder.embed_notes(inputs)
        for (index, digest, _), vector in zip(pending, vectors, strict=True):
            rows[index] = vector
            if cache is not None:
                cache.put(digest, vector)
        pending.clear()

    with _progress(progress) as bar:
        task = bar.add_task(f"embedding ({embedder.spec})", total=len(paths))
        for index, path in enumerate(paths):
            try:
                data = Path(path).read_bytes()
            except OSError as err:
                skipped[index] = f"cannot read file: {err.strerror or err}"
                bar.advance(task)
                continue
            digest = hashlib.sha256(data).hexdigest()
            hit = cache.get(digest) if cache is not None else None
            if hit is not None and hit.shape == (embedder.dim,):
                rows[index] = hit
                bar.advance(task)
                continue
            try:
                score = load_score(data)
            except UserError as err:
                skipped[index] = str(err).replace(" (<bytes>)", "")
                bar.advance(task)
                continue
            notes = score_notes(score)
            if notes.shape[0] == 0:
                skipped[index] = "no notes"
            elif audio:
                try:
                    clip = render(
                        score, sample_rate, renderer=renderer, soundfont=soundfont
                    )
                except UserError as err:  # e.g. a damaged file claiming an hours-long score
                    skipped[index] = str(err)
                else:
                    samples = clip.samples
                    if max_seconds is not None:
                        samples = samples[: int(round(max_seconds * clip.sample_rate))]
                    pending.append((index, digest, samples))
            else:
                pending.append((index, digest, notes))
            if len(pending) >= chunk:
                flush()
            bar.advance(task)
        flush()
    kept = [row for row in rows if row is not None]
    embeddings = (
        np.stack(kept).astype(np.float32) if kept else np.zeros((0, embedder.dim), np.float32)
    )
    return embeddings, [
        {"path": str(paths[i]), "reason": reason} for i, reason in sorted(skipped.items())
    ]
