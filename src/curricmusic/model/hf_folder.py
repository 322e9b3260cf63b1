"""Hugging Face model folders: our transformer written as, and read back from, GPT-NeoX files.

A folder holds ``config.json`` (:func:`~curricmusic.model.hf_neox.neox_config`) and
``model.safetensors`` (or shards named by ``model.safetensors.index.json``); nothing is ever
unpickled (a folder with only ``pytorch_model.bin`` is refused). The weights' content hash
(:func:`curricmusic.model.transformer.weights_digest`, of our layout) travels in the
safetensors metadata under :data:`DIGEST_KEY`; reading the folder back converts the weights to
our layout and checks that hash, so an export and an import give identical weights or an error.

Every problem is one :class:`~curricmusic.common.errors.UserError` line naming the folder and what
differs. Shapes are read from the safetensors headers and checked against ``config.json``
before any tensor is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from curricmusic.common.atomic import atomic_path, write_json
from curricmusic.common.errors import UserError
from curricmusic.model.digest import state_digest
from curricmusic.model.hf_neox import (
    NEOX_MODEL_TYPE,
    from_neox_state,
    model_config_from_neox,
    neox_config,
    neox_has_bias,
    neox_shapes,
    separate_head,
    to_neox_state,
)
from curricmusic.model.transformer import ModelConfig, MusicTransformer

__all__ = ["HF_CONFIG", "HF_WEIGHTS", "HF_INDEX", "DIGEST_KEY", "save_hf_model", "is_hf_folder", "load_hf_model", "hf_digest"]

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
DIGEST_KEY = "curricmusic_weights_sha256"
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# buffers older GPT-NeoX checkpoints store beside the weights: recomputed, never read
_BUFFERS = re.compile(r"\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$")
_SHARD_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors$")
_FLOATS = {"F16", "BF16", "F32", "F64"}
_HEAD_NAMES = ("embed_out.weight", "lm_head.weight")  # a stored head: transformers 4, transformers 5


def save_hf_model(model: MusicTransformer, directory: str | Path, special_ids: dict[str, int]) -> str:
    """Write ``config.json`` and ``model.safetensors`` (GPT-NeoX layout) into ``directory``,
    each atomically; returns the weights' content hash recorded in the safetensors metadata."""
    from safetensors.torch import save_file

    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    digest = state_digest(state)
    tensors = to_neox_state(state, model.config)
    metadata = {"format": "pt", DIGEST_KEY: digest}
    with atomic_path(directory / HF_WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    write_json(directory / HF_CONFIG, neox_config(model.config, special_ids))
    return digest


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / HF_CONFIG
    if not path.is_file():
        raise UserError(f"{directory}: no {HF_CONFIG}; expected a Hugging Face model folder")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path}: not readable JSON ({error})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a JSON object")
    return config


def is_hf_folder(directory: str | Path) -> bool:
    """True when ``directory`` holds a Hugging Face ``config.json`` (one with a ``model_type``)."""
    path = Path(directory) / HF_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "model_type" in config


def _weight_files(directory: Path) -> list[Path]:
    """The safetensors files of the folder: one, or the shards its index names (validated names)."""
    single, index = directory / HF_WEIGHTS, directory / HF_INDEX
    if single.is_file():
        return [single]
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise UserError(f"{index}: not a safetensors index (expected a JSON object with a weight_map)") from None
        bad = [n for n in names if not isinstance(n, str) or not _SHARD_NAME.match(n)]
        if bad:
            raise UserError(f"{index}: shard name {bad[0]!r} is not a plain .safetensors file name in this folder")
        missing = [n for n in names if not (directory / n).is_file()]
        if missing:
            raise UserError(f"{index}: shard {missing[0]} is missing from {directory}")
        return [directory / n for n in names]
    if any((directory / name).is_file() for name in _PICKLED):
        raise UserError(
            f"{directory}: holds pickled PyTorch weights only ({_PICKLED[0]}), which curricmusic never loads; "
            f"convert them to {HF_WEIGHTS} first (transformers: save_pretrained(..., safe_serialization=True))"
        )
    raise UserError(f"{directory}: no {HF_WEIGHTS}; expected a Hugging Face model folder with safetensors weights")


def _headers(files: list[Path]) -> tuple[dict[str, tuple[tuple[int, ...], str, Path]], str | None]:
    """Name -> (shape, dtype, file) of every stored tensor, read from the headers only, and the
    content hash the metadata records (if any)."""
    from safetensors import SafetensorError, safe_open

    found: dict[str, tuple[tuple[int, ...], str, Path]] = {}
    recorded = None
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                recorded = (handle.metadata() or {}).get(DIGEST_KEY, recorded)
                for name in handle.keys():  # noqa: SIM118 - a safetensors handle, not a dict
                    part = handle.get_slice(name)
                    found[name] = (tuple(int(n) for n in part.get_shape()), str(part.get_dtype()), file)
        except (OSError, SafetensorError) as error:
            raise UserError(f"{file}: not a readable safetensors file ({error})") from None
    return found, recorded


def _check_shapes(directory: Path, found: dict[str, tuple[tuple[int, ...], str, Path]], config: ModelConfig) -> None:
    """One line unless the stored tensors are exactly what ``config`` needs (before any load)."""
    expected = neox_shapes(ModelConfig(**{**config.to_dict(), "bias": True}))
    for name in _HEAD_NAMES:  # a stored (untied) head has the embedding's shape
        expected[name] = expected["gpt_neox.embed_in.weight"]
    optional = {name for name in expected if name in _HEAD_NAMES or ("attention." in name and name.endswith(".bias"))}
    stored = {name: entry[0] for name, entry in found.items() if not _BUFFERS.search(name)}
    missing = sorted(set(expected) - set(stored) - optional)
    extra = sorted(set(stored) - set(expected))
    wrong = sorted(n for n in set(stored) & set(expected) if stored[n] != expected[n])
    problems = [
        f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
        for label, names in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
        if names
    ]
    if wrong:
        problems.append(f"{wrong[0]} is {list(stored[wrong[0]])} where {HF_CONFIG} needs {list(expected[wrong[0]])}")
    if problems:
        raise UserError(f"{directory}: the weights do not fit its {HF_CONFIG}: {'; '.join(problems)}")
    odd = sorted({dtype for _, dtype, _ in found.values()} - _FLOATS)
    if odd:
        raise UserError(f"{directory}: weights of type {odd[0]}; expected floating-point tensors")


def _load_tensors(files: list[Path]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file), device="cpu"))
    return {name: tensor.to(torch.float32) for name, tensor in state.items() if not _BUFFERS.search(name)}


def hf_digest(directory: str | Path) -> str | None:
    """The content hash an exported folder's weights record (None for a folder that records none)."""
    directory = Path(directory)
    return _headers(_weight_files(directory))[1]


def load_hf_model(directory: str | Path, device: torch.device | str = "cpu", max_seq_len: int | None = None) -> MusicTransformer:
    """Our transformer from a GPT-NeoX folder, in eval mode on ``device``.

    The folder's settings must be arithmetic we have (:func:`model_config_from_neox`), its head
    tied (or stored equal to the embedding), its tensors the shapes ``config.json`` implies; a
    recorded content hash must match the converted weights. ``max_seq_len`` defaults to the
    folder's ``max_position_embeddings``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such model folder")
    hf = _read_config(directory)
    if hf.get("model_type") != NEOX_MODEL_TYPE:
        raise UserError(
            f"{directory / HF_CONFIG}: model_type {hf.get('model_type')!r} is not supported; curricmusic reads "
            f"{NEOX_MODEL_TYPE!r} folders (as `curricmusic export` writes them)"
        )
    try:
        guess = model_config_from_neox(hf, bias=True, max_seq_len=max_seq_len)
    except (TypeError, ValueError) as error:
        raise UserError(f"{directory / HF_CONFIG}: {error}") from None
    files = _weight_files(directory)
    found, recorded = _headers(files)
    _check_shapes(directory, found, guess)
    state = _load_tensors(files)
    head = separate_head(state)
    if head is not None and not torch.equal(head[1], state["gpt_neox.embed_in.weight"]):
        raise UserError(
            f"{directory}: its output head ({head[0]}) differs from its token embedding; curricmusic's head is "
            "tied to the embedding (tie_word_embeddings = true)"
        )
    config = ModelConfig(**{**guess.to_dict(), "bias": neox_has_bias(state)})
    model = MusicTransformer(config)
    ours = from_neox_state(state, config)
    if recorded is not None and state_digest(ours) != recorded:
        raise UserError(
            f"{directory}: damaged or changed: its weights do not match the content hash recorded at export "
            f"({recorded[:12]}); export the run again"
        )
    missing, unexpected = model.load_state_dict(ours, strict=False)  # head.weight is tied to tok_emb.weight
    if set(missing) != {"head.weight"} or unexpected:
        raise UserError(f"{directory}: the weights did not load completely ({', '.join([*missing, *unexpected][:3])})")
    return model.to(device).eval()
