"""What one adaptation run measured: its curve and the figures read from it.

Per run (a model, a style, a shot size, a learning rate and a seed), from the validation loss on
the style at every evaluation (``[adapt] eval_every`` steps apart, step 0 included):

- ``start_val``: the loss before the first step (how far the model starts from the style);
- ``val_at_<k>``: the loss after ``k`` steps, for each of ``[adapt] report_steps``;
- ``early_val``: after the first ``eval_every`` steps;
- ``final_val``, ``best_val``, ``auc_val`` (the curve's mean height: the area under it over the
  budget), ``drop`` (``start_val - final_val``: what the run learned);
- ``tokens_to_target``: adaptation tokens until the loss first falls to the target level,
  linear between the two evaluations around the crossing, censored at the budget
  (``reached_target`` says whether it got there);
- ``epochs``: passes over the shot subset's training tokens (few pieces are seen many times);
- ``test``: the style's test split, scored once by the final model;
- ``gap_closed`` (filled in with the from-scratch reference, :func:`gap_closed`): the share of
  the gap between the start and from-scratch's final level that the run closed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.run_folder import read_metrics
from curricmusic.config import SCRATCH
from curricmusic.evaluation.stats import area_under_curve, interpolated_time_to_target, value_at

__all__ = ["adaptation_curves", "adaptation_summary", "adaptation_target", "gap_closed", "RUN_METRICS"]

#: Per-run figures that are aggregated over seeds (besides ``val_at_<k>``): True when lower is better.
RUN_METRICS = {
    "start_val": True,
    "early_val": True,
    "final_val": True,
    "best_val": True,
    "auc_val": True,
    "drop": False,
    "gap_closed": False,
    "test": True,
    "epochs": False,
}


def adaptation_curves(run_dir: Path, style: str) -> dict[str, Any]:
    """An adaptation run's curves: validation loss on the style at each evaluation and the
    training loss at each logged step, against the adaptation tokens seen."""
    rows = read_metrics(run_dir)
    evals = [r for r in rows if "val_loss" in r]
    return {
        "eval_tokens": [r["tokens_seen"] for r in evals],
        "eval_steps": [r["step"] for r in evals],
        "val": [r["val_loss"].get(style) for r in evals],
        "train_tokens": [r["tokens_seen"] for r in rows if r.get("train_loss") is not None],
        "train_loss": [r["train_loss"] for r in rows if r.get("train_loss") is not None],
    }


def _stage_loss(value: Any, style: str) -> float:
    if isinstance(value, dict):
        value = value.get(style)
    return float(value) if isinstance(value, int | float) else math.nan


def adaptation_summary(
    curves: dict[str, Any],
    info: dict[str, Any],
    style: str,
    target: float,
    budget: float,
    early_tokens: float,
    report_steps: Sequence[int] = (),
) -> dict[str, Any]:
    """One adaptation run's figures (see the module doc) from its curves and run.json."""
    tokens, values = curves["eval_tokens"], curves["val"]
    finite_values = [v for v in values if v is not None and math.isfinite(v)]
    time, reached = interpolated_time_to_target(tokens, values, target, budget)
    start = values[0] if values and values[0] is not None else math.nan
    final = values[-1] if values and values[-1] is not None else math.nan
    train_tokens = (info.get("adapt") or {}).get("train_tokens")
    out = {
        "start_val": start,
        "early_val": value_at(tokens, values, early_tokens),
        "final_val": final,
        "best_val": min(finite_values) if finite_values else math.nan,
        "auc_val": area_under_curve(tokens, values),
        "drop": start - final,
        "gap_closed": math.nan,
        "test": _stage_loss(info.get("test_loss"), style),
        "tokens_to_target": time,
        "reached_target": reached,
        "epochs": float(info.get("tokens_seen", math.nan)) / train_tokens if train_tokens else math.nan,
    }
    for k in report_steps:
        out[f"val_at_{k}"] = value_at(curves["eval_steps"], values, float(k))
    return out


def gap_closed(start: float, final: float, reference: float) -> float:
    """``(start - final) / (start - reference)``: the share of the gap between where a run
    started and the ``reference`` level (from-scratch's final loss) that it closed; NaN when it
    started at or below the reference (there was no gap to close)."""
    if not all(math.isfinite(v) for v in (start, final, reference)) or start <= reference:
        return math.nan
    return (start - final) / (start - reference)


def adaptation_target(
    target_loss: float | None,
    runs: Sequence[dict[str, Any]],
    budget: float,
    shots: int,
    model: str = SCRATCH,
    at_fraction: float = 0.5,
) -> dict[str, Any]:
    """The adaptation target and the rule that fixed it: the user's ``target_loss``, else the
    mean over seeds of ``model``'s validation loss (``scratch``: the from-scratch model) at
    ``at_fraction`` of the budget (linear between evaluations) at the largest shot size
    ``shots`` (``runs``: each model at its chosen learning rate)."""
    if target_loss is not None:
        return {"loss": float(target_loss), "source": "user", "rule": "adapt.target_loss in the experiment file"}
    at = at_fraction * budget
    who = "the from-scratch model" if model == SCRATCH else f"the {model!r} arm"
    rule = (
        f"mean validation loss on the new style of {who} with {shots} pieces at "
        f"{at_fraction:g} of the adaptation budget ({at:,.0f} tokens)"
    )
    per_seed = [
        value_at(r["curves"]["eval_tokens"], r["curves"]["val"], at)
        for r in runs
        if r["model"] == model and r["shots"] == shots and r["status"] == "done"
    ]
    finite_values = [v for v in per_seed if math.isfinite(v)]
    loss = float(np.mean(finite_values)) if finite_values else math.nan
    return {"loss": loss, "source": "rule", "rule": rule, "at_tokens": at, "shots": shots, "model": model, "per_seed": per_seed}
