"""Each arm at its best learning rate: the choice made on validation, by a rule written down.

An arm that sweeps learning rates (``lr = [3e-4, 1e-3, 3e-3]``) trains one run per (learning
rate, seed). Before any arm is compared with another, each is narrowed to one learning rate by
:data:`RULE`, so a curriculum is never compared with an untuned baseline (Weber et al. 2023 found
no curriculum beat a tuned baseline with Adam). The test loss plays no part in the choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RULE", "select_learning_rates", "selected_runs"]

RULE = (
    "per arm, the learning rate with the lowest mean over seeds of the target stage's best validation "
    "loss (lowest over the run's evaluations); ties go to the smaller learning rate; learning rates "
    "with a failed or missing seed are chosen only if every one has such a gap; only runs at the "
    "chosen learning rate enter the summaries and comparisons; the test loss is never used to choose"
)


def select_learning_rates(runs: Sequence[dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """The chosen learning rate of every arm, with each candidate's score and seed count.

    ``runs`` are results.json run entries (``arm``, ``lr``, ``seed``, ``status`` and, when done,
    ``summary.best_val_target``). Returns ``{"rule": RULE, "arms": {arm: {"chosen": lr,
    "candidates": [{"lr", "mean_best_val_target", "n_seeds", "n_failed"}, ...]}}}``.
    """
    out: dict[str, Any] = {"rule": RULE, "arms": {}}
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        rates = sorted({float(r["lr"]) for r in mine})
        candidates = []
        for lr in rates:
            at = [r for r in mine if float(r["lr"]) == lr]
            values = [
                r["summary"].get("best_val_target", math.nan) for r in at if r["status"] == "done"
            ]
            finite = [v for v in values if v is not None and math.isfinite(v)]
            candidates.append(
                {
                    "lr": lr,
                    "mean_best_val_target": float(np.mean(finite)) if finite else math.nan,
                    "n_seeds": len(finite),
                    "n_failed": len(at) - len(finite),
                }
            )
        scored = [c for c in candidates if math.isfinite(c["mean_best_val_target"])]
        complete = [c for c in scored if c["n_failed"] == 0] or scored
        chosen = min(complete, key=lambda c: (c["mean_best_val_target"], c["lr"]))["lr"] if complete else None
        if chosen is None and rates:
            chosen = rates[0]
        out["arms"][arm] = {"chosen": chosen, "candidates": candidates}
    return out


def selected_runs(runs: Sequence[dict[str, Any]], selection: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs at each arm's chosen learning rate."""
    chosen = {arm: entry["chosen"] for arm, entry in selection["arms"].items()}
    return [r for r in runs if r["arm"] in chosen and float(r["lr"]) == chosen[r["arm"]]]
