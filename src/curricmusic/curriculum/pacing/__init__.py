"""Pacings: one class per way of ordering the data.

The one registry of pacing names is :data:`curricmusic.config.arms.ARM_OPTIONS` (name -> options
model with the pacing's traits; it lives in config, which validates experiment files and sits
below this layer). Each class here names the options model it implements (``options_model``), and
``PACINGS`` (name -> class) is derived from that registry; importing this package fails when a
registered name has no class. A new pacing is its options model plus one line in
``ARM_OPTIONS``, and a :class:`Pacing` subclass here that names it.

- ``fixed``: stage i for a configured share of the budget (``order``: reverse = anti-curriculum);
- ``competence`` (Platanios et al. 2019): the easiest share c(t) of all pieces is eligible;
- ``plateau``: advance when a stage's validation loss stops improving;
- ``random``: the pool's token mix every step;
- ``target-only``: the target stage alone, at equal total tokens or (``match``) equal target tokens;
- ``random-matched``: random order with a named arm's per-stage token counts;
- ``seq-warmup`` (Li et al. 2022): the random mix, with windows growing to the full context;
- ``pre-phase``: every pedagogy stage mixed for a share of the budget, then the target alone;
- ``growing-random``: Wu, Dyer and Neyshabur's (2021) control, random order with a growing data
  set: ``competence``'s c(t) over a seeded random ranking of all pieces (the same schedule as
  ``competence`` with ``order = "shuffled"``). ``fixed`` with ``order = "shuffled"`` is a random
  *stage* order, each stage in turn: not their control;
- ``mastery``: each basics stage until a stated criterion says it is mastered (or its cap is
  spent), then the target, the basics mixed, or a matched mix.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from curricmusic.config import ARM_OPTIONS, ArmConfig
from curricmusic.curriculum.pacing.base import (
    Mixture,
    Pacing,
    ScheduleContext,
    StageData,
    competence,
    fixed_boundaries,
    piece_ranks,
    replay_weights,
    stage_at,
)
from curricmusic.curriculum.pacing.baselines import (
    RandomMatchedPacing,
    RandomPacing,
    TargetOnlyPacing,
)
from curricmusic.curriculum.pacing.competence_pacing import CompetencePacing, GrowingRandomPacing
from curricmusic.curriculum.pacing.fixed import FixedPacing
from curricmusic.curriculum.pacing.mastery import KEY_SHARE, MasteryPacing
from curricmusic.curriculum.pacing.plateau import PlateauPacing
from curricmusic.curriculum.pacing.pre_phase import PrePhasePacing
from curricmusic.curriculum.pacing.seq_warmup import SeqWarmupPacing, warmup_length

__all__ = [
    "PACINGS",
    "KEY_SHARE",
    "Pacing",
    "Mixture",
    "StageData",
    "ScheduleContext",
    "build_schedule",
    "competence",
    "fixed_boundaries",
    "piece_ranks",
    "replay_weights",
    "stage_at",
    "warmup_length",
    # the behaviours (imported here so that each registers the options model it implements)
    "FixedPacing",
    "CompetencePacing",
    "GrowingRandomPacing",
    "PlateauPacing",
    "RandomPacing",
    "TargetOnlyPacing",
    "RandomMatchedPacing",
    "SeqWarmupPacing",
    "PrePhasePacing",
    "MasteryPacing",
]


def _behaviours() -> dict[str, type[Pacing]]:
    """Each registered pacing name -> the class that implements its options model."""
    missing = [name for name, model in ARM_OPTIONS.items() if model not in Pacing.behaviours]
    if missing:
        raise ImportError(f"pacings {', '.join(missing)} are registered in ARM_OPTIONS but no Pacing class implements them")
    return {name: Pacing.behaviours[model] for name, model in ARM_OPTIONS.items()}


# pacing name -> behaviour, derived from the one registry (curricmusic.config.arms.ARM_OPTIONS)
PACINGS: dict[str, type[Pacing]] = _behaviours()


def build_schedule(
    arm: ArmConfig,
    context: ScheduleContext,
    difficulties: Mapping[str, np.ndarray],
    piece_tokens: Mapping[str, np.ndarray],
) -> Pacing:
    """The schedule of ``arm``: its pacing class over the stages it trains on, in its order.

    ``difficulties`` and ``piece_tokens`` give, for every stage of the curriculum, each training
    piece's difficulty and token count in storage order (ascending difficulty).
    """
    pacing = PACINGS[arm.pacing]
    names = pacing.stage_order(arm, context)
    ranks = piece_ranks([np.asarray(difficulties[n]) for n in names], pacing.piece_order(arm), context.seed)
    stages = StageData(
        names=tuple(names),
        piece_tokens=tuple(np.asarray(piece_tokens[n], dtype=np.int64) for n in names),
        ranks=tuple(ranks),
    )
    return pacing(arm, stages, context)
