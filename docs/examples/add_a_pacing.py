"""A worked example: the ``blend`` pacing, which fades the pedagogy out and the target stage in.

At step t the target stage gets the share s(t) = min(1, t / R) of the batch, with
R = round(blend_fraction x steps); the other stages share the rest, 1 - s(t), in proportion to
their training tokens (as the ``random`` arm mixes them). In the package, the two classes below
go to two files, each with one registry line (docs/architecture/add-a-pacing.md says which);
tests/docs/test_examples.py registers them and checks every step's mixture.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import Field

from curricmusic.config.arms import PacingOptions
from curricmusic.curriculum.pacing.base import Mixture, Pacing


# --- 1. config/arms.py: the options an arm of this pacing may set, then one line in ARM_OPTIONS:
#        "blend": BlendOptions,
class BlendOptions(PacingOptions):
    """The target stage's share grows from 0 to 1 over ``blend_fraction`` of the steps."""

    blend_fraction: float = Field(0.5, gt=0.0, le=1.0, description="share of the steps the fade takes")


# --- 2. curriculum/pacing/blend.py: the behaviour, then one line in PACINGS:
#        "blend": BlendPacing,
class BlendPacing(Pacing):
    """Pedagogy faded out, target faded in: a pure function of the step (no state)."""

    options: BlendOptions

    def target_share(self, step: int) -> float:
        ramp = max(1, round(self.options.blend_fraction * self.total_steps))
        others = self.stages.tokens.sum() - self.stages.tokens[self.target_index]
        return 1.0 if others <= 0 else min(1.0, step / ramp)

    def mixture(self, step: int, state: Mapping) -> Mixture:
        share = self.target_share(step)
        weights = self.stages.tokens.copy()  # (K,) training tokens per stage
        weights[self.target_index] = 0.0
        if weights.sum() > 0:
            weights *= (1.0 - share) / weights.sum()
        weights[self.target_index] = share
        return Mixture(weights)  # (K,), sums to 1

    def current_stage(self, step: int, state: Mapping) -> int:
        """The target once it holds half the batch; before that, the largest other stage."""
        if self.target_share(step) >= 0.5:
            return self.target_index
        tokens = self.stages.tokens.copy()
        tokens[self.target_index] = -1.0
        return int(np.argmax(tokens))
