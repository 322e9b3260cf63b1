"""``pre-phase``: all the pedagogy first, mixed, then the target stage alone.

The pedagogy stages (every stage of the arm but the target) are mixed in proportion to their
training tokens, as the ``random`` arm mixes them, for the first ``pre_fraction`` of the steps;
from then on every window is the target stage's. Pre-pretraining on a formal language before the
real data (Hu et al. 2025) and pretraining on music before language (Papadimitriou & Jurafsky
2020) have this shape: the question is whether the pre-phase's order inside it matters less than
having one at all, which the ``fixed`` arm (stages in turn) answers beside it. With whole windows
per stage handed out by :func:`~curricmusic.curriculum.allocation.allocate`, the pedagogy takes
exactly ``round(pre_fraction x steps) x batch_size`` windows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.config import ArmConfig
from curricmusic.config.arms import PrePhaseOptions
from curricmusic.curriculum.pacing.base import Mixture, Pacing, ScheduleContext, StageData

__all__ = ["PrePhasePacing"]


class PrePhasePacing(Pacing):
    """Steps ``[0, pre_steps)``: the pedagogy stages in proportion to their tokens; then the
    target alone. The stage being learned is the largest pedagogy stage, then the target."""

    options_model = PrePhaseOptions
    options: PrePhaseOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        if context.target not in stages.names or len(stages.names) < 2:
            raise UserError(
                f"arm {arm.name!r}: pacing 'pre-phase' needs the target stage {context.target!r} and at least one "
                f"other stage; it has {', '.join(stages.names)}"
            )
        self.pre_steps = int(round(self.options.pre_fraction * self.total_steps))
        sizes = stages.tokens.copy()
        sizes[self.target_index] = 0.0
        self.pre_weights = sizes / sizes.sum()  # (K,)
        self.target_weights = np.eye(len(stages.names))[self.target_index]  # (K,)

    def current_stage(self, step: int, state: Mapping) -> int:
        return int(np.argmax(self.pre_weights)) if step < self.pre_steps else self.target_index

    def mixture(self, step: int, state: Mapping) -> Mixture:
        return Mixture(self.pre_weights if step < self.pre_steps else self.target_weights)
