"""``seq-warmup`` (Li et al. 2022): the pool's mix, with windows that grow to the full context.

Li, Zhang and He (2022, "The Stability-Efficiency Dilemma: Investigating Sequence Length Warmup
for Training GPT Models") train on short sequences first and grow them linearly to the full
length over the first T steps. Here the data mixture is the ``random`` arm's (every stage in
proportion to its tokens) and only the window length moves, so the arm isolates the effect of
context length on the way in. A step of windows of length L holds ``seq_len / L`` times as many
windows (:func:`~curricmusic.curriculum.allocation.step_windows`): every step trains exactly the
real tokens of the other arms, and budgets stay equal. The lengths are divisors of ``seq_len``
so that the tokens match exactly; with a power-of-two context the linear ramp of the paper
becomes a staircase of doublings (:func:`warmup_length`).
"""

from __future__ import annotations

from collections.abc import Mapping

from curricmusic.config import ArmConfig
from curricmusic.config.arms import SeqWarmupOptions
from curricmusic.curriculum.pacing.base import Mixture, ScheduleContext, StageData
from curricmusic.curriculum.pacing.baselines import RandomPacing

__all__ = ["SeqWarmupPacing", "warmup_length"]


def warmup_length(step: int, warmup_steps: int, start_len: int, seq_len: int) -> int:
    """Window length at ``step``: the linear ramp ``start + (seq_len - start) t / T`` rounded
    down to a divisor of ``seq_len`` (never below ``start_len``); ``seq_len`` from step T on.

    >>> [warmup_length(t, 8, 16, 64) for t in range(0, 10)]
    [16, 16, 16, 32, 32, 32, 32, 32, 64, 64]
    """
    if seq_len % start_len:
        raise ValueError(f"start length {start_len} does not divide the context {seq_len}")
    if warmup_steps <= 0 or step >= warmup_steps:
        return seq_len
    ramp = start_len + (seq_len - start_len) * max(step, 0) / warmup_steps
    return max(d for d in range(start_len, seq_len + 1) if seq_len % d == 0 and d <= ramp + 1e-9)


class SeqWarmupPacing(RandomPacing):
    """The random arm's mixture every step; windows of :func:`warmup_length` tokens, growing
    from ``start_len`` to ``seq_len`` over ``warmup_fraction`` of the steps."""

    options_model = SeqWarmupOptions
    options: SeqWarmupOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        self.warmup_steps = max(1, int(round(self.options.warmup_fraction * self.total_steps)))

    def window_length(self, step: int) -> int:
        return warmup_length(step, self.warmup_steps, self.options.start_len, self.context.seq_len)

    def mixture(self, step: int, state: Mapping) -> Mixture:
        mix = super().mixture(step, state)
        length = self.window_length(step)
        return Mixture(mix.weights, seq_len=None if length == self.context.seq_len else length)
