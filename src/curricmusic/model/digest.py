"""Content hashes of weights and checkpoints: of the values, never of the file's bytes.

A file hash changes with things that do not matter (the order safetensors writes its metadata
in, zip timestamps) and so cannot tell whether two processes saved the same weights. These
digests walk the values in a fixed order (dict keys sorted) and hash each tensor's name, dtype,
shape and raw bytes, so identical weights give the identical digest in every process, and one
flipped bit gives another.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["state_digest", "tree_digest"]


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


def _update(digest: hashlib._Hash, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        digest.update(f"T{value.dtype}{tuple(value.shape)}:".encode())
        digest.update(_tensor_bytes(value))
    elif isinstance(value, Mapping):
        digest.update(f"D{len(value)}:".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _update(digest, key)
            _update(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for item in value:
            _update(digest, item)
    elif isinstance(value, float):
        digest.update(f"F{value.hex() if math.isfinite(value) else value};".encode())
    elif isinstance(value, bool | int | str | bytes) or value is None:
        digest.update(f"{type(value).__name__[0]}{value!r};".encode())
    else:
        raise TypeError(f"cannot hash a {type(value).__name__} in a checkpoint")


def tree_digest(value: Any) -> str:
    """sha256 of nested dicts / lists / tuples of tensors and plain Python values."""
    digest = hashlib.sha256()
    _update(digest, value)
    return digest.hexdigest()


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's tensors (names sorted): the weights' identity."""
    return tree_digest(dict(state))
