"""Arms: one way of ordering the data each. The pacing's own options are typed, one model each.

An arm in an experiment file is flat::

    [[arms]]
    name = "pedagogy"
    pacing = "fixed"                  # a name of ARM_OPTIONS
    stage_fractions = [0.1, 0.1, 0.15]
    replay = 0.1

``name``, ``pacing``, ``curriculum``, ``stages`` and ``lr`` belong to every arm; every other key is
an option of the arm's pacing, checked against the model registered for it in
:data:`ARM_OPTIONS` (one line per mistake, naming the key).

:data:`ARM_OPTIONS` is the one registry of pacings. It lives here, in the config layer, because
an experiment file must be validated without importing any behaviour (config sits below
curriculum): the names users type, each pacing's options and its traits (:class:`PacingOptions`:
adaptive, baseline, order control, ...) are all here, and no other layer tests a pacing's name.
The behaviour of each pacing is a class in :mod:`curricmusic.curriculum.pacing` that names the
options model it implements; its ``PACINGS`` is derived from this registry (and refuses to
import when a name has no behaviour). A new pacing is its options model plus one line in
``ARM_OPTIONS``, and its behaviour class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from curricmusic.common.frozen import FrozenModel

__all__ = [
    "ARM_OPTIONS",
    "PACING_NAMES",
    "ArmConfig",
    "PacingOptions",
    "FixedOptions",
    "CompetenceOptions",
    "GrowingRandomOptions",
    "PlateauOptions",
    "RandomOptions",
    "TargetOnlyOptions",
    "RandomMatchedOptions",
    "SeqWarmupOptions",
    "PrePhaseOptions",
    "MasteryOptions",
    "Order",
]

Order = Literal["curriculum", "reverse", "shuffled"]


class PacingOptions(FrozenModel):
    """Base of each pacing's options, and what the pacing *is* for the rest of the experiment.

    No layer asks for a pacing by its name: it reads these class-level traits instead.

    - ``stages_from``: None when the arm may name its ``stages``; else where it takes them from
      (an arm with ``match`` also trains on that arm's curriculum);
    - ``adaptive``: its stage shares depend on what the run measures (validation losses, key
      share), so they are known only after its run: an arm that matches it reads them from the
      matched arm's finished run of the same seed;
    - ``matchable``: another arm may match its per-stage token counts (False for arms that match
      another arm themselves);
    - ``baseline``: a random-order baseline; every other arm is compared with it;
    - ``order_control``: random order with exactly the per-stage tokens of the arm it matches,
      so that pair differs in order alone and is compared too;
    - ``target_only``: trains on the target stage alone.
    """

    stages_from: ClassVar[str | None] = None
    adaptive: ClassVar[bool] = False
    matchable: ClassVar[bool] = True
    baseline: ClassVar[bool] = False
    order_control: ClassVar[bool] = False
    target_only: ClassVar[bool] = False

    def check_train(self, seq_len: int, total_steps: int) -> str | None:
        """A problem of these options with the experiment's ``[train]`` (one line naming the
        option), or None; the experiment checks every arm when it loads."""
        return None

    def check_stages(self, stages: list[str], target: str, tokens: int) -> str | None:
        """A problem of these options with the arm's ``stages`` (in its order), the curriculum's
        ``target`` stage and the budget of ``tokens`` (one line naming the option), or None;
        checked when the experiment's curricula are loaded."""
        return None

    @classmethod
    def traits(cls) -> dict[str, Any]:
        """The class-level traits above, as a plain dict (written to results.json per arm)."""
        names = ("stages_from", "adaptive", "matchable", "baseline", "order_control", "target_only")
        return {name: getattr(cls, name) for name in names}


class _Replay(PacingOptions):
    replay: float = Field(0.0, ge=0.0, lt=1.0, description="share of each batch on earlier stages after an advance")


class FixedOptions(_Replay):
    """Stage i for a share of the budget (exactly one of fractions, steps or tokens; default equal)."""

    order: Order = "curriculum"
    stage_fractions: list[float] | None = None
    stage_steps: list[int] | None = None
    stage_tokens: list[int] | None = None

    @model_validator(mode="after")
    def _one_budget(self) -> FixedOptions:
        given = [k for k in ("stage_fractions", "stage_steps", "stage_tokens") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of stage_fractions, stage_steps, stage_tokens (got {', '.join(given)})")
        for values in (self.stage_fractions, self.stage_steps, self.stage_tokens):
            if values is not None and any(v < 0 for v in values):
                raise ValueError("stage budgets must be >= 0")
        if self.stage_fractions is not None and sum(self.stage_fractions) > 1 + 1e-9:
            raise ValueError(f"stage_fractions sum to {sum(self.stage_fractions):g}; expected at most 1")
        return self

    @property
    def stage_budgets(self) -> list[float] | list[int] | None:
        return self.stage_fractions or self.stage_steps or self.stage_tokens

    def check_stages(self, stages: list[str], target: str, tokens: int) -> str | None:
        budgets = self.stage_budgets
        if budgets is not None and len(budgets) not in (len(stages), len(stages) - 1):
            return (
                f"{len(budgets)} stage budgets for {len(stages)} stages; "
                "give one per stage (or one fewer: the last stage takes the rest)"
            )
        return None


class _Growth(PacingOptions):
    competence: Literal["sqrt", "linear"] = "sqrt"
    c0: float = Field(0.05, gt=0.0, le=1.0)
    competence_fraction: float = Field(0.8, gt=0.0, le=1.0, description="T as a share of the steps")


class CompetenceOptions(_Growth):
    """Platanios et al. (2019): the easiest share c(t) of the pieces is eligible at step t."""

    order: Order = "curriculum"


class GrowingRandomOptions(_Growth):
    """Wu, Dyer & Neyshabur (2021)'s control: the data set grows as ``competence``'s does, c(t)
    of all pieces at step t, but the pieces join in a seeded random order (no difficulty)."""


class PlateauOptions(_Replay):
    """Stay on a stage until its validation loss stops improving (or its time is up)."""

    adaptive: ClassVar[bool] = True  # its stage shares depend on validation losses
    order: Order = "curriculum"
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.01, ge=0.0, lt=1.0)
    max_stage_fraction: float = Field(0.5, gt=0.0, le=1.0)


Criterion = Literal["plateau", "key_share"]


def _per_stage(value: Any, n: int, name: str) -> str | None:
    """None when ``value`` is one value or a list of ``n`` (one per basics stage), else the problem."""
    if isinstance(value, list) and len(value) != n:
        return f"{name}: {len(value)} values for {n} basics stage(s); give one, or one per basics stage"
    return None


class MasteryOptions(_Replay):
    """Stay on each basics stage until a stated mastery criterion holds (or its token cap is
    reached), then the end phase. The basics are the arm's stages other than the target, in order.

    Criteria, checked at every evaluation on the stage's held-out pieces: ``plateau``, its
    validation loss has not improved by a relative ``min_delta`` for ``patience`` evaluations;
    ``key_share``, the share of the model's next-pitch probability on the key's seven diatonic
    pitch classes reaches ``key_share``. End phases: ``target``, the target stage (with
    ``replay``); ``pool``, every stage of the arm in proportion to its tokens (basics only: the
    basics mixed); ``matched``, every stage with the whole-run shares of this same schedule under
    ``end = "target"``: what ``random-matched`` to that arm draws, so this arm ends mixed."""

    adaptive: ClassVar[bool] = True  # its stage boundaries depend on what the run measures
    criterion: Criterion | list[Criterion] = "plateau"
    key_share: float | list[float] = Field(0.75, description="key-share threshold (one, or one per basics stage)")
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.01, ge=0.0, lt=1.0)
    cap_tokens: int | list[int] | None = Field(None, description="most real tokens spent on a basics stage")
    cap_fraction: float = Field(0.25, gt=0.0, lt=1.0, description="the cap as a share of the budget (without cap_tokens)")
    end: Literal["target", "pool", "matched"] = "target"

    @model_validator(mode="after")
    def _values(self) -> MasteryOptions:
        shares = self.key_share if isinstance(self.key_share, list) else [self.key_share]
        if not shares or any(not 0.0 < s <= 1.0 for s in shares):
            raise ValueError(f"key_share must be in (0, 1] (got {self.key_share})")
        caps = self.cap_tokens if isinstance(self.cap_tokens, list) else [self.cap_tokens] if self.cap_tokens else []
        if any(c < 1 for c in caps) or (isinstance(self.cap_tokens, list) and not caps):
            raise ValueError(f"cap_tokens must be positive (got {self.cap_tokens})")
        if isinstance(self.criterion, list) and not self.criterion:
            raise ValueError("criterion: give one criterion, or one per basics stage")
        return self

    def basics(self, stages: list[str], target: str) -> list[str]:
        """The stages to master: the arm's stages other than the target, in order."""
        return [s for s in stages if s != target]

    def check_stages(self, stages: list[str], target: str, tokens: int) -> str | None:
        basics = self.basics(stages, target)
        if not basics:
            return "pacing 'mastery' needs at least one stage other than the target to master"
        if self.end in ("target", "matched") and target not in stages:
            return f"end: {self.end!r} needs the target stage {target!r} among the arm's stages; use end = 'pool'"
        for name in ("criterion", "key_share", "cap_tokens"):
            problem = _per_stage(getattr(self, name), len(basics), name)
            if problem:
                return problem
        caps = self.caps(len(basics), tokens)
        if sum(caps) >= tokens:
            return f"cap_tokens: the caps add up to {sum(caps):,} of a budget of {tokens:,} tokens; leave room for the end phase"
        return None

    def caps(self, n_basics: int, tokens: int) -> list[int]:
        """The token cap of each basics stage."""
        if self.cap_tokens is None:
            return [int(round(self.cap_fraction * tokens))] * n_basics
        return list(self.cap_tokens) if isinstance(self.cap_tokens, list) else [self.cap_tokens] * n_basics

    def criteria(self, n_basics: int) -> list[tuple[str, float]]:
        """``(criterion, key-share threshold)`` of each basics stage."""
        kinds = self.criterion if isinstance(self.criterion, list) else [self.criterion] * n_basics
        shares = self.key_share if isinstance(self.key_share, list) else [self.key_share] * n_basics
        return list(zip(kinds, shares, strict=True))


class RandomOptions(PacingOptions):
    """Every step the same mix of all stages, in proportion to their tokens (the pool's mix)."""

    baseline: ClassVar[bool] = True


class TargetOnlyOptions(PacingOptions):
    """The target stage alone: for the whole budget, or (``match``) for the target tokens of an arm."""

    stages_from: ClassVar[str | None] = "the target stage"
    matchable: ClassVar[bool] = False
    target_only: ClassVar[bool] = True
    match: str | None = Field(None, description="train only as many tokens as this arm's target-stage tokens")


class RandomMatchedOptions(PacingOptions):
    """Random order with each stage's token share equal to a named arm's whole-run share."""

    stages_from: ClassVar[str | None] = "the arm it matches"
    matchable: ClassVar[bool] = False
    baseline: ClassVar[bool] = True
    order_control: ClassVar[bool] = True
    match: str = Field(description="the arm whose per-stage token counts this arm takes")


class SeqWarmupOptions(PacingOptions):
    """Sequence-length warm-up (Li et al. 2022): the pool's mix, with windows that grow from
    ``start_len`` tokens to the full context over ``warmup_fraction`` of the steps. A step of
    shorter windows holds more of them (the same real tokens); lengths divide ``train.seq_len``."""

    start_len: int = Field(32, ge=1, description="window length at step 0 (a divisor of train.seq_len)")
    warmup_fraction: float = Field(0.25, gt=0.0, le=1.0, description="share of the steps the growth takes")

    def check_train(self, seq_len: int, total_steps: int) -> str | None:
        if self.start_len > seq_len or seq_len % self.start_len:
            return f"start_len: {self.start_len} does not divide train.seq_len {seq_len}; use a divisor of it"
        return None


class PrePhaseOptions(PacingOptions):
    """Pedagogy as a pre-phase: every stage but the target, mixed in proportion to their tokens,
    for ``pre_fraction`` of the budget; then the target stage alone."""

    pre_fraction: float = Field(0.35, gt=0.0, lt=1.0, description="share of the steps on the pedagogy mix")

    def check_train(self, seq_len: int, total_steps: int) -> str | None:
        steps = int(round(self.pre_fraction * total_steps))
        if not 0 < steps < total_steps:
            return f"pre_fraction: {self.pre_fraction:g} of {total_steps} steps leaves no step for one of the two phases"
        return None


# pacing name -> its options model (the behaviour: curricmusic.curriculum.pacing.PACINGS)
ARM_OPTIONS: dict[str, type[PacingOptions]] = {
    "fixed": FixedOptions,
    "competence": CompetenceOptions,
    "growing-random": GrowingRandomOptions,
    "plateau": PlateauOptions,
    "random": RandomOptions,
    "target-only": TargetOnlyOptions,
    "random-matched": RandomMatchedOptions,
    "seq-warmup": SeqWarmupOptions,
    "pre-phase": PrePhaseOptions,
    "mastery": MasteryOptions,
}
PACING_NAMES: tuple[str, ...] = tuple(ARM_OPTIONS)
PacingName = Literal[PACING_NAMES]  # type: ignore[valid-type]  # derived from the registry

_COMMON = ("name", "pacing", "curriculum", "stages", "lr")


def _option_error(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "options"
    if first["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against the documented keys)"
    if first["type"] == "missing":
        return f"{key}: required key is missing"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("value_error", "assertion_error") and "input" in first:
        message = f"{message} (got {repr(first['input'])[:60]})"
    return f"{key}: {message}" if first["loc"] else message


class ArmConfig(FrozenModel):
    """One way of ordering the data. Every option: docs/reference/experiment.md.

    ``options`` holds the pacing's own options (an instance of ``ARM_OPTIONS[pacing]``); in files
    and in ``model_dump`` they sit flat beside the common keys.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    pacing: PacingName
    curriculum: Path | None = None  # default: the experiment's curriculum
    stages: list[str] | None = None  # default: every stage of the curriculum, in its order
    lr: float | list[float] | None = Field(None, description="peak learning rate(s); default: train.lr")
    options: PacingOptions = Field(default_factory=RandomOptions)

    @model_validator(mode="before")
    @classmethod
    def _gather_options(cls, data: Any) -> Any:
        """Move the pacing's keys into ``options`` and validate them with the pacing's model."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = data.pop("options", None)
        options = dict(given.model_dump() if isinstance(given, PacingOptions) else given or {})
        known = {key for model in ARM_OPTIONS.values() for key in model.model_fields}
        # options of some pacing move into ``options``; unknown keys stay for pydantic to name
        options.update({key: data.pop(key) for key in list(data) if key not in _COMMON and key in known})
        model = ARM_OPTIONS.get(data.get("pacing")) if isinstance(data.get("pacing"), str) else None
        if model is None:  # the pacing's own error comes from its Literal
            data["options"] = RandomOptions()
            return data
        foreign = [key for key in options if key not in model.model_fields]
        if foreign:
            key = foreign[0]
            owners = [name for name, other in ARM_OPTIONS.items() if key in other.model_fields]
            raise ValueError(
                f"{key} is not an option of pacing {data['pacing']!r} (it belongs to {', '.join(owners)}); "
                f"options of {data['pacing']!r}: {', '.join(model.model_fields) or 'none'}"
            )
        if model.stages_from is not None and data.get("stages") is not None:
            raise ValueError(f"stages: pacing {data['pacing']!r} takes its stages from {model.stages_from}; remove stages")
        if options.get("match") is not None and data.get("curriculum") is not None:
            raise ValueError("curriculum: an arm with match trains on the matched arm's curriculum; remove curriculum")
        try:
            data["options"] = model.model_validate(options)
        except ValidationError as exc:
            raise ValueError(_option_error(exc)) from None
        return data

    @model_validator(mode="after")
    def _lr_values(self) -> ArmConfig:
        values = self.lr if isinstance(self.lr, list) else [self.lr] if self.lr is not None else []
        if any(v <= 0 for v in values) or (isinstance(self.lr, list) and not values):
            raise ValueError(f"lr must be a positive number or a non-empty list of them (got {self.lr})")
        if len(set(values)) != len(values):
            raise ValueError(f"lr values must be distinct (got {self.lr})")
        return self

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        out = handler(self)
        out.pop("options", None)
        out.update(self.options.model_dump(mode=info.mode))
        return out

    # ---- what other layers ask of an arm ------------------------------------------------------
    @property
    def order(self) -> str:
        """``curriculum``, ``reverse`` (anti-curriculum) or ``shuffled``; baselines: ``curriculum``."""
        return getattr(self.options, "order", "curriculum")

    @property
    def match(self) -> str | None:
        """The arm whose per-stage token counts this arm takes (random-matched, target-only)."""
        return getattr(self.options, "match", None)

    @property
    def replay(self) -> float:
        return getattr(self.options, "replay", 0.0)
