"""Everything a run needs before its first step: data, schedule, sampler, held-out sets, model.

:func:`plan_run` gathers the arm's data and schedule (with the matched arm's window counts for
arms with ``match``); :func:`plan_adaptation` the same for an adaptation run (the ``[adapt]``
style, restricted to a seed's few-shot subset); :func:`build_model` and :func:`make_optimizer`
give every arm of a seed the same initial weights and optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from curricmusic.common.errors import UserError
from curricmusic.config import AdaptSection, ArmConfig, Experiment, TrainSection, config_hash
from curricmusic.curriculum.heldout import HeldOut, heldout_windows, piece_subset
from curricmusic.curriculum.pacing import KEY_SHARE, Pacing, ScheduleContext, build_schedule
from curricmusic.curriculum.run_counts import window_counts
from curricmusic.curriculum.shots import shot_subset
from curricmusic.curriculum.windows import WindowSampler
from curricmusic.data.prepared import PreparedData
from curricmusic.model.initial import seeded_model
from curricmusic.model.transformer import MusicTransformer
from curricmusic.training.measures import KeyShareSet, key_share_sets

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
    "matched_run_windows",
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
    """An adaptation run: ``shots`` pieces of an ``[adapt]`` style (``style``: its name; None: the
    first) at peak learning rate ``lr`` (None: the section's only one), starting from the model in
    ``init`` (a run's ``model/`` folder, or a shared one: ``[adapt] init_from``), or from the
    seed's initial weights when None (from-scratch). ``label`` names the model: an arm,
    ``scratch`` or ``shared``."""

    shots: int
    init: Path | None
    label: str
    style: str | None = None
    lr: float | None = None


@dataclass
class RunPlan:
    """The data side of a run: where it reads, what each step draws, what it is scored on, and
    its cadence. ``pieces``: the ids of the training pieces the sampler draws from when they are
    a subset of the split (adaptation runs), else None.

    ``held_out`` is what in-training evaluations score (every validation token, or a seeded subset
    of pieces with ``[train] eval_pieces``), ``held_out_all`` what the last evaluation scores
    (every validation token); ``styles`` and ``styles_all`` the same for the ``[adapt]`` styles
    (``zero_shot``: their distance from the model over pretraining); ``key_share`` the held-out
    pieces with a key of each stage whose key share is measured at evaluations."""

    data: PreparedData
    eval_data: PreparedData
    schedule: Pacing
    sampler: WindowSampler
    held_out: dict[str, HeldOut]
    cadence: Cadence
    pieces: list[str] | None = None
    held_out_all: dict[str, HeldOut] | None = None
    styles: dict[str, HeldOut] = field(default_factory=dict)
    styles_all: dict[str, HeldOut] = field(default_factory=dict)
    key_share: dict[str, KeyShareSet] = field(default_factory=dict)
    train_tokens: int | None = None  # tokens of the training pieces it draws from (adaptation runs)

    @property
    def final_held_out(self) -> dict[str, HeldOut]:
        return self.held_out if self.held_out_all is None else self.held_out_all

    @property
    def final_styles(self) -> dict[str, HeldOut]:
        return self.styles_all or self.styles

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


def matched_run_windows(experiment: Experiment, arm_name: str, seed: int, run_dir: Path) -> dict[str, int]:
    """Windows per stage that the matched (adaptive) arm's finished run of ``seed`` in ``run_dir``
    drew over its whole run: its real tokens of each stage over ``seq_len``."""
    from curricmusic.common.run_folder import RUN_FILE, read_run

    config = experiment.config
    match = config.arm(arm_name).match
    path = Path(run_dir) / RUN_FILE
    what = f"arm {arm_name!r} matches {match!r}, whose tokens per stage are known only after its run"
    if not path.is_file():
        raise UserError(f"{run_dir}: no run here; {what}: train {match!r} (seed {seed}) first, or pass --match-run")
    info = read_run(run_dir)
    checks = {
        "status": (info.get("status"), "finished"),
        "arm": ((info.get("arm") or {}).get("name"), match),
        "seed": (info.get("seed"), seed),
        "experiment": (info.get("experiment_hash"), config_hash(config)),
    }
    for key, (found, expected) in checks.items():
        if found != expected:
            raise UserError(f"{run_dir}: {what}, but this run's {key} is {found!r}, not {expected!r}")
    seq_len = config.train.seq_len
    return {stage: int(round(int(n) / seq_len)) for stage, n in info["stage_tokens"].items()}


def schedule_for(
    experiment: Experiment, arm_name: str, data: PreparedData, seed: int, matched_run: Path | None = None
) -> Pacing:
    """The arm's schedule over ``data``; an arm with ``match`` first builds the matched arm's and
    counts the windows it draws of each stage over its whole run, or, when the matched arm is
    adaptive (its stage shares depend on what its run measured), reads them from its finished
    run of the same seed (``matched_run``)."""
    config = experiment.config
    arm = config.arm(arm_name)
    matched = None
    if arm.match is not None and config.arm(arm.match).options.adaptive:
        if matched_run is None:
            raise UserError(f"arm {arm_name!r} matches the adaptive arm {arm.match!r}: its finished run is needed (--match-run)")
        matched = matched_run_windows(experiment, arm_name, seed, matched_run)
    elif arm.match is not None:
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


def heldout_sets(
    experiment: Experiment, eval_data: PreparedData, split: str, limit: int | None = None
) -> dict[str, HeldOut]:
    """Every stage's ``split`` as strided windows (the same for every arm); empty splits left out.
    ``limit``: only a seeded subset of at most that many pieces per stage (every token of each)."""
    train = experiment.config.train
    sets = {}
    for stage in eval_data.stage_names:
        pieces = None if limit is None else piece_subset(len(eval_data.pieces(stage, split)), limit, stage)
        sets[stage] = heldout_windows(eval_data, stage, split, train.seq_len, train.stride, pieces)
    return {s: h for s, h in sets.items() if len(h)}


def _evaluation_sets(experiment: Experiment, eval_data: PreparedData, schedule: Pacing, show_progress: bool) -> dict:
    """What a pretraining run scores at its evaluations (see :class:`RunPlan`)."""
    config = experiment.config
    limit = config.train.eval_pieces
    sets: dict = {"held_out": heldout_sets(experiment, eval_data, "val", limit)}
    sets["held_out_all"] = heldout_sets(experiment, eval_data, "val") if limit is not None else None
    if config.adapt is not None and config.adapt.zero_shot:
        for style in config.adapt.styles:
            data = style_prepared(experiment, style.name, show_progress=show_progress)
            sets.setdefault("styles", {}).update(heldout_sets(experiment, data, "val", limit))
            if limit is not None:
                sets.setdefault("styles_all", {}).update(heldout_sets(experiment, data, "val"))
    required = schedule.measured().get(KEY_SHARE, ())
    measured = eval_data.stage_names if config.train.measure_key_share else required
    sets["key_share"] = key_share_sets(eval_data, measured, limit, required)
    return sets


def plan_run(
    experiment: Experiment, arm_name: str, seed: int, show_progress: bool = True, matched_run: Path | None = None
) -> RunPlan:
    """Data (prepared if needed), schedule, sampler and evaluation sets of one (arm, seed)."""
    eval_data = prepared_for(experiment, show_progress=show_progress)
    data = eval_data
    if experiment.arm_curricula[arm_name] is not experiment.curriculum:
        data = prepared_for(experiment, arm_name, show_progress=show_progress)
    if data.tokenizer_hash != eval_data.tokenizer_hash:
        raise UserError(f"{data.root}: prepared with another tokenizer than {eval_data.root}")
    schedule = schedule_for(experiment, arm_name, data, seed, matched_run)
    sampler = WindowSampler(data, schedule.stages.names, experiment.config.train.seq_len, ranks=schedule.stages.ranks)
    cadence = Cadence.of(experiment.config.train)
    sets = _evaluation_sets(experiment, eval_data, schedule, show_progress)
    return RunPlan(data, eval_data, schedule, sampler, cadence=cadence, **sets)


def style_prepared(experiment: Experiment, style: str | None = None, show_progress: bool = True) -> PreparedData:
    """An ``[adapt]`` style (``style``: its name; None: the first) prepared (built if needed) with
    the experiment's tokenizer, checked to hold enough training pieces for the largest shot size
    and held-out pieces to score."""
    from curricmusic.data.prepare import CACHE_WAIT_S, prepare
    from curricmusic.data.summary import default_prepared_dir

    adapt, curricula = experiment.config.adapt, experiment.adapt_curricula
    if adapt is None or not curricula:
        raise UserError(f"{experiment.source}: no [adapt] section")
    name = adapt.style.name if style is None else style
    curriculum = curricula[name]
    data = prepare(
        curriculum, default_prepared_dir(curriculum), show_progress=show_progress, source=experiment.source, wait_s=CACHE_WAIT_S
    ).data
    counts = {split: len(data.pieces(name, split)) for split in ("train", "val", "test")}
    if counts["train"] < adapt.shots[-1]:
        raise UserError(
            f"{experiment.source}: adapt.shots: {adapt.shots[-1]} pieces asked for, but the training split of style "
            f"{name!r} holds {counts['train']} ({sum(counts.values())} usable pieces in all); lower the shots or raise its limit"
        )
    for split in ("val", "test"):
        if not counts[split]:
            raise UserError(
                f"{experiment.source}: adapt style {name!r}: its {split} split is empty ({counts['train']} training pieces); "
                "give the style more pieces (its limit) so that every split holds some"
            )
    return data


def plan_adaptation(
    experiment: Experiment, seed: int, shots: int, show_progress: bool = True, style: str | None = None
) -> RunPlan:
    """Data, schedule, sampler and validation windows of an adaptation run: the style's
    ``shots``-piece subset of ``seed`` (nested, the same for every model of the seed), scored on
    every token of the style's validation split."""
    adapt = experiment.config.adapt
    data = style_prepared(experiment, style, show_progress=show_progress)
    assert adapt is not None  # style_prepared checked it
    stage, train = (style or adapt.style.name), experiment.config.train
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
    held_out = heldout_sets(experiment, data, "val")
    return RunPlan(data, data, schedule, sampler, held_out, Cadence.of(adapt), pieces, train_tokens=int(tokens.sum()))


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
