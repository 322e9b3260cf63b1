"""``fixed``: stage i for a configured share of the budget; the last stage runs to the end."""

from __future__ import annotations

from collections.abc import Mapping

from curricmusic.config import ArmConfig
from curricmusic.config.arms import FixedOptions
from curricmusic.curriculum.pacing.base import (
    Mixture,
    Pacing,
    ScheduleContext,
    StageData,
    fixed_boundaries,
    ordered_stages,
    replay_weights,
    stage_at,
)

__all__ = ["FixedPacing"]


class FixedPacing(Pacing):
    """Stages in turn, each for ``stage_fractions`` / ``stage_steps`` / ``stage_tokens`` of the
    budget (default: equal shares); ``replay`` keeps a share of each batch on earlier stages.
    ``order = "reverse"`` is the anti-curriculum, ``"shuffled"`` a seeded stage order."""

    options_model = FixedOptions
    options: FixedOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        self.boundaries = fixed_boundaries(
            len(stages.names),
            self.total_steps,
            fractions=self.options.stage_fractions,
            steps=self.options.stage_steps,
            tokens=self.options.stage_tokens,
            tokens_per_step=context.tokens_per_step,
        )

    @classmethod
    def stage_order(cls, arm: ArmConfig, context: ScheduleContext) -> list[str]:
        return ordered_stages(super().stage_order(arm, context), arm.order, context.seed)

    def current_stage(self, step: int, state: Mapping) -> int:
        return stage_at(step, self.boundaries)

    def mixture(self, step: int, state: Mapping) -> Mixture:
        current = self.current_stage(step, state)
        return Mixture(replay_weights(current, self.stages.tokens, self.options.replay))
