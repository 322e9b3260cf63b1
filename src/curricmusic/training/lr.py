"""Learning-rate schedules: pure functions of the step.

Each warms up linearly to the peak over ``warmup_steps`` (step s gets peak x (s + 1) / warmup), then:

- ``cosine``: decays over the rest of the run to ``peak x min_ratio`` (reached at ``total_steps``);
- ``constant``: stays at the peak;
- ``wsd`` (warmup, stable, decay; Hu et al. 2024, Hägele et al. 2024): stays at the peak, then
  decays linearly to ``peak x min_ratio`` over the last ``decay_steps`` steps.

Under ``cosine`` the learning rate an arm meets a stage with depends on when the arm gets there;
under ``wsd`` every arm has the peak until the same step and the same decay after it, so the last
share of every run is trained identically: the study default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LRSchedule", "lr_schedule"]


@dataclass(frozen=True)
class LRSchedule:
    kind: str
    peak: float
    total_steps: int
    warmup_steps: int
    min_ratio: float
    decay_steps: int = 0

    @property
    def decay_start(self) -> int:
        """First step of the wsd decay."""
        return self.total_steps - self.decay_steps

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        floor = self.peak * self.min_ratio
        if self.kind == "constant":
            return self.peak
        if self.kind == "wsd":
            if step < self.decay_start:
                return self.peak
            progress = min(1.0, (step - self.decay_start) / max(1, self.decay_steps))
            return self.peak + (floor - self.peak) * progress
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return floor + (self.peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"unknown learning-rate schedule {self.kind!r}")


def lr_schedule(
    kind: str, peak: float, total_steps: int, warmup_fraction: float, min_ratio: float, decay_fraction: float
) -> LRSchedule:
    """The schedule of a run of ``total_steps``, its warm-up and decay given as shares of the run."""
    warmup = int(round(warmup_fraction * total_steps))
    decay = max(1, int(round(decay_fraction * total_steps))) if kind == "wsd" else 0
    decay = min(decay, total_steps - warmup) if kind == "wsd" else 0
    return LRSchedule(kind, peak, total_steps, warmup, min_ratio, decay)
