"""The ``audio-features`` embedder: timbre, harmony and rhythm statistics of rendered audio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from curricmusic.novelty.embedders._audio_feature_stats import MEAN, SCALE, VERSION
from curricmusic.novelty.embedders.base import Embedder, EmbedderUnavailable, l2_rows, resample

__all__ = ["AudioFeaturesEmbedder", "AUDIO_INSTALL_HINT"]

AUDIO_INSTALL_HINT = "pip install 'curricmusic[audio]'"


def _version(module: Any) -> str:
    return str(getattr(module, "__version__", "unknown"))


class AudioFeaturesEmbedder(Embedder):
    """Hand-made timbre / harmony / rhythm statistics of the audio: no weights.

    At 22.05 kHz (2048-point STFT, hop 512): mean and standard deviation over time of 20 MFCCs,
    12 chroma bins, 7 spectral-contrast bands and the onset strength (80 numbers). Each is
    standardised with fixed constants (:mod:`curricmusic.novelty.embedders._audio_feature_stats`,
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
        try:  # optional heavy dependency: only this embedder needs it
            import librosa
        except ImportError as err:
            raise EmbedderUnavailable(
                f"the audio-features embedder needs librosa: {AUDIO_INSTALL_HINT}"
            ) from err
        self._librosa = librosa
        self.source = f"librosa {_version(librosa)}"

    def cache_key(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "librosa": _version(self._librosa),
            "stats": VERSION,
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
        standardised = (np.stack(rows) - MEAN) / SCALE
        return l2_rows(standardised)
