"""Load an original LAION-CLAP ``.pt`` checkpoint into transformers' ``ClapAudioModelWithProjection``.

LAION's checkpoints (``630k-audioset-best.pt``, ``630k-audioset-fusion-best.pt``,
``music_audioset_epoch_15_esc_90.14.pt``, ...) hold the whole CLAP model, usually as
``{"state_dict": {"module.audio_branch....": tensor, ...}, "epoch": ..., ...}``. Only the audio
tower (``audio_branch.*``, an HTSAT Swin transformer) and its projection MLP
(``audio_projection.0/2``) are needed for audio embeddings; we rename those keys into the
transformers model's names ourselves instead of importing ``laion_clap`` (see DESIGN.md for why).

The renaming follows transformers' ``convert_clap_original_pytorch_to_hf.py``:

=================================================  ==============================================
LAION (after ``module.`` and ``audio_branch.``)    transformers (under ``audio_model.audio_encoder.``)
=================================================  ==============================================
``bn0.*``                                          ``batch_norm.*``
``patch_embed.{proj,norm,mel_conv2d,fusion_model}``  unchanged
``layers.i.blocks.j.norm1`` / ``norm2``            ``...layernorm_before`` / ``layernorm_after``
``layers.i.blocks.j.attn.qkv`` (rows q; k; v)      ``...attention.self.{query,key,value}``
``layers.i.blocks.j.attn.proj``                    ``...attention.output.dense``
``layers.i.blocks.j.attn.relative_position_bias_table``  ``...attention.self.<same>``
``layers.i.blocks.j.mlp.fc1`` / ``fc2``            ``...intermediate.dense`` / ``output.dense``
``layers.i.downsample.{reduction,norm}``, ``norm``   unchanged
``audio_projection.0`` / ``.2`` (top level)        ``audio_projection.linear1`` / ``linear2``
=================================================  ==============================================

Dropped on purpose: the in-model STFT/log-mel front end (``spectrogram_extractor``,
``logmel_extractor``; transformers computes features in ``ClapFeatureExtractor``), the AudioSet
heads (``head``, ``tscam_conv``), the buffers transformers recomputes (``attn_mask``,
``relative_position_index``) and everything outside the audio tower (text branch, transforms,
logit scales).

The architecture is read from the tensors, so HTSAT-tiny (embed dim 96, depths 2-2-6-2, the 630k
checkpoints) and HTSAT-base (embed dim 128, depths 2-2-12-2, hidden 1024, the music checkpoints)
need no flag: ``patch_embeds_hidden_size`` from the patch projection, ``depths`` from the block
indices, ``num_attention_heads`` and ``window_size`` from the relative-position tables,
``hidden_size``/``projection_dim`` from the projection, ``enable_fusion`` from the fusion keys.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from curricmusic.common.errors import UserError

__all__ = ["convert_state_dict", "infer_audio_config", "load_laion_checkpoint", "read_checkpoint"]

_DROPPED = re.compile(
    r"^(spectrogram_extractor\.|logmel_extractor\.|head\.|tscam_conv\.|"
    r"layers\.\d+\.blocks\.\d+\.attn_mask$|layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$)"
)
_BLOCK = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.(.+)$")
_BLOCK_RENAMES = {
    "norm1.": "layernorm_before.",
    "norm2.": "layernorm_after.",
    "attn.proj.": "attention.output.dense.",
    "attn.relative_position_bias_table": "attention.self.relative_position_bias_table",
    "mlp.fc1.": "intermediate.dense.",
    "mlp.fc2.": "output.dense.",
}
_KEPT = re.compile(
    r"^(patch_embed\.(proj|norm|mel_conv2d|fusion_model)\.|layers\.\d+\.downsample\.(reduction|norm)\.|norm\.)"
)
# transformers buffers that a LAION checkpoint does not (need to) provide.
_RECOMPUTED = re.compile(r"(relative_position_index|num_batches_tracked)$")
AUDIO_PREFIX = "audio_model.audio_encoder."


def _numpy_scalar_globals() -> list:
    """What a pickled NumPy scalar (``np.float64(15.0)``) needs: the scalar constructor (under its
    NumPy 1 and 2 module names) and the dtypes. Plain values: no code runs when they load."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtypes = getattr(np, "dtypes", None)  # NumPy >= 1.25
    dtype_classes = [getattr(dtypes, name) for name in getattr(dtypes, "__all__", [])]
    return [
        scalar,
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
        *dtype_classes,
    ]


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The flat state dict inside a LAION checkpoint, with any ``module.`` prefix removed.

    Read with torch's safe ``weights_only`` loader, which builds tensors and plain values and
    never runs code from the file. LAION's files pickle NumPy scalars beside the tensors (the
    epoch, a metric); those are admitted too. A file that needs anything else is refused: it was
    not written as a plain checkpoint, and unpickling it could run arbitrary code.
    """
    import pickle

    import torch

    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise UserError(f"cannot read LAION checkpoint {path}: not a torch checkpoint file")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise UserError(
            f"refused LAION checkpoint {path}: it holds Python objects other than tensors and "
            f"plain values{what}, and loading it could run code; convert it to safetensors or "
            "use a transformers CLAP folder"
        ) from None
    except Exception as err:
        raise UserError(f"cannot read LAION checkpoint {path}: {err}") from err
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise UserError(f"{path} is not a LAION CLAP checkpoint (expected a state dict)")
    return {
        (key[len("module.") :] if key.startswith("module.") else key): value
        for key, value in checkpoint.items()
    }


def convert_state_dict(state_dict: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """LAION audio-tower keys -> transformers names.

    Returns ``(converted, unknown)``: ``unknown`` lists ``audio_branch.*`` keys no rule covers
    (the caller reports them as unexpected).
    """
    converted: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key.startswith("audio_projection."):
            match = re.match(r"^audio_projection\.(\d+)\.(weight|bias)$", key)
            layer = {"0": "linear1", "2": "linear2"}.get(match.group(1)) if match else None
            if match is None or layer is None:
                unknown.append(key)
            else:
                converted[f"audio_projection.{layer}.{match.group(2)}"] = value
            continue
        if not key.startswith("audio_branch."):
            continue  # text branch, transforms, logit scales
        name = key[len("audio_branch.") :]
        if _DROPPED.match(name):
            continue
        if name.startswith("bn0."):
            converted[AUDIO_PREFIX + "batch_norm." + name[len("bn0.") :]] = value
            continue
        if _KEPT.match(name):
            converted[AUDIO_PREFIX + name] = value
            continue
        block = _BLOCK.match(name)
        if block is None:
            unknown.append(key)
            continue
        stem = f"{AUDIO_PREFIX}layers.{block.group(1)}.blocks.{block.group(2)}."
        rest = block.group(3)
        qkv = re.match(r"^attn\.qkv\.(weight|bias)$", rest)
        if qkv:
            query, key_, value_ = value.chunk(3, dim=0)
            for part, tensor in (("query", query), ("key", key_), ("value", value_)):
                converted[f"{stem}attention.self.{part}.{qkv.group(1)}"] = tensor.clone()
            continue
        for old, new in _BLOCK_RENAMES.items():
            if rest.startswith(old):
                converted[stem + new + rest[len(old) :]] = value
                break
        else:
            unknown.append(key)
    return converted, unknown


def infer_audio_config(converted: dict[str, Any]) -> dict[str, Any]:
    """``ClapAudioConfig`` keyword arguments read off converted tensors' shapes."""
    try:
        patch = converted[AUDIO_PREFIX + "patch_embed.proj.weight"]  # (C, 1, p, p)
        linear1 = converted["audio_projection.linear1.weight"]  # (proj, hidden)
        mel_bins = converted[AUDIO_PREFIX + "batch_norm.weight"].shape[0]
    except KeyError as err:
        raise UserError(f"not a CLAP audio checkpoint: missing {err.args[0]}") from err
    depths: dict[int, int] = {}
    heads: dict[int, int] = {}
    table_rows = 0
    for key, value in converted.items():
        match = re.match(
            rf"^{re.escape(AUDIO_PREFIX)}layers\.(\d+)\.blocks\.(\d+)\.attention\.self\.relative_position_bias_table$",
            key,
        )
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            depths[stage] = max(depths.get(stage, 0), block + 1)
            heads[stage] = int(value.shape[1])
            table_rows = int(value.shape[0])  # (2w - 1)^2
    if not depths or sorted(depths) != list(range(len(depths))):
        raise UserError("not a CLAP audio checkpoint: no consistent audio_branch.layers.*.blocks.*")
    embed_dim = int(patch.shape[0])
    fc1 = converted.get(AUDIO_PREFIX + "layers.0.blocks.0.intermediate.dense.weight")
    config = {
        "patch_embeds_hidden_size": embed_dim,
        "patch_size": int(patch.shape[-1]),
        "patch_stride": [int(patch.shape[-2]), int(patch.shape[-1])],
        "depths": [depths[i] for i in range(len(depths))],
        "num_attention_heads": [heads[i] for i in range(len(heads))],
        "window_size": (int(round(math.sqrt(table_rows))) + 1) // 2,
        "hidden_size": int(linear1.shape[1]),
        "projection_dim": int(linear1.shape[0]),
        "num_mel_bins": int(mel_bins),
        "mlp_ratio": float(fc1.shape[0]) / embed_dim if fc1 is not None else 4.0,
        "enable_fusion": any(".patch_embed.fusion_model." in key for key in converted),
    }
    if config["enable_fusion"]:
        config["fusion_type"] = "aff_2d"  # the only fusion LAION released
    return config


def load_laion_checkpoint(path: str | os.PathLike[str], **config_overrides: Any) -> Any:
    """A ``ClapAudioModelWithProjection`` (eval mode) holding a LAION ``.pt`` checkpoint's audio tower.

    Missing or unexpected keys after conversion raise :class:`UserError` listing a few.
    """
    from transformers import ClapAudioConfig, ClapAudioModelWithProjection

    converted, unknown = convert_state_dict(read_checkpoint(path))
    if not converted:
        raise UserError(
            f"{path}: no audio_branch.* / audio_projection.* weights (not a CLAP checkpoint?)"
        )
    settings = infer_audio_config(converted)
    settings.update(config_overrides)
    model = ClapAudioModelWithProjection(ClapAudioConfig(**settings))
    try:
        result = model.load_state_dict(converted, strict=False)
    except RuntimeError as err:  # shape mismatches
        first = str(err).strip().splitlines()
        raise UserError(
            f"{path}: weights do not fit the inferred CLAP config: {' '.join(first[:3])}"
        ) from err
    missing = [key for key in result.missing_keys if not _RECOMPUTED.search(key)]
    unexpected = list(result.unexpected_keys) + unknown
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:4])})")
        raise UserError(
            f"{path}: checkpoint does not match the CLAP audio model: {'; '.join(parts)}"
        )
    return model.eval()
