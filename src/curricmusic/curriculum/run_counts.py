"""What a whole run of a pacing draws: its real tokens of each stage, counted by replaying its
mixtures through :func:`~curricmusic.curriculum.allocation.allocate` (no data, no model).

``random-matched`` reads it to give the random order exactly the tokens of every stage that the
arm it matches draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from curricmusic.curriculum.allocation import allocate, step_windows

if TYPE_CHECKING:  # annotations only: the pacings import the allocation, not this module
    from curricmusic.curriculum.pacing import Pacing

__all__ = ["window_counts"]


def window_counts(schedule: Pacing, batch_size: int) -> dict[str, int]:
    """Full-length windows per stage name that ``schedule`` draws over its whole run: its real
    tokens of each stage over ``seq_len``, rounded (exact unless windows are shorter; no
    validation: only for pacings whose mixture does not depend on it)."""
    seq_len = schedule.context.seq_len
    state = schedule.initial_state()
    debt = np.zeros(len(schedule.stages.names))
    tokens = np.zeros(len(schedule.stages.names), dtype=np.int64)
    for step in range(schedule.total_steps):
        mixture = schedule.mixture(step, state)
        windows, factor = step_windows(mixture.seq_len, batch_size, seq_len)
        counts, debt = allocate(mixture.weights, debt, windows)
        tokens += counts * (seq_len // factor)
        state = schedule.update(step, state, None)
    return {name: int(round(n / seq_len)) for name, n in zip(schedule.stages.names, tokens, strict=True)}
