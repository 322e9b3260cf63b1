"""What every pacing shares: the mixture a step samples, the arm's stage data, the base class.

A pacing is a pure function of the step and a small state dict (kept in checkpoints): at step
``t`` it gives a :class:`Mixture`, the share of the batch each of the arm's stages gets and which
of its pieces are eligible. :func:`~curricmusic.curriculum.allocation.allocate` turns the shares
into whole windows per stage, and the sampler draws each stage's windows uniformly over the
tokens of its eligible pieces (packed back to back in rank order).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from curricmusic.config import ArmConfig
from curricmusic.config.arms import PacingOptions

__all__ = [
    "Mixture",
    "StageData",
    "ScheduleContext",
    "Pacing",
    "competence",
    "fixed_boundaries",
    "stage_at",
    "replay_weights",
    "count_plateau",
    "piece_ranks",
    "ordered_stages",
]


@dataclass(frozen=True)
class Mixture:
    """What one step samples.

    ``weights`` ``(K,)`` sum to 1: the share of the batch's windows on each stage. A piece is
    eligible when its global rank is below ``rank_limit`` (every piece when None); windows are
    uniform over the eligible tokens of a stage. ``seq_len`` sets this step's window length (None:
    the run's ``train.seq_len``), the seam for sequence-length warm-up.
    """

    weights: np.ndarray
    rank_limit: int | None = None
    seq_len: int | None = None


@dataclass(frozen=True)
class StageData:
    """The training pieces of the arm's stages, in the arm's stage order.

    ``piece_tokens[k]`` and ``ranks[k]`` give each piece of stage k (in storage order, ascending
    difficulty) its token count and its global rank (0 = first seen under competence pacing).
    """

    names: tuple[str, ...]
    piece_tokens: tuple[np.ndarray, ...]
    ranks: tuple[np.ndarray, ...]

    @property
    def tokens(self) -> np.ndarray:
        """Training tokens per stage ``(K,)`` float64."""
        return np.array([float(np.sum(t)) for t in self.piece_tokens])

    @property
    def n_pieces(self) -> int:
        return sum(int(r.shape[0]) for r in self.ranks)

    def eligible_tokens(self, rank_limit: int) -> np.ndarray:
        """Tokens of the pieces of each stage ``(K,)`` that rank below ``rank_limit``."""
        return np.array([float(np.sum(t[r < rank_limit])) for t, r in zip(self.piece_tokens, self.ranks, strict=True)])


@dataclass(frozen=True)
class ScheduleContext:
    """What a pacing needs to know beyond its arm: the curriculum, the budget, a matched arm.

    ``stage_names`` are the curriculum's stages in its order; ``matched_windows`` the windows per
    stage a matched arm draws over its whole run (arms with ``match``), else None.
    """

    stage_names: tuple[str, ...]
    target: str
    seed: int
    total_steps: int
    batch_size: int
    seq_len: int
    matched_windows: Mapping[str, int] | None = None

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len


class Pacing:
    """Base of every pacing: the schedule of one arm, pure apart from the state dict.

    A subclass names the options model it implements (``options_model``, a model of
    :data:`curricmusic.config.arms.ARM_OPTIONS`: the one registry of pacing names) and is thereby
    that pacing's behaviour. Subclasses set ``mixture`` (and, when they have them,
    ``initial_state`` / ``update``, ``current_stage``, ``measured``, ``record``); class methods say
    which stages the arm trains on, in which order its pieces rank and how many steps it runs.
    """

    options_model: ClassVar[type[PacingOptions]]
    #: options model -> the class that implements it (filled as subclasses are defined)
    behaviours: ClassVar[dict[type[PacingOptions], type[Pacing]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("options_model")
        if model is not None:
            if model in Pacing.behaviours:
                raise TypeError(f"{model.__name__} is implemented twice: {Pacing.behaviours[model].__name__}, {cls.__name__}")
            Pacing.behaviours[model] = cls

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        self.arm = arm
        self.options = arm.options
        self.stages = stages
        self.context = context
        self.total_steps = int(self.steps(arm, context))
        names = list(stages.names)
        self.target_index = names.index(context.target) if context.target in names else len(names) - 1

    # ---- class-level decisions, made before the stage data is gathered ----------------------
    @classmethod
    def stage_order(cls, arm: ArmConfig, context: ScheduleContext) -> list[str]:
        """The stages the arm trains on, in the order it meets them (default: its ``stages``)."""
        return list(arm.stages) if arm.stages is not None else list(context.stage_names)

    @classmethod
    def piece_order(cls, arm: ArmConfig) -> str:
        """How pieces rank: ``curriculum`` (stage, then difficulty), ``reverse`` or ``shuffled``."""
        return "curriculum"

    @classmethod
    def steps(cls, arm: ArmConfig, context: ScheduleContext) -> int:
        """Optimizer steps of the arm: the experiment's budget unless the pacing says otherwise."""
        return context.total_steps

    # ---- the schedule -------------------------------------------------------------------------
    def initial_state(self) -> dict:
        return {}

    def update(
        self,
        step: int,
        state: Mapping,
        val_losses: Mapping[str, float] | None = None,
        measures: Mapping[str, Mapping[str, float]] | None = None,
    ) -> dict:
        """The state after ``step`` (a new dict; the one given is never changed). At evaluation
        steps ``val_losses`` holds each stage's validation loss and ``measures`` what
        :meth:`measured` asked for (``{"key_share": {stage: share}}``); else both are None."""
        return dict(state)

    def measured(self) -> dict[str, tuple[str, ...]]:
        """What the run must measure at each evaluation for this schedule, beyond validation
        losses: ``{"key_share": (stage, ...)}``; none by default."""
        return {}

    def record(self, state: Mapping) -> dict[str, Any] | None:
        """What the run records about its schedule in ``run.json`` (None: nothing)."""
        return None

    def mixture(self, step: int, state: Mapping) -> Mixture:
        raise NotImplementedError

    def current_stage(self, step: int, state: Mapping) -> int:
        """Index (in the arm's stage order) of the stage being learned; the target for baselines."""
        return self.target_index

    def phase(self, step: int, state: Mapping) -> tuple[int, bool]:
        """``(stage being learned, whether the run is in its end phase)``: a stage boundary lies
        between two steps whose phases differ. Only ``mastery`` has an end phase; one that draws
        several stages (``end = "pool"`` or ``"matched"``) has no single stage and says -1."""
        return (self.current_stage(step, state), False)


# ---- pure helpers shared by pacings ------------------------------------------------------------


def competence(step: int, total: int, c0: float, form: str = "sqrt") -> float:
    """Platanios et al. (2019) competence c(t) in [c0, 1]; reaches 1 at ``step >= total``.

    ``sqrt``: c(t) = min(1, sqrt(t (1 - c0^2) / T + c0^2)); ``linear``: c(t) = min(1, t (1 - c0) / T + c0).
    """
    if total <= 0:
        return 1.0
    t = min(max(step, 0), total)
    if form == "sqrt":
        value = math.sqrt(t * (1.0 - c0 * c0) / total + c0 * c0)
    elif form == "linear":
        value = t * (1.0 - c0) / total + c0
    else:
        raise ValueError(f"unknown competence form {form!r}; expected 'sqrt' or 'linear'")
    return 1.0 if t >= total else min(1.0, value)


def fixed_boundaries(
    n_stages: int,
    total_steps: int,
    *,
    fractions: Sequence[float] | None = None,
    steps: Sequence[int] | None = None,
    tokens: Sequence[int] | None = None,
    tokens_per_step: int = 1,
) -> np.ndarray:
    """Step at which each stage ends, ``(n_stages,)`` int64; the last one is ``total_steps``.

    Exactly one of ``fractions`` (share of the budget), ``steps`` or ``tokens`` (converted with
    ceil(tokens / tokens_per_step)) may be given, with one value per stage or one fewer (the last
    stage takes the rest). With none, stages share the budget equally.
    """
    if steps is not None:
        lengths = [int(s) for s in steps]
    elif tokens is not None:
        lengths = [-(-int(t) // tokens_per_step) for t in tokens]
    elif fractions is not None:
        lengths = [int(round(f * total_steps)) for f in fractions]
    else:
        lengths = [total_steps // n_stages] * (n_stages - 1)
    lengths = lengths[: n_stages - 1]
    ends = np.minimum(np.cumsum(np.asarray(lengths, dtype=np.int64)), total_steps)
    return np.concatenate([ends, [total_steps]]).astype(np.int64)


def stage_at(step: int, boundaries: np.ndarray) -> int:
    """Index of the stage a fixed schedule trains at ``step`` (0-based steps)."""
    return int(min(np.searchsorted(boundaries, step, side="right"), boundaries.shape[0] - 1))


def count_plateau(state: dict, loss: float | None, min_delta: float) -> None:
    """Update ``state["best"]`` and ``state["bad_evals"]`` in place with a stage's validation
    loss: a loss below ``best * (1 - min_delta)`` is the new best and resets the count, any other
    finite loss counts one evaluation without improvement; a missing or non-finite loss counts
    nothing. The plateau rule that ``plateau`` and ``mastery`` share."""
    if loss is None or not math.isfinite(loss):
        return
    if state["best"] is None or loss < state["best"] * (1.0 - min_delta):
        state["best"], state["bad_evals"] = float(loss), 0
    else:
        state["bad_evals"] = int(state["bad_evals"]) + 1


def replay_weights(current: int, sizes: np.ndarray, replay: float) -> np.ndarray:
    """``1 - replay`` on the current stage, ``replay`` over earlier stages in proportion to size."""
    weights = np.zeros(sizes.shape[0], dtype=np.float64)
    earlier = sizes[:current].astype(np.float64)
    if current == 0 or replay <= 0 or earlier.sum() <= 0:
        weights[current] = 1.0
        return weights
    weights[:current] = replay * earlier / earlier.sum()
    weights[current] = 1.0 - replay
    return weights


def piece_ranks(difficulties: Sequence[np.ndarray], order: str, seed: int) -> list[np.ndarray]:
    """Global rank of every piece (0 = first seen), per stage in storage order.

    ``curriculum``: stage by stage, easiest first inside a stage (pieces are stored in ascending
    difficulty); ``reverse``: the exact reverse; ``shuffled``: a seeded random order.
    """
    counts = [d.shape[0] for d in difficulties]
    total = sum(counts)
    if order == "curriculum":
        flat = np.arange(total)
    elif order == "reverse":
        flat = np.arange(total)[::-1].copy()
    elif order == "shuffled":
        flat = np.random.default_rng(seed).permutation(total)
    else:
        raise ValueError(f"unknown order {order!r}")
    return np.split(flat, np.cumsum(counts)[:-1])


def ordered_stages(names: Sequence[str], order: str, seed: int) -> list[str]:
    """Stages in curriculum order, reversed (``reverse``) or seeded-permuted (``shuffled``)."""
    names = list(names)
    if order == "reverse":
        return names[::-1]
    if order == "shuffled":
        return [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    return names
