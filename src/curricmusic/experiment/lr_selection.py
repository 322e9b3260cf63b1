"""Each arm at its best learning rate: the choice made on validation, by a rule written down.

The same two functions (:func:`rate_candidates`, :func:`choose_rate`) choose each model's
adaptation learning rate on the new style's validation split (``[adapt] lr_rule``).

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

__all__ = ["RULE", "rate_candidates", "choose_rate", "select_learning_rates", "selected_runs"]

RULE = (
    "per arm, the learning rate with the lowest mean over seeds of the target stage's best validation "
    "loss (lowest over the run's evaluations); ties go to the smaller learning rate; learning rates "
    "with a failed or missing seed are chosen only if every one has such a gap; only runs at the "
    "chosen learning rate enter the summaries and comparisons; the test loss is never used to choose"
)


def rate_candidates(runs: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per learning rate of ``runs`` (results.json run entries of one model: ``lr``, ``status``
    and, when done, ``summary``): ``{"lr", "mean_<metric>", "n_seeds", "n_failed"}``, ascending."""
    candidates = []
    for lr in sorted({float(r["lr"]) for r in runs}):
        at = [r for r in runs if float(r["lr"]) == lr]
        values = [r["summary"].get(metric, math.nan) for r in at if r["status"] == "done"]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        candidates.append(
            {
                "lr": lr,
                f"mean_{metric}": float(np.mean(finite)) if finite else math.nan,
                "n_seeds": len(finite),
                "n_failed": len(at) - len(finite),
            }
        )
    return candidates


def choose_rate(candidates: Sequence[dict[str, Any]], metric: str) -> float | None:
    """The rate with the lowest ``mean_<metric>``; ties go to the smaller rate; rates with a
    failed or missing seed only if every rate has such a gap; None without any rate."""
    key = f"mean_{metric}"
    scored = [c for c in candidates if math.isfinite(c[key])]
    complete = [c for c in scored if c["n_failed"] == 0] or scored
    if complete:
        return min(complete, key=lambda c: (c[key], c["lr"]))["lr"]
    return candidates[0]["lr"] if candidates else None


def select_learning_rates(runs: Sequence[dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """The chosen learning rate of every arm, with each candidate's score and seed count.

    ``runs`` are results.json run entries (``arm``, ``lr``, ``seed``, ``status`` and, when done,
    ``summary.best_val_target``). Returns ``{"rule": RULE, "arms": {arm: {"chosen": lr,
    "candidates": [{"lr", "mean_best_val_target", "n_seeds", "n_failed"}, ...]}}}``.
    """
    out: dict[str, Any] = {"rule": RULE, "arms": {}}
    for arm in arms:
        candidates = rate_candidates([r for r in runs if r["arm"] == arm], "best_val_target")
        out["arms"][arm] = {"chosen": choose_rate(candidates, "best_val_target"), "candidates": candidates}
    return out


def selected_runs(runs: Sequence[dict[str, Any]], selection: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs at each arm's chosen learning rate."""
    chosen = {arm: entry["chosen"] for arm, entry in selection["arms"].items()}
    return [r for r in runs if r["arm"] in chosen and float(r["lr"]) == chosen[r["arm"]]]
