"""``plateau``: stay on a stage until its validation loss stops improving (or its time is up)."""

from __future__ import annotations

from collections.abc import Mapping

from curricmusic.config import ArmConfig
from curricmusic.config.arms import PlateauOptions
from curricmusic.curriculum.pacing.base import (
    Mixture,
    Pacing,
    ScheduleContext,
    StageData,
    count_plateau,
    ordered_stages,
    replay_weights,
)

__all__ = ["PlateauPacing"]


class PlateauPacing(Pacing):
    """Advance when the current stage's validation loss has not improved by a relative
    ``min_delta`` for ``patience`` evaluations, or after ``max_stage_fraction`` of the budget.
    The state (stage, best loss, evaluations without improvement, stage start) is checkpointed."""

    options_model = PlateauOptions
    options: PlateauOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        self.max_stage_steps = max(1, int(round(self.options.max_stage_fraction * self.total_steps)))

    @classmethod
    def stage_order(cls, arm: ArmConfig, context: ScheduleContext) -> list[str]:
        return ordered_stages(super().stage_order(arm, context), arm.order, context.seed)

    def initial_state(self) -> dict:
        return {"stage": 0, "best": None, "bad_evals": 0, "stage_start": 0}

    def update(
        self,
        step: int,
        state: Mapping,
        val_losses: Mapping[str, float] | None = None,
        measures: Mapping[str, Mapping[str, float]] | None = None,
    ) -> dict:
        new = dict(state)
        if new["stage"] >= len(self.stages.names) - 1:
            return new
        if val_losses is not None:
            count_plateau(new, val_losses.get(self.stages.names[new["stage"]]), self.options.min_delta)
        if new["bad_evals"] >= self.options.patience or step + 1 - new["stage_start"] >= self.max_stage_steps:
            new = {"stage": new["stage"] + 1, "best": None, "bad_evals": 0, "stage_start": step + 1}
        return new

    def current_stage(self, step: int, state: Mapping) -> int:
        return int(state["stage"])

    def mixture(self, step: int, state: Mapping) -> Mixture:
        return Mixture(replay_weights(self.current_stage(step, state), self.stages.tokens, self.options.replay))
