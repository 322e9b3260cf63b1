"""``competence`` (Platanios et al. 2019): the easiest share c(t) of all pieces is eligible;
``growing-random`` (Wu et al. 2021): the same growth, pieces joining in a seeded random order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

from curricmusic.config import ArmConfig
from curricmusic.config.arms import CompetenceOptions, GrowingRandomOptions, PacingOptions
from curricmusic.curriculum.pacing.base import (
    Mixture,
    Pacing,
    ScheduleContext,
    StageData,
    competence,
)

__all__ = ["CompetencePacing", "GrowingRandomPacing"]


class CompetencePacing(Pacing):
    """Pieces rank by stage, then difficulty, across stage boundaries (``order`` reverses or
    shuffles the ranking). At step t the pieces ranked below c(t) x N are eligible, with
    c(t) = min(1, sqrt(t (1 - c0^2) / T + c0^2)) (or linear), T = ``competence_fraction`` of the
    steps. Each stage's eligible pieces are a prefix of its packed stream, and windows are uniform
    over every eligible token (stage weights in proportion to eligible tokens)."""

    options_model: ClassVar[type[PacingOptions]] = CompetenceOptions
    options: CompetenceOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        self.competence_steps = max(1, int(round(self.options.competence_fraction * self.total_steps)))

    @classmethod
    def piece_order(cls, arm: ArmConfig) -> str:
        return arm.order

    def rank_limit(self, step: int) -> int:
        c = competence(step, self.competence_steps, self.options.c0, self.options.competence)
        return max(1, math.ceil(c * self.stages.n_pieces - 1e-9))

    def current_stage(self, step: int, state: Mapping) -> int:
        limit = self.rank_limit(step)
        latest = [i for i, r in enumerate(self.stages.ranks) if r.size and r.min() < limit]
        return max(latest) if latest else 0

    def mixture(self, step: int, state: Mapping) -> Mixture:
        limit = self.rank_limit(step)
        eligible = self.stages.eligible_tokens(limit)
        return Mixture(eligible / eligible.sum(), rank_limit=limit)


class GrowingRandomPacing(CompetencePacing):
    """Random order with a growing data set (Wu, Dyer & Neyshabur 2021): :class:`CompetencePacing`
    over a seeded random ranking of every piece, whatever its stage or difficulty. The same as
    ``competence`` with ``order = "shuffled"``; its own name so an experiment can say what it means."""

    options_model = GrowingRandomOptions

    @classmethod
    def piece_order(cls, arm: ArmConfig) -> str:
        return "shuffled"
