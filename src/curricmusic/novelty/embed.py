"""Embedders for novelty scoring: CLAP, audio features, symbolic; and a cached MIDI -> embedding pass.

``load_embedder(spec)`` parses an embedder SPEC (the CLI's ``--embedder``):

==============================  ==========================================================
``clap:<HF id | dir | .pt>``    LAION CLAP audio embeddings (:mod:`curricmusic.novelty.clap`)
``audio-features``              MFCC / chroma / spectral-contrast / onset statistics (librosa)
``symbolic``                    pitch-class, interval, rhythm histograms of the notes
==============================  ==========================================================

Every embedder returns float32 rows with unit L2 norm, so cosine similarity is a dot product.
Three fields say what produced the numbers, for the report header:

- ``kind``: ``"learned"`` (a neural network) or ``"no-weights"`` (a fixed formula);
- ``weights_real``: ``True`` when a learned model's weights were loaded from a checkpoint,
  ``False`` for a randomly initialised model (benchmarks), ``None`` when there are no weights;
- ``fallback_reason``: ``None``, or why the requested embedder could not be used (CLAP weights
  missing) and this one was used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.errors import UserError
from curricmusic.novelty import _audio_feature_stats as feature_stats
from curricmusic.paths import cache_dir
from curricmusic.progress import err_console

__all__ = [
    "EMBEDDERS",
    "AudioFeaturesEmbedder",
    "EmbeddingCache",
    "Embedder",
    "SymbolicEmbedder",
    "embed_midi_files",
    "load_embedder",
    "resample",
]

AUDIO_INSTALL_HINT = "pip install 'curricmusic[audio]'"


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """``samples`` at ``rate_out`` (soxr, high quality); unchanged when the rates match."""
    if int(rate_in) == int(rate_out) or samples.size == 0:
        return np.asarray(samples, dtype=np.float32)
    import soxr

    return soxr.resample(
        np.asarray(samples, dtype=np.float32), int(rate_in), int(rate_out), quality="HQ"
    )


def _l2_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


class Embedder(ABC):
    """An embedder: ``input`` says whether it takes audio clips or note arrays."""

    spec: str
    kind: str  # "learned" | "no-weights"
    weights_real: bool | None
    dim: int
    input: str  # "audio" | "notes"
    sample_rate: int | None = None  # the rate ``embed_audio`` works at (audio embedders)
    fallback_reason: str | None = None
    requested_spec: str | None = None  # the spec asked for, when this embedder is its fallback
    source: str = ""

    def embed_audio(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """(N, D) float32, L2-normalised; clips are mono float arrays at ``sample_rate``."""
        raise UserError(f"embedder {self.spec!r} embeds note arrays, not audio")

    def embed_notes(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32, L2-normalised; pieces are ``NOTE_DTYPE`` arrays."""
        raise UserError(f"embedder {self.spec!r} embeds audio, not note arrays")

    def cache_key(self) -> dict[str, Any]:
        """What identifies this embedder's output (spec, weights, version)."""
        return {"spec": self.spec}

    def describe(self) -> dict[str, Any]:
        """The report header's account of the embedder."""
        return {
            "spec": self.spec,
            "requested_spec": self.requested_spec or self.spec,
            "kind": self.kind,
            "weights_real": self.weights_real,
            "dim": self.dim,
            "source": self.source,
            "fallback_reason": self.fallback_reason,
        }


class AudioFeaturesEmbedder(Embedder):
    """Hand-made timbre / harmony / rhythm statistics of the audio: no weights.

    At 22.05 kHz (2048-point STFT, hop 512): mean and standard deviation over time of 20 MFCCs,
    12 chroma bins, 7 spectral-contrast bands and the onset strength (80 numbers). Each is
    standardised with fixed constants (:mod:`curricmusic.novelty._audio_feature_stats`,
    measured once on TimGM6mb renders of music21's Bach chorales), so a clip's embedding never
    depends on the rest of its batch, then the vector is L2-normalised.
    """

    spec = "audio-features"
    kind = "no-weights"
    weights_real = None
    input = "audio"
    sample_rate = 22050
    dim = 80
    n_fft = 2048
    hop = 512

    def __init__(self) -> None:
        try:
            import librosa
        except ImportError as err:
            raise UserError(
                f"the audio-features embedder needs librosa: {AUDIO_INSTALL_HINT}"
            ) from err
        self._librosa = librosa
        self.source = f"librosa {librosa.__version__}"

    def cache_key(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "librosa": self._librosa.__version__,
            "stats": feature_stats.VERSION,
        }

    def raw_features(self, clip: np.ndarray) -> np.ndarray:
        """The 80 unstandardised statistics of one clip at ``self.sample_rate``."""
        librosa = self._librosa
        y = np.asarray(clip, dtype=np.float32)
        if y.shape[0] < self.n_fft:
            y = np.pad(y, (0, self.n_fft - y.shape[0]))
        magnitude = np.abs(librosa.stft(y, n_fft=self.n_fft, hop_length=self.hop))  # (1025, T)
        power = magnitude**2
        mel_db = librosa.power_to_db(
            librosa.feature.melspectrogram(S=power, sr=self.sample_rate), ref=1.0
        )  # (128, T)
        parts = [
            librosa.feature.mfcc(S=mel_db, n_mfcc=20),  # (20, T)
            librosa.feature.chroma_stft(S=power, sr=self.sample_rate, tuning=0.0),  # (12, T)
            librosa.feature.spectral_contrast(S=magnitude, sr=self.sample_rate),  # (7, T)
            librosa.onset.onset_strength(S=mel_db, sr=self.sample_rate)[None, :],  # (1, T)
        ]
        stats = []
        for part in parts:
            stats.extend([part.mean(axis=1), part.std(axis=1)])
        return np.nan_to_num(np.concatenate(stats).astype(np.float64))

    def embed_audio(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        rows = [
            self.raw_features(
                resample(np.asarray(c, dtype=np.float32).reshape(-1), sample_rate, self.sample_rate)
            )
            for c in clips
        ]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        standardised = (np.stack(rows) - feature_stats.MEAN) / feature_stats.SCALE
        return _l2_rows(standardised)


# Krumhansl-Kessler key profiles (C major, C minor), for the symbolic embedder's key rotation.
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Rhythm bins in quarter notes, centred on 1/8, 1/4, 1/2, 1, 2, 4, 8, 16 quarters.
_RHYTHM_EDGES = np.array([0.1875, 0.375, 0.75, 1.5, 3.0, 6.0, 12.0])


class SymbolicEmbedder(Embedder):
    """Histograms of the notes themselves: no audio, no weights, transposition-invariant.

    Groups (each L2-normalised on its own, so each weighs the same), then the whole vector
    L2-normalised:

    - pitch class (12), duration-weighted, rotated so the Krumhansl-Kessler key estimate's tonic
      is bin 0 (a transposed piece gets the same histogram);
    - melodic interval (25): successive pitches of the top voice (highest note per onset),
      clipped to -12..12 semitones;
    - inter-onset interval (8) and duration (8), in quarter notes, binned around
      1/8, 1/4, ..., 16 quarters;
    - two scalars in [0, 1): note density ``d / (d + 4)`` with ``d`` notes per quarter, and
      pitch range ``r / (r + 24)`` with ``r`` semitones.

    An empty piece embeds to the zero vector (cosine 0 with everything).
    """

    spec = "symbolic"
    kind = "no-weights"
    weights_real = None
    input = "notes"
    dim = 12 + 25 + 8 + 8 + 2
    source = "note histograms"

    def cache_key(self) -> dict[str, Any]:
        return {"spec": self.spec, "version": 1}

    @staticmethod
    def _unit(values: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(values)
        return values / norm if norm > 0 else values

    def embed_one(self, notes: np.ndarray) -> np.ndarray:
        if notes.shape[0] == 0:
            return np.zeros(self.dim, dtype=np.float32)
        pitches = notes["pitch"].astype(np.int64)
        onsets = notes["onset"].astype(np.float64)
        durations = np.maximum(notes["duration"].astype(np.float64), 0.0)
        pitch_class = np.bincount(pitches % 12, weights=durations + 1e-3, minlength=12)
        scores = [
            (
                np.corrcoef(np.roll(profile, tonic), pitch_class)[0, 1]
                if pitch_class.std() > 0
                else 0.0
            )
            for profile in (_KK_MAJOR, _KK_MINOR)
            for tonic in range(12)
        ]
        tonic = int(np.argmax(np.nan_to_num(scores))) % 12
        pitch_class = np.roll(pitch_class, -tonic)
        order = np.argsort(onsets, kind="stable")
        unique_onsets, first = np.unique(onsets[order], return_index=True)
        top = np.maximum.reduceat(pitches[order], first)  # highest pitch per onset
        intervals = np.clip(np.diff(top), -12, 12) + 12
        interval_hist = np.bincount(intervals, minlength=25).astype(np.float64)
        ioi_hist = np.bincount(np.digitize(np.diff(unique_onsets), _RHYTHM_EDGES), minlength=8)
        duration_hist = np.bincount(np.digitize(durations, _RHYTHM_EDGES), minlength=8)
        span = max(float((onsets + durations).max() - onsets.min()), 1.0)
        density = notes.shape[0] / span
        pitch_range = float(pitches.max() - pitches.min())
        vector = np.concatenate(
            [
                self._unit(pitch_class),
                self._unit(interval_hist),
                self._unit(ioi_hist.astype(np.float64)),
                self._unit(duration_hist.astype(np.float64)),
                [density / (density + 4.0), pitch_range / (pitch_range + 24.0)],
            ]
        )
        return self._unit(vector).astype(np.float32)

    def embed_notes(self, pieces: Sequence[np.ndarray]) -> np.ndarray:
        if not pieces:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed_one(piece) for piece in pieces])


def _make_clap(target: str, **options: Any) -> Embedder:
    from curricmusic.novelty.clap import load_clap

    return load_clap(target, **options)


# name -> factory(argument after the colon or None, **options)
EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "clap": _make_clap,
    "audio-features": lambda _arg=None, **_: AudioFeaturesEmbedder(),
    "symbolic": lambda _arg=None, **_: SymbolicEmbedder(),
}
SPEC_HELP = "clap:<HF id | local dir | LAION .pt file>, audio-features, symbolic"


def load_embedder(
    spec: str, *, fallback: bool = True, batch_size: int = 16, device: str | None = None
) -> Embedder:
    """The embedder for ``spec``; see the module docstring for the forms.

    When CLAP weights (or transformers) are missing and ``fallback`` is true, returns the
    audio-features embedder with ``fallback_reason`` saying where we looked and how to get the
    weights (print it); with ``fallback=False`` that message is raised as :class:`UserError`.
    """
    name, colon, argument = str(spec).strip().partition(":")
    if name not in EMBEDDERS:
        raise UserError(f"unknown embedder {spec!r}; expected {SPEC_HELP}")
    if name == "clap":
        if not argument:
            raise UserError("clap needs a source: clap:<HF id | local dir | LAION .pt file>")
        from curricmusic.novelty.clap import ClapUnavailable

        try:
            return _make_clap(argument, batch_size=batch_size, device=device)
        except ClapUnavailable as err:
            if not fallback:
                raise
            reason = str(err)
        embedder = AudioFeaturesEmbedder()
        embedder.fallback_reason = (
            f"{reason}. Using the audio-features embedder instead (no learned weights)."
        )
        embedder.requested_spec = spec
        return embedder
    if colon:
        raise UserError(f"embedder {name!r} takes no argument (got {spec!r}); expected {SPEC_HELP}")
    return EMBEDDERS[name](None)


class EmbeddingCache:
    """One ``.npy`` per (file content hash) under a directory per (embedder, renderer) key."""

    def __init__(self, key: dict[str, Any]) -> None:
        text = json.dumps(key, sort_keys=True, default=str)
        self.key = key
        self.directory = cache_dir("embeddings", hashlib.sha256(text.encode()).hexdigest()[:32])
        manifest = self.directory / "key.json"
        if not manifest.is_file():
            from curricmusic.atomic import write_text

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
        from curricmusic.atomic import atomic_path

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
    from curricmusic.data.notes import score_notes
    from curricmusic.novelty.render import load_score, render, renderer_spec

    audio = embedder.input == "audio"
    key: dict[str, Any] = {"embedder": embedder.cache_key()}
    if audio:
        key["renderer"] = renderer_spec(renderer, soundfont, embedder.sample_rate)
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
            vectors = embedder.embed_audio(inputs, embedder.sample_rate)
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
                        score, embedder.sample_rate, renderer=renderer, soundfont=soundfont
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
