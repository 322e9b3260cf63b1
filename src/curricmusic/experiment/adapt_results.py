"""The adaptation phase in ``results.json``: curves, per-model figures, speed-ups with intervals.

For every model (each arm at its chosen learning rate, and ``scratch``: the seed's initial
weights), shot size and seed, an adaptation run gives:

- the adaptation curve: validation loss on the new style against adaptation tokens;
- ``early_val``: the validation loss at the first evaluation (``eval_every`` steps), how far a
  model gets from a few steps;
- ``tokens_to_target``: adaptation tokens until the validation loss first reaches the target,
  censored at the budget (``reached_target`` says whether it got there);
- ``final_val``, ``best_val``, ``auc_val`` and ``test`` (the style's test split, scored once).

The target is fixed by a rule before any run (:func:`adaptation_target`): ``[adapt] target_loss``,
else the from-scratch model's mean validation loss at half the budget at the largest shot size.
A pretrained model usually starts below that level, so against ``random`` the arms race to a
second target fixed the same way from ``random``'s runs (``tokens_to_random_target``): the level
the random-order model reaches at half the budget. Each arm is compared seed by seed with
``scratch`` and with ``random`` (:func:`adaptation_comparisons`): paired differences and ratios
with t-intervals, and for tokens to target (each control's own target) the speed-up (control
tokens / arm tokens: > 1 is faster) with its interval. Everything
is read from files, so it does not matter where a run was trained, and nothing here holds a path
outside the experiment folder or a timing: a resumed experiment gives the same file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.readback import read_json
from curricmusic.common.run_folder import CELL_FILE, RUN_FILE, read_metrics
from curricmusic.config import SCRATCH, SHARED, Experiment
from curricmusic.evaluation.stats import (
    MIN_SEEDS_FOR_CI,
    MIN_VAL_PIECES,
    area_under_curve,
    censored_summary,
    holm,
    mean_ci,
    paired_effect,
    restricted_mean,
    time_to_target,
    value_at,
)
from curricmusic.experiment.adaptation import adapt_dir, model_dir, scratch_dir

__all__ = [
    "ADAPT_METRICS",
    "COMPARED_METRICS",
    "ADAPT_TARGET_AT",
    "adaptation_curves",
    "adaptation_summary",
    "adaptation_target",
    "adaptation_arms",
    "adaptation_comparisons",
    "adaptation_pairs",
    "adaptation_results",
]

# metric -> True when lower is better
ADAPT_METRICS = {
    "early_val": True,
    "final_val": True,
    "best_val": True,
    "auc_val": True,
    "test": True,
    "tokens_to_target": True,
}
COMPARED_METRICS = ("tokens_to_target", "early_val", "final_val", "test")
#: The default target: from-scratch's mean validation loss at this share of the adaptation budget.
ADAPT_TARGET_AT = 0.5
_BASELINE = "random"
#: Summary keys of the race to the random arm's target (see the module doc).
RANDOM_TARGET_TIME, RANDOM_TARGET_REACHED = "tokens_to_random_target", "reached_random_target"


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
    curves: dict[str, Any], info: dict[str, Any], style: str, target: float, budget: float, early_tokens: float
) -> dict[str, Any]:
    """One adaptation run's figures from its curves and run.json (``test_loss`` per stage)."""
    tokens, values = curves["eval_tokens"], curves["val"]
    finite_values = [v for v in values if v is not None and math.isfinite(v)]
    time, reached = time_to_target(tokens, values, target, budget)
    return {
        "early_val": value_at(tokens, values, early_tokens),
        "final_val": values[-1] if values and values[-1] is not None else math.nan,
        "best_val": min(finite_values) if finite_values else math.nan,
        "auc_val": area_under_curve(tokens, values),
        "test": _stage_loss(info.get("test_loss"), style),
        "tokens_to_target": time,
        "reached_target": reached,
    }


def adaptation_target(
    target_loss: float | None, runs: Sequence[dict[str, Any]], budget: float, shots: int, model: str = SCRATCH
) -> dict[str, Any]:
    """The adaptation target and the rule that fixed it: the user's ``target_loss``, else the
    mean over seeds of ``model``'s validation loss (``scratch``: the from-scratch model) at
    ``ADAPT_TARGET_AT`` of the budget (linear between evaluations) at the largest shot size
    ``shots``."""
    if target_loss is not None:
        return {"loss": float(target_loss), "source": "user", "rule": "adapt.target_loss in the experiment file"}
    at = ADAPT_TARGET_AT * budget
    who = "the from-scratch model" if model == SCRATCH else f"the {model!r} arm"
    rule = (
        f"mean validation loss on the new style of {who} with {shots} pieces at "
        f"{ADAPT_TARGET_AT:g} of the adaptation budget ({at:,.0f} tokens)"
    )
    per_seed = [
        value_at(r["curves"]["eval_tokens"], r["curves"]["val"], at)
        for r in runs
        if r["model"] == model and r["shots"] == shots and r["status"] == "done"
    ]
    finite_values = [v for v in per_seed if math.isfinite(v)]
    loss = float(np.mean(finite_values)) if finite_values else math.nan
    return {"loss": loss, "source": "rule", "rule": rule, "at_tokens": at, "shots": shots, "per_seed": per_seed}


def adaptation_arms(
    runs: Sequence[dict[str, Any]], models: Sequence[str], shots: Sequence[int], budget: float
) -> dict[str, Any]:
    """Per model and shot size: mean and t-interval over seeds of every metric; tokens to target
    with the seeds that never arrive kept at the budget (share reached, restricted mean)."""
    out: dict[str, Any] = {}
    for model in models:
        per_shot: dict[str, Any] = {}
        for k in shots:
            done = [r for r in runs if r["model"] == model and r["shots"] == k and r["status"] == "done"]
            stats = {m: mean_ci([r["summary"][m] for r in done]) for m in ADAPT_METRICS if m != "tokens_to_target"}
            stats["tokens_to_target"] = censored_summary(
                [r["summary"]["tokens_to_target"] for r in done], [r["summary"]["reached_target"] for r in done], budget
            )
            per_shot[str(k)] = {"n_done": len(done), **stats}
        out[model] = {"shots": per_shot}
    return out


def adaptation_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """(model, control): every arm against ``scratch``, and every other arm against ``random``.
    The ``shared`` model (``[adapt] init_from``) is in no pair: its figures are exploratory."""
    arms = [m for m in models if m not in (SCRATCH, SHARED)]
    pairs = [(m, SCRATCH) for m in arms] if SCRATCH in models else []
    if _BASELINE in arms:
        pairs += [(m, _BASELINE) for m in arms if m != _BASELINE]
    return pairs


def adaptation_comparisons(
    runs: Sequence[dict[str, Any]], pairs: Sequence[tuple[str, str]], shots: Sequence[int], seeds: Sequence[int], budget: float
) -> list[dict[str, Any]]:
    """Each pair at each shot size, seed by seed (:func:`~curricmusic.evaluation.stats.paired_effect`),
    p-values Holm-corrected over every row. Tokens to target also give the speed-up: the
    geometric mean over seeds of control tokens / model tokens (censored times: a seed that never
    arrives counts as the budget), with the t-interval of its logarithm, and the ratio of the
    restricted means (``speedup_rmst``, no interval). A model already at the target before its
    first step (``n_at_start`` seeds, ``n_control_at_start`` of the control) has no ratio: the
    speed-up is then NaN and the difference in tokens says how much sooner it got there."""
    by = {(r["model"], r["shots"], r["seed"]): r for r in runs if r["status"] == "done"}
    rows = []
    for model, control in pairs:
        time, reached = _target_keys(by, control)
        for k in shots:
            paired = [s for s in seeds if (model, k, s) in by and (control, k, s) in by]
            for metric in COMPARED_METRICS:
                key = time if metric == "tokens_to_target" else metric
                treatment = [by[(model, k, s)]["summary"][key] for s in paired]
                baseline = [by[(control, k, s)]["summary"][key] for s in paired]
                effect = paired_effect(treatment, baseline)
                if effect["n_pairs"] == 0:
                    continue
                row = {"arm": model, "baseline": control, "shots": k, "metric": metric, "seeds": paired, **effect}
                if metric == "tokens_to_target":
                    row["target"] = "scratch" if time == "tokens_to_target" else control
                    row.update(_speedup(effect, paired, by, model, control, k, budget, time, reached))
                rows.append(row)
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


def _target_keys(by: dict, control: str) -> tuple[str, str]:
    """Summary keys of the times a comparison with ``control`` uses: the race to the random arm's
    own target against ``random`` (when the runs have it), else to the from-scratch target."""
    has_random_target = control == _BASELINE and all(RANDOM_TARGET_TIME in r["summary"] for r in by.values())
    return (RANDOM_TARGET_TIME, RANDOM_TARGET_REACHED) if has_random_target else ("tokens_to_target", "reached_target")


def _speedup(
    effect: dict, seeds: list[int], by: dict, model: str, control: str, k: int, budget: float, time: str, reached: str
) -> dict[str, Any]:
    def inverse(value: float) -> float:
        return 1.0 / value if math.isfinite(value) and value > 0 else math.nan

    def rmst(name: str) -> float:
        runs = [by[(name, k, s)]["summary"] for s in seeds]
        return restricted_mean([r[time] for r in runs], [r[reached] for r in runs], budget)

    def at_start(name: str) -> int:  # seeds at the target before the first step: no ratio exists
        return sum(1 for s in seeds if by[(name, k, s)]["summary"][reached] and by[(name, k, s)]["summary"][time] <= 0)

    return {
        "speedup": inverse(effect["ratio"]),
        "speedup_ci_low": inverse(effect["ratio_ci_high"]),
        "speedup_ci_high": inverse(effect["ratio_ci_low"]),
        "speedup_rmst": rmst(control) / rmst(model) if rmst(model) > 0 else math.nan,
        "n_at_start": at_start(model),
        "n_control_at_start": at_start(control),
    }


# ---- reading the experiment folder ----------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    """A file of an adaptation run, or None when it does not exist; damaged: one line naming it."""
    return read_json(path, missing_ok=True, hint="`curricmusic run --resume` redoes the run")


def _run_entry(
    out_dir: Path, folder: Path, model: str, seed: int, shots: int, lr: float | None, failed: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A results entry of one adaptation run (without its summary) and its run.json."""
    entry: dict[str, Any] = {
        "model": model, "seed": seed, "shots": shots, "lr": lr, "run_dir": folder.relative_to(out_dir).as_posix(),
    }  # fmt: skip
    info = _read_json(folder / RUN_FILE)
    if info is None or info.get("status") != "finished":
        entry["status"] = "failed" if failed else "missing"
        entry["error"] = failed or "not run"
        return entry, None
    entry["status"] = "done"
    entry["init_sha256"] = info.get("init_sha256")
    entry["pieces"] = (info.get("adapt") or {}).get("pieces")
    entry["tokens_seen"] = info.get("tokens_seen")
    return entry, info


def _style_info(experiment: Experiment, out_dir: Path, infos: list[dict[str, Any]]) -> dict[str, Any]:
    """The new style: its settings, pieces per split (from its prepared manifest, read where a
    finished run says it was prepared) and how many of them a pretraining stage holds exactly."""
    from curricmusic.data.prepared import PreparedData

    adapt = experiment.config.adapt
    assert adapt is not None
    info: dict[str, Any] = {"stage": adapt.style.name, "config": adapt.style.model_dump(mode="json")}
    prepared = next((i["prepared"] for i in infos if Path(i.get("prepared", "")).is_dir()), None)
    if prepared is None:
        return info
    data = PreparedData.open(prepared)
    stage = adapt.style.name
    info["n_pieces"] = {split: len(data.pieces(stage, split)) for split in ("train", "val", "test")}
    info["n_tune_groups"] = data.stage(stage).get("n_tune_groups")
    hashes = {p["content_hash"] for split in ("train", "val", "test") for p in data.pieces(stage, split)}
    roots = {(_read_json(f) or {}).get("prepared") for f in sorted((out_dir / "runs").glob("*/run.json"))}
    pretraining: set[str] = set()
    for root in sorted(r for r in roots if r and r != prepared and Path(r).is_dir()):
        other = PreparedData.open(root)
        pretraining |= {p["content_hash"] for s in other.stage_names for sp in ("train", "val", "test") for p in other.pieces(s, sp)}
    info["n_exact_duplicates_of_pretraining"] = len(hashes & pretraining)
    return info


def _warnings(arms: dict[str, Any], style: dict[str, Any]) -> list[str]:
    out = []
    done = [s["n_done"] for model in arms.values() for s in model["shots"].values()]
    if done and min(done) < MIN_SEEDS_FOR_CI:
        out.append(
            f"adaptation: {min(done)} finished seed(s) per model and shot size: too few for an interval "
            f"(need {MIN_SEEDS_FOR_CI}); the speed-ups and differences have none"
        )
    counts = style.get("n_pieces") or {}
    for split in ("val", "test"):
        if split in counts and counts[split] < MIN_VAL_PIECES:
            out.append(
                f"adaptation: the new style's {split} split holds {counts[split]} piece(s) (fewer than "
                f"{MIN_VAL_PIECES}): its {'validation' if split == 'val' else 'test'} loss is that of a handful of tunes"
            )
    if style.get("n_exact_duplicates_of_pretraining"):
        out.append(
            f"adaptation: {style['n_exact_duplicates_of_pretraining']} piece(s) of the new style are also in a "
            "pretraining stage: the style is not wholly new"
        )
    return out


def adaptation_results(experiment: Experiment, out_dir: Path, chosen: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``adaptation`` entry of results.json (None without ``[adapt]``). ``chosen``: the
    results.json run entries at each arm's chosen learning rate."""
    adapt = experiment.config.adapt
    if adapt is None:
        return None
    config = experiment.config
    out_dir = Path(out_dir)
    style = adapt.style.name
    budget = float(adapt.total_steps(config.train.tokens_per_step) * config.train.tokens_per_step)
    early = float(adapt.eval_every * config.train.tokens_per_step)
    found: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for seed in config.seeds:  # seeds outermost, as the runner trains them
        for arm in config.arms:
            cell = next((r for r in chosen if r["arm"] == arm.name and r["seed"] == seed), None)
            if cell is None:
                continue
            failed = cell.get("error") if cell["status"] == "failed" else None
            for k in adapt.shots:
                folder = adapt_dir(out_dir / cell["run_dir"], k)
                found.append(_run_entry(out_dir, folder, arm.name, seed, k, cell["lr"], failed))
        status = _read_json(scratch_dir(out_dir, seed) / CELL_FILE) or {}
        failed = status.get("error") if status.get("status") == "failed" else None
        for k in adapt.shots:
            found.append(_run_entry(out_dir, adapt_dir(scratch_dir(out_dir, seed), k), SCRATCH, seed, k, adapt.lr, failed))
        if adapt.init_from is not None:  # the shared model, adapted alike (shown, never compared)
            status = _read_json(model_dir(out_dir, SHARED, seed) / "cell.json") or {}
            failed = status.get("error") if status.get("status") == "failed" else None
            for k in adapt.shots:
                folder = adapt_dir(model_dir(out_dir, SHARED, seed), k)
                found.append(_run_entry(out_dir, folder, SHARED, seed, k, adapt.lr, failed))
    runs = [entry for entry, _ in found]
    infos = [info for _, info in found if info is not None]
    for entry in runs:  # the curves first: the target rule reads scratch's
        if entry["status"] == "done":
            entry["curves"] = adaptation_curves(out_dir / entry["run_dir"], style)
    target = adaptation_target(adapt.target_loss, runs, budget, adapt.shots[-1])
    has_random = any(arm.name == _BASELINE for arm in config.arms)
    random_target = adaptation_target(None, runs, budget, adapt.shots[-1], _BASELINE) if has_random and adapt.target_loss is None else None
    for entry, info in found:
        if info is not None:
            entry["summary"] = adaptation_summary(entry["curves"], info, style, target["loss"], budget, early)
            if random_target is not None:
                time, reached = time_to_target(entry["curves"]["eval_tokens"], entry["curves"]["val"], random_target["loss"], budget)
                entry["summary"] |= {RANDOM_TARGET_TIME: time, RANDOM_TARGET_REACHED: reached}
    models = [arm.name for arm in config.arms] + ([SHARED] if adapt.init_from is not None else []) + [SCRATCH]
    arms = adaptation_arms(runs, models, adapt.shots, budget)
    style_info = _style_info(experiment, out_dir, infos)
    comparisons = adaptation_comparisons(runs, adaptation_pairs(models), adapt.shots, config.seeds, budget)
    return {
        "style": style_info,
        "shots": list(adapt.shots),
        "budget_tokens": budget,
        "early_tokens": early,
        "early_steps": adapt.eval_every,
        "lr": adapt.lr,
        "lr_schedule": adapt.lr_schedule,
        "target": target,
        "random_target": random_target,
        "models": models,
        "shared_model": adapt.init_from.name if adapt.init_from is not None else None,
        "runs": runs,
        "arms": arms,
        "comparisons": comparisons,
        "failures": [f"{r['model']} seed {r['seed']}, {r['shots']} pieces: {r['error']}" for r in runs if r["status"] == "failed"],
        "warnings": _warnings(arms, style_info),
    }
