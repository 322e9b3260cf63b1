"""Checkpoints: everything needed to continue a run exactly where it stopped.

``RUN_DIR/checkpoint.pt`` holds the model, optimizer, schedule state, sampler and torch RNG
states: tensors and plain Python values only (loaded with ``weights_only=True``, never
unpickled) plus their content hash. It is written to a temporary name and renamed into place.
The rest of the run folder's format is :mod:`curricmusic.common.run_folder`.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curricmusic.common.atomic import atomic_path
from curricmusic.common.errors import UserError
from curricmusic.model.digest import tree_digest

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "rng_states",
    "restore_rng_states",
]


def rng_states(sampler_rng: np.random.Generator) -> dict[str, Any]:
    """Every random state a training step consumes: the sampler's, torch's (CPU, CUDA), Python's."""
    states = {
        "sampler": sampler_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], sampler_rng: np.random.Generator) -> None:
    sampler_rng.bit_generator.state = states["sampler"]
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


DIGEST_KEY = "content_sha256"


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers; anything ``weights_only`` cannot load is an
    error here, at save time, not when a run tries to resume."""
    if isinstance(value, torch.Tensor | str | bytes | bool | int | float) or value is None:
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    raise TypeError(
        f"a checkpoint holds tensors and plain Python values only (it is loaded with "
        f"weights_only=True); got a {type(value).__name__}"
    )


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then rename over ``path``; records a content hash."""
    payload = _plain(dict(payload))
    payload[DIGEST_KEY] = tree_digest(payload)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as handle:  # a Python file: a full disk is an OSError, not a C++ one
                torch.save(payload, handle)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


_RESTART = "resume from a copy of the run folder, or start the run again in a new --out"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's payload: tensors and plain values only (``weights_only=True``: a file that
    holds any other Python object is refused, never unpickled), checked against its hash."""
    if not path.is_file():
        raise UserError(f"{path}: no checkpoint to resume from (start without --resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise UserError(f"{path}: damaged (not a torch checkpoint file); {_RESTART}") from None
        raise UserError(
            f"{path}: refused: it holds Python objects other than tensors and plain values, so "
            "loading it could run code; curricmusic never writes such a file (start a new --out)"
        ) from None
    except Exception:  # noqa: BLE001 - a torn or foreign file (torch's own words: under --debug)
        raise UserError(f"{path}: damaged (truncated, or not a torch checkpoint file); {_RESTART}") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path}: not a curricmusic checkpoint (expected a dict)")
    recorded = payload.pop(DIGEST_KEY, None)
    if recorded is not None and tree_digest(payload) != recorded:
        raise UserError(f"{path}: damaged (its contents do not match the hash recorded when it was saved); {_RESTART}")
    return payload
