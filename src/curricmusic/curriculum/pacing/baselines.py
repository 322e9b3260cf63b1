"""Baselines that isolate order: the pool's mix, the target alone, and the matched random mix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from curricmusic.config import ArmConfig
from curricmusic.config.arms import (
    PacingOptions,
    RandomMatchedOptions,
    RandomOptions,
    TargetOnlyOptions,
)
from curricmusic.curriculum.pacing.base import Mixture, Pacing, ScheduleContext, StageData

__all__ = ["RandomPacing", "TargetOnlyPacing", "RandomMatchedPacing"]


class RandomPacing(Pacing):
    """Every step the same mix of the arm's stages, in proportion to their training tokens."""

    options_model: ClassVar[type[PacingOptions]] = RandomOptions

    def mixture(self, step: int, state: Mapping) -> Mixture:
        sizes = self.stages.tokens
        return Mixture(sizes / sizes.sum())


class TargetOnlyPacing(Pacing):
    """The target stage alone, for the whole budget; with ``match``, for as many steps as the
    matched arm spends windows on the target stage (rounded up to whole steps): equal target
    tokens instead of equal total tokens."""

    options_model = TargetOnlyOptions

    @classmethod
    def stage_order(cls, arm: ArmConfig, context: ScheduleContext) -> list[str]:
        return [context.target]

    @classmethod
    def steps(cls, arm: ArmConfig, context: ScheduleContext) -> int:
        if arm.match is None:
            return context.total_steps
        if context.matched_windows is None:
            raise ValueError(f"arm {arm.name!r} matches {arm.match!r}, but no matched window counts were given")
        windows = int(context.matched_windows.get(context.target, 0))
        return max(1, -(-windows // context.batch_size))

    def mixture(self, step: int, state: Mapping) -> Mixture:
        return Mixture(np.ones(1))


class RandomMatchedPacing(Pacing):
    """Random order with each stage's share of the windows equal to the matched arm's share over
    its whole run, so the two arms see the same tokens of each stage and differ in order alone."""

    options_model = RandomMatchedOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        counts = np.array([float(self._matched(context)[name]) for name in stages.names])
        self.weights = counts / counts.sum()

    @staticmethod
    def _matched(context: ScheduleContext) -> Mapping[str, int]:
        if context.matched_windows is None:
            raise ValueError("random-matched pacing needs the matched arm's window counts")
        return context.matched_windows

    @classmethod
    def stage_order(cls, arm: ArmConfig, context: ScheduleContext) -> list[str]:
        matched = cls._matched(context)
        return [name for name in context.stage_names if matched.get(name, 0) > 0]

    def mixture(self, step: int, state: Mapping) -> Mixture:
        return Mixture(self.weights)
