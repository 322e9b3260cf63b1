"""LAION CLAP audio embeddings through transformers' ``ClapAudioModelWithProjection``.

Weights come from one of (never from the network at run time):

- a Hugging Face id (``laion/larger_clap_music``, ``laion/clap-htsat-unfused``) resolved in the
  local Hugging Face cache only;
- a local directory written by ``save_pretrained`` (a full ``ClapModel`` or an audio-only
  ``ClapAudioModelWithProjection``; only the audio tower is loaded);
- an original LAION ``.pt`` checkpoint, converted in :mod:`curricmusic.novelty.embedders.laion_convert`.

Windows. CLAP sees 10 s at 48 kHz. Each clip is cut into consecutive, non-overlapping 10 s
windows (``ceil(n / 10 s)``, at least one); a last window shorter than 10 s is filled by
LAION's ``repeatpad`` (the window repeated ``floor(10 s / len)`` times, then zeros), which is how
CLAP saw short clips in training. Every window is embedded (in batches), L2-normalised, and the
clip's embedding is the mean of its windows weighted by the seconds of real audio each holds,
L2-normalised again: every second of audio counts the same, and a 0.3 s tail does not weigh
as much as a full window. Because every window is exactly 10 s the feature extractor never
takes its random-crop branch, and ``is_longer`` is passed as all False (for fused models this is
LAION's own value for a clip of exactly 10 s), so embeddings are deterministic.

Feature extractor. A checkpoint's own ``preprocessor_config.json`` is used when it has one.
Otherwise (LAION ``.pt`` files, directories saved without one) the extractor is configured as
LAION trained these models, which is also what the released Hugging Face conversions ship:
48 kHz, 10 s, 64 mel bins, 1024-point FFT, hop 480, fmin 50 Hz, fmax 14 kHz, ``repeatpad``, and
truncation ``rand_trunc`` for unfused models (``fusion`` for fused ones). transformers'
``ClapFeatureExtractor`` defaults differ (fusion, fmin 0), and ``rand_trunc`` also selects the
Slaney mel filters that the unfused conversions use. The log-mel input itself is computed by
:meth:`ClapEmbedder.features`, a batched float64 ``torch.stft`` (on the GPU when there is one)
that reproduces the extractor's numbers (tested to 1e-3 dB) without its per-frame Python loop.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.common.paths import cache_dir
from curricmusic.novelty.embedders.base import Embedder, EmbedderUnavailable, resample

if TYPE_CHECKING:  # torch loads only when the embedder runs
    import torch

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "ClapEmbedder",
    "ClapUnavailable",
    "laion_feature_extractor",
    "load_clap",
    "pad_window",
    "window_bounds",
]

CLAP_INSTALL_HINT = "pip install 'curricmusic[clap]'"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
WINDOW_POLICY = "10s-consecutive-repeatpad-weighted-mean/1"
FEATURES = "torch-stft-float64/1"


class ClapUnavailable(EmbedderUnavailable):
    """CLAP cannot run here: its weights are not on this machine, or transformers is missing.

    The message says where we looked and how to get them; ``load_embedder`` falls back on it.
    """


def window_bounds(n_samples: int, window: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` windows covering ``n_samples`` (one window for an empty clip).

    >>> window_bounds(25, 10)
    [(0, 10), (10, 20), (20, 25)]
    """
    count = max(1, -(-int(n_samples) // int(window)))
    return [(i * window, min((i + 1) * window, n_samples)) for i in range(count)]


def pad_window(segment: np.ndarray, window: int) -> np.ndarray:
    """LAION ``repeatpad``: repeat ``segment`` ``floor(window / len)`` times, then pad with zeros."""
    segment = np.asarray(segment, dtype=np.float32)
    if segment.shape[0] >= window:
        return segment[:window]
    if segment.shape[0] == 0:
        return np.zeros(window, dtype=np.float32)
    tiled = np.tile(segment, window // segment.shape[0])
    return np.pad(tiled, (0, window - tiled.shape[0]))


def laion_feature_extractor(fusion: bool = False) -> Any:
    """``ClapFeatureExtractor`` with the settings LAION trained with (see the module docstring)."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48_000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        frequency_min=50,
        frequency_max=14_000,
        padding="repeatpad",
        truncation="fusion" if fusion else "rand_trunc",
    )


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError as err:
        raise ClapUnavailable(f"the CLAP embedder needs transformers: {CLAP_INSTALL_HINT}") from err
    return transformers


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-load progress bars and key reports (we check keys ourselves)."""
    logging = _import_transformers().utils.logging
    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _file_sha256(path: Path) -> str:
    """sha256 of a (large) file, memoised on disk by (path, size, mtime)."""
    stat = path.stat()
    token = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = cache_dir("file-hashes") / (hashlib.sha1(token.encode()).hexdigest() + ".txt")
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    from curricmusic.common.atomic import write_text

    write_text(memo, digest.hexdigest())
    return digest.hexdigest()


def _directory_weights_id(directory: Path) -> str:
    files = sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".safetensors", ".bin") or p.name == "config.json"
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{_file_sha256(file)}\n".encode())
    return digest.hexdigest()


class ClapEmbedder(Embedder):
    """CLAP audio embeddings of 10 s windows, averaged per clip (see the module docstring)."""

    kind = "learned"
    input = "audio"
    sample_rate: int

    def __init__(
        self,
        model: Any,
        feature_extractor: Any,
        *,
        spec: str,
        weights_id: str,
        weights_real: bool = True,
        source: str = "",
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        import torch

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.feature_extractor = feature_extractor
        self.spec = spec
        self.weights_id = weights_id
        self.weights_real = weights_real
        self.source = source
        self.batch_size = max(1, int(batch_size))
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.window = int(feature_extractor.nb_max_samples)  # 480000 = 10 s at 48 kHz
        self.dim = int(model.config.projection_dim)
        self.truncation = feature_extractor.truncation
        self._mel_filters: Any = None  # (F, M) float64 tensor on the device, built on first use
        self._hann: Any = None

    @classmethod
    def from_spec(cls, argument: str | None, *, batch_size: int = 16, device: str | None = None) -> ClapEmbedder:
        if not argument:
            raise UserError("clap needs a source: clap:<HF id | local dir | LAION .pt file>")
        return load_clap(argument, batch_size=batch_size, device=device)

    def cache_key(self) -> dict[str, Any]:
        extractor = {
            k: getattr(self.feature_extractor, k)
            for k in (
                "feature_size",
                "sampling_rate",
                "hop_length",
                "fft_window_size",
                "frequency_min",
                "frequency_max",
                "truncation",
                "top_db",
            )
        }
        return {
            "spec": self.spec,
            "weights": self.weights_id,
            "windows": WINDOW_POLICY,
            "features": FEATURES,
            "extractor": extractor,
        }

    def reference_features(self, windows: list[np.ndarray]) -> torch.Tensor:
        """(B, C, frames, mel) log-mel input through transformers' ``ClapFeatureExtractor``."""
        state = np.random.get_state()  # the extractor draws from numpy's global RNG for "fusion"
        try:
            return self.feature_extractor(
                windows,
                sampling_rate=self.sample_rate,
                max_length=self.window,
                truncation=self.truncation,
                padding="repeatpad",
                return_tensors="pt",
            )["input_features"]
        finally:
            np.random.set_state(state)

    def features(self, windows: list[np.ndarray]) -> torch.Tensor:
        """(B, C, frames, mel) float32 log-mel input on the model's device, batched.

        The same computation as ``ClapFeatureExtractor`` on exactly-10 s windows (periodic Hann,
        centred reflect-padded STFT, power, the extractor's own mel filters, 10 log10 with a
        1e-10 floor; C = 4 identical channels for fusion), but as one float64 ``torch.stft``
        over the whole batch instead of a Python loop over frames per window, on the GPU when
        there is one. Agreement with :meth:`reference_features` is a test.
        """
        import torch

        fe = self.feature_extractor
        if self._mel_filters is None:
            filters = fe.mel_filters if self.truncation == "fusion" else fe.mel_filters_slaney
            self._mel_filters = torch.as_tensor(filters, dtype=torch.float64, device=self.device)
            self._hann = torch.hann_window(
                fe.fft_window_size, periodic=True, dtype=torch.float64, device=self.device
            )
        audio = torch.from_numpy(np.stack(windows)).to(self.device, torch.float64)  # (B, W)
        spectrum = torch.stft(
            audio,
            n_fft=fe.fft_window_size,
            hop_length=fe.hop_length,
            window=self._hann,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (B, F, T)
        mel = torch.einsum("bft,fm->btm", spectrum.abs() ** 2, self._mel_filters)  # (B, T, M)
        log_mel = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        channels = 4 if self.truncation == "fusion" else 1
        return log_mel.unsqueeze(1).expand(-1, channels, -1, -1).to(torch.float32)

    def embed_windows(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """(M, D) L2-normalised embeddings of exactly-10 s windows, ``batch_size`` at a time."""
        import torch

        out = np.zeros((len(windows), self.dim), dtype=np.float32)
        for start in range(0, len(windows), self.batch_size):
            batch = list(windows[start : start + self.batch_size])
            features = self.features(batch)  # (B, 1 or 4, 1001, 64)
            is_longer = torch.zeros((len(batch), 1), dtype=torch.bool, device=self.device)
            with torch.inference_mode():
                embeds = self.model(input_features=features, is_longer=is_longer).audio_embeds
                embeds = torch.nn.functional.normalize(embeds.float(), dim=-1)  # (B, D)
            out[start : start + len(batch)] = embeds.cpu().numpy()
        return out

    def embed_audio(self, clips: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """(N, D) float32, L2-normalised: one row per clip."""
        windows: list[np.ndarray] = []
        owner: list[int] = []
        weight: list[float] = []
        for index, clip in enumerate(clips):
            clip = resample(
                np.asarray(clip, dtype=np.float32).reshape(-1), sample_rate, self.sample_rate
            )
            for start, stop in window_bounds(clip.shape[0], self.window):
                windows.append(pad_window(clip[start:stop], self.window))
                owner.append(index)
                weight.append(max(stop - start, 1) / self.window)
        if not windows:
            return np.zeros((0, self.dim), dtype=np.float32)
        embeds = self.embed_windows(windows) * np.asarray(weight, dtype=np.float32)[:, None]
        pooled = np.zeros((len(clips), self.dim), dtype=np.float64)
        np.add.at(pooled, np.asarray(owner), embeds)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _not_found(target: str, looked: str) -> ClapUnavailable:
    repo = target if not _looks_like_path(target) else "laion/larger_clap_music"
    return ClapUnavailable(
        f"CLAP weights {target!r} not found ({looked}). Get them with `hf download {repo}` "
        "(`huggingface-cli download` with older huggingface_hub) and pass clap:<that id>, or pass "
        "clap:/path/to/a/save_pretrained/dir or clap:/path/to/music_audioset_epoch_15_esc_90.14.pt "
        "(a LAION .pt checkpoint)"
    )


def _looks_like_path(target: str) -> bool:
    """A path (that does not exist) rather than a Hugging Face ``owner/name`` id."""
    return (
        target.startswith(("/", ".", "~"))
        or target.lower().endswith(CHECKPOINT_SUFFIXES)
        or target.count("/") > 1
        or "\\" in target
    )


def _load_directory(directory: Path) -> tuple[Any, Any]:
    from transformers import ClapAudioModelWithProjection, ClapFeatureExtractor

    if not (directory / "config.json").is_file():
        raise UserError(f"{directory} is not a transformers CLAP directory (no config.json)")
    with _quiet_transformers():
        try:
            loaded: Any = ClapAudioModelWithProjection.from_pretrained(
                directory, local_files_only=True, output_loading_info=True
            )
            model, info = loaded
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"cannot load a CLAP audio model from {directory}: {err}") from err
        # transformers would silently initialise missing weights at random: refuse instead.
        missing = sorted(info.get("missing_keys", ())) + sorted(
            str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ())
        )
        if missing:
            raise UserError(
                f"{directory}: the checkpoint lacks {len(missing)} CLAP audio weights "
                f"(e.g. {', '.join(missing[:4])})"
            )
        if (directory / "preprocessor_config.json").is_file():
            extractor = ClapFeatureExtractor.from_pretrained(directory, local_files_only=True)
        else:
            extractor = laion_feature_extractor(fusion=bool(model.config.enable_fusion))
    return model, extractor


def load_clap(target: str, *, batch_size: int = 16, device: str | None = None) -> ClapEmbedder:
    """A :class:`ClapEmbedder` for ``target`` (HF id, directory, or LAION ``.pt`` file).

    Raises :class:`ClapUnavailable` when the weights are not on this machine or transformers is
    missing, and :class:`UserError` when the weights are there but unusable.
    """
    _import_transformers()
    spec = f"clap:{target}"
    path = Path(target).expanduser()
    if path.is_dir():
        model, extractor = _load_directory(path)
        weights_id, source = _directory_weights_id(path), str(path.resolve())
    elif path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise UserError(
                f"{path}: expected a directory saved with save_pretrained or a LAION "
                f"checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})"
            )
        from curricmusic.novelty.embedders.laion_convert import load_laion_checkpoint

        with _quiet_transformers():
            model = load_laion_checkpoint(path)
        extractor = laion_feature_extractor(fusion=bool(model.config.enable_fusion))
        weights_id, source = _file_sha256(path), str(path.resolve())
    elif _looks_like_path(target):
        raise _not_found(target, f"no such file or directory: {path}")
    else:
        from huggingface_hub import constants, snapshot_download

        try:
            snapshot = Path(snapshot_download(target, local_files_only=True))
        except Exception as err:  # LocalEntryNotFoundError, invalid repo id, ...
            raise _not_found(
                target,
                f"not in the Hugging Face cache {constants.HF_HUB_CACHE}; nothing is downloaded at run time",
            ) from err
        model, extractor = _load_directory(snapshot)
        weights_id, source = f"hf:{target}@{snapshot.name}", str(snapshot)
    return ClapEmbedder(
        model,
        extractor,
        spec=spec,
        weights_id=weights_id,
        source=source,
        batch_size=batch_size,
        device=device,
    )
