"""``mastery``: stay on each basics stage until a stated criterion says it is learned, then go on.

A pianist moves from scales to Hanon to Czerny when the scales are *mastered*, not after a set
number of weeks. The basics are the arm's stages other than the target, in the arm's order. Each
is trained (with ``replay`` of the earlier ones) until its criterion holds at an evaluation, or
until its token cap is spent; then comes the next. After the last basics stage the end phase runs
to the end of the budget:

- ``target``: the target stage (with ``replay``): basics mastered, then the pieces;
- ``pool``: every stage of the arm in proportion to its training tokens (an arm of basics alone
  keeps practising them, mixed);
- ``matched``: every stage with the whole-run shares that this very schedule would have drawn
  with ``end = "target"`` (the shares ``random-matched`` takes from that arm), so the arm ends on
  a mix rather than on one style.

Criteria (per basics stage): ``plateau``, the stage's validation loss has not improved by a
relative ``min_delta`` for ``patience`` evaluations; ``key_share``, the share of the model's
next-pitch probability that falls on the key's diatonic pitch classes, on the stage's held-out
pieces, reaches the threshold (:meth:`MasteryPacing.measured` asks the run to measure it).

The state (the stage, its start, the plateau counters, one event per finished stage and the end
phase's shares) is a plain dict kept in checkpoints; :meth:`MasteryPacing.record` is what the
run writes to ``run.json``: for every basics stage, whether it was mastered or hit its cap, after
how many steps, and the criterion's value then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from curricmusic.config import ArmConfig
from curricmusic.config.arms import MasteryOptions
from curricmusic.curriculum.allocation import allocate
from curricmusic.curriculum.pacing.base import (
    Mixture,
    Pacing,
    ScheduleContext,
    StageData,
    count_plateau,
    replay_weights,
)

__all__ = ["MasteryPacing", "KEY_SHARE"]

#: The measure the ``key_share`` criterion reads (``measures[KEY_SHARE][stage]``).
KEY_SHARE = "key_share"


class MasteryPacing(Pacing):
    """Basics in turn, each until mastered or capped; then the end phase (see the module doc)."""

    options_model = MasteryOptions
    options: MasteryOptions

    def __init__(self, arm: ArmConfig, stages: StageData, context: ScheduleContext) -> None:
        super().__init__(arm, stages, context)
        names = list(stages.names)
        self.basics = self.options.basics(names, context.target)
        self.basics_index = [names.index(name) for name in self.basics]  # (B,) positions in the arm's order
        self.has_target = context.target in names
        budget = self.total_steps * context.tokens_per_step
        caps = self.options.caps(len(self.basics), budget)
        self.cap_steps = [max(1, -(-int(cap) // context.tokens_per_step)) for cap in caps]
        self.criteria = self.options.criteria(len(self.basics))

    # ---- what the run measures and records --------------------------------------------------
    def measured(self) -> dict[str, tuple[str, ...]]:
        stages = tuple(name for name, (kind, _) in zip(self.basics, self.criteria, strict=True) if kind == KEY_SHARE)
        return {KEY_SHARE: stages} if stages else {}

    def record(self, state: Mapping) -> dict[str, Any]:
        return {
            "basics": list(self.basics),
            "criteria": [{"stage": s, "criterion": k, "threshold": t if k == KEY_SHARE else None,
                          "cap_steps": c} for s, (k, t), c in zip(self.basics, self.criteria, self.cap_steps, strict=True)],
            "end": self.options.end,
            "events": [dict(event) for event in state["events"]],
            "end_weights": state.get("end_weights"),
        }  # fmt: skip

    # ---- the schedule -----------------------------------------------------------------------
    def initial_state(self) -> dict:
        return {"stage": 0, "stage_start": 0, "best": None, "bad_evals": 0, "last": None, "events": [], "end_weights": None}

    def in_end_phase(self, state: Mapping) -> bool:
        return int(state["stage"]) >= len(self.basics)

    def current_stage(self, step: int, state: Mapping) -> int:
        if not self.in_end_phase(state):
            return self.basics_index[int(state["stage"])]
        return self.target_index

    def phase(self, step: int, state: Mapping) -> tuple[int, bool]:
        if self.in_end_phase(state) and self.options.end != "target":
            return (-1, True)  # the end draws several stages (pooled or random-matched's shares)
        return (self.current_stage(step, state), self.in_end_phase(state))

    def mixture(self, step: int, state: Mapping) -> Mixture:
        sizes = self.stages.tokens
        if not self.in_end_phase(state):
            return Mixture(replay_weights(self.current_stage(step, state), sizes, self.options.replay))
        if self.options.end == "target":
            return Mixture(replay_weights(self.target_index, sizes, self.options.replay))
        if self.options.end == "pool":
            return Mixture(sizes / sizes.sum())
        return Mixture(np.asarray(state["end_weights"], dtype=np.float64))

    def update(
        self,
        step: int,
        state: Mapping,
        val_losses: Mapping[str, float] | None = None,
        measures: Mapping[str, Mapping[str, float]] | None = None,
    ) -> dict:
        new = dict(state)
        if self.in_end_phase(new):
            return new
        index = int(new["stage"])
        name, (kind, threshold) = self.basics[index], self.criteria[index]
        mastered = False
        if val_losses is not None:
            if kind == KEY_SHARE:
                value = (measures or {}).get(KEY_SHARE, {}).get(name)
                if value is not None and math.isfinite(value):
                    new["last"] = float(value)
                    mastered = value >= threshold
            else:
                mastered = self._plateau(new, val_losses.get(name))
        steps_on_stage = step + 1 - int(new["stage_start"])
        capped = steps_on_stage >= self.cap_steps[index]
        if not (mastered or capped):
            return new
        event = {
            "stage": name,
            "criterion": kind,
            "mastered": bool(mastered),
            "cap_hit": bool(capped and not mastered),
            "steps": steps_on_stage,
            "end_step": step + 1,
            "value": new["last"] if kind == KEY_SHARE else new["best"],
        }
        new.update(stage=index + 1, stage_start=step + 1, best=None, bad_evals=0, last=None, events=[*new["events"], event])
        if self.in_end_phase(new) and self.options.end == "matched":
            new["end_weights"] = self.target_end_shares([e["end_step"] for e in new["events"]]).tolist()
        return new

    def _plateau(self, state: dict, loss: float | None) -> bool:
        """Update the plateau counters with the stage's loss; True once it stopped improving."""
        if loss is None or not math.isfinite(loss):
            return False
        count_plateau(state, loss, self.options.min_delta)
        return int(state["bad_evals"]) >= self.options.patience

    def target_end_shares(self, ends: list[int]) -> np.ndarray:
        """``(K,)``: the share of the whole run's windows each stage gets when the basics end at
        the steps ``ends`` and the target (with replay) takes the rest: what ``random-matched``
        to an ``end = "target"`` arm with these boundaries draws (the same deterministic
        allocation the run uses)."""
        sizes, replay, batch = self.stages.tokens, self.options.replay, self.context.batch_size
        debt = np.zeros(sizes.shape[0])
        counts = np.zeros(sizes.shape[0], dtype=np.int64)
        for step in range(self.total_steps):
            phase = int(np.searchsorted(np.asarray(ends), step, side="right"))
            current = self.basics_index[phase] if phase < len(self.basics) else self.target_index
            windows, debt = allocate(replay_weights(current, sizes, replay), debt, batch)
            counts += windows
        return counts / counts.sum()
