"""The untrained model an experiment's seed starts from: every arm of a seed, and the probe's
"initial" reference, get the same weights.

:func:`seeded_model` builds it from an experiment's ``[model]`` and ``[train]`` sections;
:func:`initial_model` rebuilds it from a run's ``run.json`` (training code not needed).
"""

from __future__ import annotations

import json
from typing import Any

import torch

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import RUN_FILE
from curricmusic.config import ExperimentConfig
from curricmusic.model.transformer import ModelConfig, MusicTransformer

__all__ = ["seeded_model", "initial_model"]


def seeded_model(config: ExperimentConfig, vocab_size: int, seed: int, source: str) -> MusicTransformer:
    """The experiment's model with the initial weights of ``seed``; a model section that cannot
    be built is one line naming ``source``."""
    section = config.model
    overrides = {k: v for k, v in section.model_dump().items() if k not in ("size", "dropout") and v is not None}
    try:
        model_config = ModelConfig.from_size(
            section.size, vocab_size, max_seq_len=config.train.seq_len, dropout=section.dropout, **overrides
        )
    except ValueError as exc:
        raise UserError(f"{source}: model: {exc}") from None
    torch.manual_seed(seed)  # the same initial weights for every arm of a seed: paired comparisons
    return MusicTransformer(model_config)


def initial_model(run_info: dict[str, Any], vocab_size: int) -> MusicTransformer:
    """The untrained model a run started from, rebuilt from its ``run.json`` exactly as
    training built it (every arm of the run's seed starts from these weights)."""
    config = ExperimentConfig.model_validate_json(json.dumps(run_info["config"]))
    return seeded_model(config, vocab_size, int(run_info["seed"]), str(run_info.get("experiment_file", RUN_FILE)))
