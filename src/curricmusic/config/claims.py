"""Declared claims: the confirmatory comparisons an experiment names before it runs.

The report corrects exactly this family for multiplicity (Holm) and labels every other comparison
exploratory (see README "Statistics").
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from curricmusic.common.frozen import FrozenModel

__all__ = ["CLAIM_METRICS", "Claim"]

#: Metrics a declared claim may compare, per phase (lower is better for every one of them except
#: ``drop`` and ``gap_closed`` of the adaptation phase).
CLAIM_METRICS = {
    "adaptation": ("auc_val", "final_val", "best_val", "test", "start_val", "tokens_to_target", "drop", "gap_closed"),
    "pretraining": ("final_val_target", "best_val_target", "test_target", "auc_val_target", "tokens_to_target"),
}


class Claim(FrozenModel):
    """One confirmatory comparison, declared before the run: ``arm`` against ``against`` on
    ``metric``, paired by seed (adaptation claims: at one ``style`` and shot size ``shots``).
    The report corrects exactly the family of declared claims (Holm) and labels every other
    comparison exploratory."""

    arm: str
    against: str
    metric: str = "auc_val"
    phase: Literal["adaptation", "pretraining"] = "adaptation"
    style: str | None = None
    shots: int | None = None

    @model_validator(mode="after")
    def _check(self) -> Claim:
        if self.metric not in CLAIM_METRICS[self.phase]:
            raise ValueError(f"metric: {self.metric!r} is not a {self.phase} measure; expected one of: {', '.join(CLAIM_METRICS[self.phase])}")
        if self.arm == self.against:
            raise ValueError(f"a claim compares two models; got {self.arm!r} against itself")
        if self.phase == "pretraining" and (self.style is not None or self.shots is not None):
            raise ValueError("style and shots belong to adaptation claims")
        return self

    def label(self) -> str:
        where = f", {self.style}, {self.shots} pieces" if self.phase == "adaptation" else ""
        return f"{self.arm} vs {self.against}: {self.metric}{where}"
