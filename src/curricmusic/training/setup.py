"""Everything a run needs before its first step: data, schedule, sampler, held-out sets, model.

:func:`plan_run` gathers the arm's data and schedule (with the matched arm's window counts for
arms with ``match``); :func:`plan_adaptation` the same for an adaptation run (the ``[adapt]``
style, restricted to a seed's few-shot subset); :func:`build_model` and :func:`make_optimizer`
give every arm of a seed the same initial weights and optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from curricmusic.common.errors import UserError
from curricmusic.config import AdaptSection, ArmConfig, Experiment, TrainSection
from curricmusic.curriculum.allocation import window_counts
from curricmusic.curriculum.heldout import HeldOut, heldout_windows
from curricmusic.curriculum.pacing import Pacing, ScheduleContext, build_schedule
from curricmusic.curriculum.shots import shot_subset
from curricmusic.curriculum.windows import WindowSampler
from curricmusic.data.prepared import PreparedData
from curricmusic.model.initial import seeded_model
from curricmusic.model.transformer import MusicTransformer

__all__ = [
    "RunPlan",
    "Cadence",
    "Adaptation",
    "prepared_for",
    "style_prepared",
    "schedule_for",
    "plan_run",
    "plan_adaptation",
    "build_model",
    "make_optimizer",
    "heldout_sets",
]


@dataclass(frozen=True)
class Cadence:
    """How a run steps: its learning-rate schedule and how often it evaluates, logs and saves
    (``[train]`` for pretraining, ``[adapt]`` for adaptation runs)."""

    lr_schedule: str
    warmup_fraction: float
    min_lr_ratio: float
    decay_fraction: float
    eval_every: int
    log_every: int
    checkpoint_every: int

    @classmethod
    def of(cls, section: TrainSection | AdaptSection) -> Cadence:
        """The cadence a ``TrainSection`` or an ``AdaptSection`` sets."""
        return cls(**{name: getattr(section, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Adaptation:
    """An adaptation run: ``shots`` pieces of the ``[adapt]`` style, starting from the model in
    ``init`` (a run's ``model/`` folder, or a shared one: ``[adapt] init_from``), or from the
    seed's fresh initial weights when None (from-scratch). ``label`` names the model: an arm,
    ``scratch`` or ``shared``."""

    shots: int
    init: Path | None
    label: str


@dataclass
class RunPlan:
    """The data side of a run: where it reads, what each step draws, what it is scored on, and
    its cadence. ``pieces``: the ids of the training pieces the sampler draws from when they are
    a subset of the split (adaptation runs), else None."""

    data: PreparedData
    eval_data: PreparedData
    schedule: Pacing
    sampler: WindowSampler
    held_out: dict[str, HeldOut]
    cadence: Cadence
    pieces: list[str] | None = None

    @property
    def stage_names(self) -> tuple[str, ...]:
        return self.schedule.stages.names

    @property
    def total_steps(self) -> int:
        return self.schedule.total_steps


def prepared_for(experiment: Experiment, arm_name: str | None = None, show_progress: bool = True) -> PreparedData:
    """The prepared data of the experiment's curriculum (or an arm's own), built if needed."""
    from curricmusic.data.prepare import CACHE_WAIT_S, prepare
    from curricmusic.data.summary import default_prepared_dir

    config = experiment.config
    curriculum = experiment.arm_curricula[arm_name] if arm_name else experiment.curriculum
    if curriculum is experiment.curriculum and config.prepared is not None:
        folder = config.prepared
    else:
        folder = default_prepared_dir(curriculum)
    return prepare(curriculum, folder, show_progress=show_progress, source=experiment.source, wait_s=CACHE_WAIT_S).data


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
    cadence = Cadence.of(experiment.config.train)
    return RunPlan(data, eval_data, schedule, sampler, heldout_sets(experiment, eval_data, "val"), cadence)


def style_prepared(experiment: Experiment, show_progress: bool = True) -> PreparedData:
    """The ``[adapt]`` style prepared (built if needed) with the experiment's tokenizer, checked
    to hold enough training pieces for the largest shot size and held-out pieces to score."""
    from curricmusic.data.prepare import CACHE_WAIT_S, prepare
    from curricmusic.data.summary import default_prepared_dir

    adapt, curriculum = experiment.config.adapt, experiment.adapt_curriculum
    if adapt is None or curriculum is None:
        raise UserError(f"{experiment.source}: no [adapt] section")
    data = prepare(
        curriculum, default_prepared_dir(curriculum), show_progress=show_progress, source=experiment.source, wait_s=CACHE_WAIT_S
    ).data
    stage = adapt.style.name
    counts = {split: len(data.pieces(stage, split)) for split in ("train", "val", "test")}
    if counts["train"] < adapt.shots[-1]:
        raise UserError(
            f"{experiment.source}: adapt.shots: {adapt.shots[-1]} pieces asked for, but the style's training split "
            f"holds {counts['train']} ({sum(counts.values())} usable pieces in all); lower the shots or raise style.limit"
        )
    for split in ("val", "test"):
        if not counts[split]:
            raise UserError(
                f"{experiment.source}: adapt.style: its {split} split is empty ({counts['train']} training pieces); "
                "give the style more pieces (style.limit) so that every split holds some"
            )
    return data


def plan_adaptation(experiment: Experiment, seed: int, shots: int, show_progress: bool = True) -> RunPlan:
    """Data, schedule, sampler and validation windows of an adaptation run: the style's
    ``shots``-piece subset of ``seed`` (nested, the same for every model of the seed), scored on
    every token of the style's validation split."""
    adapt = experiment.config.adapt
    data = style_prepared(experiment, show_progress=show_progress)
    assert adapt is not None  # style_prepared checked it
    stage, train = adapt.style.name, experiment.config.train
    keep = shot_subset(len(data.pieces(stage, "train")), shots, seed)
    context = ScheduleContext(
        stage_names=(stage,),
        target=stage,
        seed=seed,
        total_steps=adapt.total_steps(train.tokens_per_step),
        batch_size=train.batch_size,
        seq_len=train.seq_len,
    )
    tokens = np.diff(data.offsets(stage, "train"))[keep]
    arm = ArmConfig(name=f"adapt-{shots}", pacing="random", stages=[stage])
    schedule = build_schedule(arm, context, {stage: np.zeros(keep.shape[0])}, {stage: tokens})
    sampler = WindowSampler(data, [stage], train.seq_len, pieces=[keep])
    pieces = [data.pieces(stage, "train")[int(i)]["id"] for i in keep]
    return RunPlan(data, data, schedule, sampler, heldout_sets(experiment, data, "val"), Cadence.of(adapt), pieces)


def build_model(experiment: Experiment, vocab_size: int, seed: int, micro_batch: int | None = None) -> MusicTransformer:
    """The model of the experiment, with the same initial weights for every arm of a seed; a
    training step of ``micro_batch`` windows (default the experiment's) is checked to fit first."""
    return seeded_model(experiment.config, vocab_size, seed, experiment.source, micro_batch)


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
