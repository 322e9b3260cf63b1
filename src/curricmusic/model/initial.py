"""The untrained model an experiment's seed starts from: every arm of a seed, and the probe's
"initial" reference, get the same weights.

:func:`seeded_model` builds it from an experiment's ``[model]`` and ``[train]`` sections, after
checking that a training step fits in this machine's memory; :func:`initial_model` rebuilds it
from a run's ``run.json`` (training code not needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import RUN_FILE
from curricmusic.config import ExperimentConfig
from curricmusic.model.budget import check_inference_fits, check_training_fits
from curricmusic.model.pretrained import load_pretrained
from curricmusic.model.transformer import ModelConfig, MusicTransformer, weights_digest

__all__ = ["model_config_of", "seeded_model", "initial_model"]


def model_config_of(config: ExperimentConfig, vocab_size: int, source: str) -> ModelConfig:
    """The ``ModelConfig`` an experiment's ``[model]`` section gives over ``vocab_size`` tokens; a
    model section that cannot be built is one line naming ``source``."""
    section = config.model
    overrides = {k: v for k, v in section.model_dump().items() if k not in ("size", "dropout") and v is not None}
    try:
        return ModelConfig.from_size(
            section.size, vocab_size, max_seq_len=config.train.seq_len, dropout=section.dropout, **overrides
        )
    except ValueError as exc:
        raise UserError(f"{source}: model: {exc}") from None


def _seeded(model_config: ModelConfig, seed: int) -> MusicTransformer:
    torch.manual_seed(seed)  # the same initial weights for every arm of a seed: paired comparisons
    return MusicTransformer(model_config)


def seeded_model(
    config: ExperimentConfig, vocab_size: int, seed: int, source: str, micro_batch: int | None = None
) -> MusicTransformer:
    """The experiment's model with the initial weights of ``seed``. Before any weight exists, a
    training step of ``micro_batch`` windows (default the experiment's) is checked to fit in this
    machine's memory (one line, exit 2, if not)."""
    model_config = model_config_of(config, vocab_size, source)
    batch = micro_batch or config.train.micro_batch_size or config.train.batch_size
    check_training_fits(model_config, batch, config.train.seq_len, f"{source}: model")
    return _seeded(model_config, seed)


def initial_model(run_info: dict[str, Any], vocab_size: int) -> MusicTransformer:
    """The model a run started from, rebuilt from its ``run.json`` exactly as training built it
    (every arm of the run's seed starts from these weights), with the ``init_from`` weights
    loaded over it when the run started from a shared model (checked against the content hash
    the run recorded)."""
    config = ExperimentConfig.model_validate_json(json.dumps(run_info["config"]))
    source = str(run_info.get("experiment_file", RUN_FILE))
    model_config = model_config_of(config, vocab_size, source)
    check_inference_fits(model_config, 1, config.train.seq_len, f"{RUN_FILE}: model")
    model = _seeded(model_config, int(run_info["seed"]))
    start = run_info.get("init_from")
    if start:
        folder = Path(start["path"])
        if not folder.is_dir():
            raise UserError(f"{source}: train.init_from: {folder} is gone; the run's initial weights are needed here")
        model.load_state_dict(load_pretrained(folder).state_dict())
        if weights_digest(model) != start["weights_sha256"]:
            raise UserError(f"{source}: train.init_from: {folder} holds other weights than the run started from")
    return model
