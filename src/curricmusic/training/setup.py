"""Everything a run needs before its first step: data, schedule, sampler, held-out sets, model.

:func:`plan_run` gathers the arm's data and schedule (with the matched arm's window counts for
arms with ``match``); :func:`build_model` and :func:`make_optimizer` give every arm of a seed the
same initial weights and optimizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from curricmusic.common.errors import UserError
from curricmusic.config import Experiment, ExperimentConfig
from curricmusic.curriculum.allocation import window_counts
from curricmusic.curriculum.heldout import HeldOut, heldout_windows
from curricmusic.curriculum.pacing import Pacing, ScheduleContext, build_schedule
from curricmusic.curriculum.windows import WindowSampler
from curricmusic.data.prepared import PreparedData
from curricmusic.model.transformer import ModelConfig, MusicTransformer

__all__ = ["RunPlan", "prepared_for", "schedule_for", "plan_run", "build_model", "initial_model", "make_optimizer", "heldout_sets"]


@dataclass
class RunPlan:
    """The data side of a run: where it reads, what each step draws, what it is scored on."""

    data: PreparedData
    eval_data: PreparedData
    schedule: Pacing
    sampler: WindowSampler
    held_out: dict[str, HeldOut]

    @property
    def stage_names(self) -> tuple[str, ...]:
        return self.schedule.stages.names

    @property
    def total_steps(self) -> int:
        return self.schedule.total_steps


def prepared_for(experiment: Experiment, arm_name: str | None = None, show_progress: bool = True) -> PreparedData:
    """The prepared data of the experiment's curriculum (or an arm's own), built if needed."""
    from curricmusic.data.prepare import prepare
    from curricmusic.data.summary import default_prepared_dir

    config = experiment.config
    curriculum = experiment.arm_curricula[arm_name] if arm_name else experiment.curriculum
    if curriculum is experiment.curriculum and config.prepared is not None:
        folder = config.prepared
    else:
        folder = default_prepared_dir(curriculum)
    return prepare(curriculum, folder, show_progress=show_progress, source=experiment.source).data


def schedule_for(experiment: Experiment, arm_name: str, data: PreparedData, seed: int) -> Pacing:
    """The arm's schedule over ``data``; an arm with ``match`` first builds the matched arm's and
    counts the windows it draws of each stage over its whole run."""
    config = experiment.config
    arm = config.arm(arm_name)
    matched = None
    if arm.match is not None:
        matched = window_counts(schedule_for(experiment, arm.match, data, seed), config.train.batch_size)
    context = ScheduleContext(
        stage_names=tuple(data.stage_names),
        target=data.target_stage,
        seed=seed,
        total_steps=config.train.total_steps,
        batch_size=config.train.batch_size,
        seq_len=config.train.seq_len,
        matched_windows=matched,
    )
    names = data.stage_names
    difficulties = {s: np.array([p["difficulty"] or 0.0 for p in data.pieces(s, "train")]) for s in names}
    tokens = {s: np.diff(data.offsets(s, "train")) for s in names}
    schedule = build_schedule(arm, context, difficulties, tokens)
    for stage in schedule.stages.names:
        if not data.pieces(stage, "train"):
            raise UserError(f"{data.root}: stage {stage!r} has no training pieces; arm {arm_name!r} cannot use it")
    return schedule


def heldout_sets(experiment: Experiment, eval_data: PreparedData, split: str) -> dict[str, HeldOut]:
    """Every stage's ``split`` as strided windows (the same for every arm); empty splits left out."""
    train = experiment.config.train
    sets = {s: heldout_windows(eval_data, s, split, train.seq_len, train.stride) for s in eval_data.stage_names}
    return {s: h for s, h in sets.items() if len(h)}


def plan_run(experiment: Experiment, arm_name: str, seed: int, show_progress: bool = True) -> RunPlan:
    """Data (prepared if needed), schedule, sampler and validation windows of one (arm, seed)."""
    eval_data = prepared_for(experiment, show_progress=show_progress)
    data = eval_data
    if experiment.arm_curricula[arm_name] is not experiment.curriculum:
        data = prepared_for(experiment, arm_name, show_progress=show_progress)
    if data.tokenizer_hash != eval_data.tokenizer_hash:
        raise UserError(f"{data.root}: prepared with another tokenizer than {eval_data.root}")
    schedule = schedule_for(experiment, arm_name, data, seed)
    sampler = WindowSampler(data, schedule.stages.names, experiment.config.train.seq_len, ranks=schedule.stages.ranks)
    return RunPlan(data, eval_data, schedule, sampler, heldout_sets(experiment, eval_data, "val"))


def build_model(experiment: Experiment, vocab_size: int, seed: int) -> MusicTransformer:
    """The model of the experiment, with the same initial weights for every arm of a seed."""
    return _model_of(experiment.config, vocab_size, seed, experiment.source)


def initial_model(run_info: dict, vocab_size: int) -> MusicTransformer:
    """The untrained model a run started from, rebuilt from its ``run.json`` exactly as
    :func:`build_model` built it (every arm of the run's seed starts from these weights)."""
    config = ExperimentConfig.model_validate_json(json.dumps(run_info["config"]))
    return _model_of(config, vocab_size, int(run_info["seed"]), str(run_info.get("experiment_file", "run.json")))


def _model_of(config: ExperimentConfig, vocab_size: int, seed: int, source: str) -> MusicTransformer:
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


def make_optimizer(model: torch.nn.Module, experiment: Experiment, lr: float) -> torch.optim.Optimizer:
    """AdamW, weight decay on matrices only (the schedule sets each step's learning rate)."""
    train = experiment.config.train
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # one fused kernel for every parameter: measurably faster on CPU and GPU alike
        return torch.optim.AdamW(groups, lr=lr, betas=(train.beta1, train.beta2), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=lr, betas=(train.beta1, train.beta2))
