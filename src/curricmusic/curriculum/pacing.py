"""Curriculum schedules: which data each training step draws from, as a pure function of the step.

Every arm of an experiment is a :class:`Schedule`. At step ``t`` it gives a :class:`Mixture`:
sampling weights over the arm's stages, and for each stage how many of its pieces are eligible
(a prefix of the stage's pieces in the arm's piece order). The batch sampler then draws windows
uniformly over the eligible tokens of each stage.

Pacings (``ArmConfig.pacing``):

- ``fixed``: stage i for a configured number of steps, tokens or share of the budget; the last
  stage runs to the end of the budget.
- ``competence`` (Platanios et al. 2019): the model may see the easiest fraction c(t) of all
  pieces, with ``sqrt``: c(t) = min(1, sqrt(t (1 - c0^2) / T + c0^2)) or ``linear``:
  c(t) = min(1, t (1 - c0) / T + c0); pieces are ranked by stage, then difficulty score, across
  stage boundaries, and drawn uniformly among the eligible ones (windows uniform in a piece).
- ``plateau``: stay on a stage until its validation loss has not improved by a relative
  ``min_delta`` for ``patience`` evaluations (or ``max_stage_fraction`` of the budget passed).
- ``random``: an IID mixture of every stage's data in proportion to its size (baseline).
- ``target-only``: only the target stage (baseline).

``order`` turns a pacing into a baseline: ``reverse`` (anti-curriculum: stages and pieces
hardest first) and ``shuffled`` (random-pacing: same pacing, a seeded random order).
``replay`` keeps a share of each batch on earlier stages after an advance (fixed, plateau).

The only mutable state is the plateau's bookkeeping, a small dict saved in checkpoints;
:meth:`Schedule.update` returns a new dict and never changes the one it is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from curricmusic.config import ArmConfig

__all__ = [
    "competence",
    "fixed_boundaries",
    "stage_at",
    "replay_weights",
    "piece_ranks",
    "Mixture",
    "StageData",
    "Schedule",
    "arm_stage_order",
    "build_schedule",
]


def competence(step: int, total: int, c0: float, form: str = "sqrt") -> float:
    """Platanios et al. (2019) competence c(t) in [c0, 1]; reaches 1 at ``step >= total``."""
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
    """Global rank of every piece (0 = first seen) for competence pacing, per stage.

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


@dataclass(frozen=True)
class Mixture:
    """What one step samples: stage weights ``(K,)`` summing to 1, and eligible piece ranks.

    A piece of stage k is eligible when its global rank is below ``rank_limit`` (all pieces when
    ``rank_limit`` is None). Under competence pacing (``rank_limit`` set) eligible pieces are drawn
    uniformly, as Platanios et al. sample examples; otherwise in proportion to their tokens, so a
    stage's windows are uniform over its tokens.
    """

    weights: np.ndarray
    rank_limit: int | None = None

    @property
    def uniform_pieces(self) -> bool:
        return self.rank_limit is not None


@dataclass(frozen=True)
class StageData:
    """What a schedule needs to know about the data of the arm's stages (in the arm's order)."""

    names: tuple[str, ...]
    tokens: np.ndarray  # (K,) training tokens per stage
    ranks: tuple[np.ndarray, ...]  # per stage: global piece ranks (competence order)

    def eligible_pieces(self, rank_limit: int) -> np.ndarray:
        """How many pieces of each stage ``(K,)`` rank below ``rank_limit``."""
        return np.array([float(np.sum(r < rank_limit)) for r in self.ranks])


class Schedule:
    """The pacing of one arm over ``total_steps`` steps. Pure apart from the plateau state dict."""

    def __init__(
        self,
        arm: ArmConfig,
        stages: StageData,
        total_steps: int,
        tokens_per_step: int,
        target_index: int,
    ) -> None:
        self.arm = arm
        self.stages = stages
        self.total_steps = int(total_steps)
        self.target_index = int(target_index)
        k = len(stages.names)
        if arm.pacing == "fixed":
            self.boundaries = fixed_boundaries(
                k,
                self.total_steps,
                fractions=arm.stage_fractions,
                steps=arm.stage_steps,
                tokens=arm.stage_tokens,
                tokens_per_step=tokens_per_step,
            )
        self.competence_steps = max(1, int(round(arm.competence_fraction * self.total_steps)))
        self.max_stage_steps = max(1, int(round(arm.max_stage_fraction * self.total_steps)))
        self.n_pieces = sum(r.shape[0] for r in stages.ranks)

    # ---- state -----------------------------------------------------------------------------
    def initial_state(self) -> dict:
        """The plateau bookkeeping (other pacings carry it unused)."""
        return {"stage": 0, "best": None, "bad_evals": 0, "stage_start": 0}

    def update(self, step: int, state: Mapping, val_losses: Mapping[str, float] | None = None) -> dict:
        """The state after ``step``: a plateau advance when patience runs out or time is up."""
        new = dict(state)
        if self.arm.pacing != "plateau" or new["stage"] >= len(self.stages.names) - 1:
            return new
        name = self.stages.names[new["stage"]]
        loss = None if val_losses is None else val_losses.get(name)
        if loss is not None and math.isfinite(loss):
            if new["best"] is None or loss < new["best"] * (1.0 - self.arm.min_delta):
                new["best"], new["bad_evals"] = float(loss), 0
            else:
                new["bad_evals"] += 1
        if new["bad_evals"] >= self.arm.patience or step + 1 - new["stage_start"] >= self.max_stage_steps:
            new = {"stage": new["stage"] + 1, "best": None, "bad_evals": 0, "stage_start": step + 1}
        return new

    # ---- the mixture -----------------------------------------------------------------------
    def current_stage(self, step: int, state: Mapping) -> int:
        """Index (in the arm's stage order) of the stage being learned; the target for baselines."""
        pacing = self.arm.pacing
        if pacing == "fixed":
            return stage_at(step, self.boundaries)
        if pacing == "plateau":
            return int(state["stage"])
        if pacing == "competence":
            limit = self.rank_limit(step)
            latest = [i for i, r in enumerate(self.stages.ranks) if r.size and r.min() < limit]
            return max(latest) if latest else 0
        return self.target_index

    def rank_limit(self, step: int) -> int:
        c = competence(step, self.competence_steps, self.arm.c0, self.arm.competence)
        return max(1, math.ceil(c * self.n_pieces - 1e-9))

    def mixture(self, step: int, state: Mapping) -> Mixture:
        sizes = self.stages.tokens.astype(np.float64)
        pacing = self.arm.pacing
        if pacing == "random":
            weights = sizes / sizes.sum()
            return Mixture(weights)
        if pacing == "target-only":
            weights = np.zeros_like(sizes)
            weights[self.target_index] = 1.0
            return Mixture(weights)
        if pacing == "competence":
            limit = self.rank_limit(step)
            eligible = self.stages.eligible_pieces(limit)  # pieces are drawn uniformly
            return Mixture(eligible / eligible.sum(), rank_limit=limit)
        current = self.current_stage(step, state)
        return Mixture(replay_weights(current, sizes, self.arm.replay))


def arm_stage_order(arm: ArmConfig, stage_names: Sequence[str], target: str, seed: int) -> list[str]:
    """The stages an arm trains on, in the order it meets them.

    ``target-only`` uses the target stage alone; otherwise the arm's ``stages`` (default: all),
    reversed for ``order = "reverse"`` and permuted (seeded) for ``order = "shuffled"`` under
    stage pacings. Competence keeps curriculum order here: its order lives in the piece ranks.
    """
    if arm.pacing == "target-only":
        return [target]
    names = list(arm.stages) if arm.stages is not None else list(stage_names)
    if arm.pacing in ("fixed", "plateau"):
        if arm.order == "reverse":
            names = names[::-1]
        elif arm.order == "shuffled":
            names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    return names


def build_schedule(
    arm: ArmConfig,
    stage_names: Sequence[str],
    stage_difficulties: Sequence[np.ndarray],
    piece_tokens: Sequence[np.ndarray],
    target: str,
    total_steps: int,
    tokens_per_step: int,
    seed: int,
) -> Schedule:
    """The schedule of ``arm`` over stages already put in the arm's order by :func:`arm_stage_order`.

    ``stage_difficulties`` and ``piece_tokens`` give, per stage, each training piece's difficulty
    and token count in storage order (ascending difficulty).
    """
    ranks = piece_ranks(stage_difficulties, arm.order if arm.pacing == "competence" else "curriculum", seed)
    stages = StageData(
        names=tuple(stage_names),
        tokens=np.array([float(np.sum(t)) for t in piece_tokens]),
        ranks=tuple(ranks),
    )
    target_index = list(stage_names).index(target) if target in stage_names else len(stage_names) - 1
    return Schedule(arm, stages, total_steps, tokens_per_step, target_index)
