"""A trained model from any folder curricmusic reads: its own ``model/`` folders and Hugging Face
GPT-NeoX folders (``curricmusic export``'s, or any of the same arithmetic).

:func:`load_pretrained` picks the reader from the folder's ``config.json``;
:func:`shape_differences` names what keeps a model's weights from fitting another's shape (what
``init_from`` checks against the experiment's ``[model]``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from curricmusic.common.errors import UserError
from curricmusic.model.hf_folder import is_hf_folder, load_hf_model
from curricmusic.model.transformer import CONFIG_NAME, ModelConfig, MusicTransformer, load_model

__all__ = ["SHAPE_FIELDS", "folder_format", "load_pretrained", "shape_differences"]

#: The settings that decide a model's weights and arithmetic (dropout and context length do not).
SHAPE_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "mlp_ratio", "bias", "rope_base")


def folder_format(directory: str | Path) -> str | None:
    """``"curricmusic"`` (a ``save_model`` folder), ``"hf"`` (a Hugging Face folder) or None."""
    directory = Path(directory)
    if is_hf_folder(directory):
        return "hf"
    path = directory / CONFIG_NAME
    try:
        meta = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return "curricmusic" if isinstance(meta, dict) and "architecture" in meta else None


def load_pretrained(directory: str | Path, device: torch.device | str = "cpu") -> MusicTransformer:
    """The model in ``directory`` (either format), in eval mode; one line when it is neither."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such model folder")
    kind = folder_format(directory)
    if kind == "hf":
        return load_hf_model(directory, device)
    if kind == "curricmusic":
        return load_model(directory, device)
    raise UserError(
        f"{directory}: not a model folder (expected {CONFIG_NAME} from `curricmusic export`, a Hugging Face "
        "GPT-NeoX folder, or a run's model/ folder)"
    )


def shape_differences(theirs: ModelConfig, ours: ModelConfig) -> list[str]:
    """``"name X where the experiment has Y"`` for every :data:`SHAPE_FIELDS` setting that differs."""
    mine, other = ours.to_dict(), theirs.to_dict()
    return [f"{name} {other[name]} where the experiment has {mine[name]}" for name in SHAPE_FIELDS if mine[name] != other[name]]
