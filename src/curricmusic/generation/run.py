"""A trained run folder, loaded for sampling: the model, its tokenizer and what ran."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import MODEL_DIR, TOKENIZER_FILE, read_run
from curricmusic.data.prepared import PreparedData
from curricmusic.model.transformer import MusicTransformer, load_model, weights_digest
from curricmusic.music.tokenizers import Tokenizer, load_tokenizer

__all__ = ["LoadedRun", "load_run"]


@dataclass
class LoadedRun:
    run_dir: Path
    model: MusicTransformer
    tokenizer: Tokenizer
    info: dict[str, Any]
    checkpoint_sha256: str

    def prepared(self) -> PreparedData:
        return PreparedData.open(self.info["prepared"])


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """The model and tokenizer of a run folder, with a clear error when either is missing.

    ``device`` defaults to the GPU when there is one.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    info = read_run(run_dir)
    weights = run_dir / MODEL_DIR / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"{run_dir}: no trained model yet ({weights} is missing); train or resume the run first")
    model = load_model(run_dir / MODEL_DIR, device=device).eval()
    tokenizer, _ = load_tokenizer(run_dir / TOKENIZER_FILE)
    if len(tokenizer) != model.config.vocab_size:
        raise UserError(
            f"{run_dir}: the tokenizer has {len(tokenizer)} tokens but the model expects "
            f"{model.config.vocab_size}; the run folder is inconsistent"
        )
    # the weights' content hash: the same in every process for the same weights (a file hash is not)
    return LoadedRun(run_dir, model, tokenizer, info, weights_digest(model))
