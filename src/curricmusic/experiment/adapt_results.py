"""The adaptation phase in ``results.json``: curves, per-model figures, speed-ups with intervals.

For every model (each arm at its chosen learning rate, and ``scratch``: the seed's initial
weights), style, shot size, learning rate and seed, an adaptation run gives its curve and figures
(:mod:`curricmusic.experiment.adapt_measures`: the loss before the first step, after
``report_steps``, final, best, the area under the curve, the drop, the share of the gap to
from-scratch's final level closed, tokens to the target level interpolated between evaluations
and censored at the budget, epochs over the few pieces, the test loss).

When ``[adapt] lr`` lists several rates, each model's rate is chosen per style (and shot size) by
``[adapt] lr_rule`` on the style's *validation* split, the same rule for every model,
from-scratch included (``lr_selection``: every candidate's score); only runs at the chosen rate
enter the figures, the target and the comparisons, and the test split takes no part.

The target is fixed by a rule before any run (:func:`~.adapt_measures.adaptation_target`):
``[adapt] target_loss``, else ``target_model``'s (default: from-scratch's) mean validation loss at
``target_at`` of the budget at the largest shot size. A pretrained model usually starts below
from-scratch's level, so against ``random`` the arms race to a second target fixed the same way
from ``random``'s runs (``tokens_to_random_target``). Each arm is compared seed by seed with
``scratch``, with ``random`` and (an arm that a ``random-matched`` arm matches) with its order
control (:func:`adaptation_comparisons`): paired differences with t-intervals, and for tokens to
target the speed-up (control tokens / arm tokens: > 1 is faster). These comparisons are
exploratory; the confirmatory family is the experiment's declared claims
(:mod:`curricmusic.experiment.claims`).

Each style gets one entry; ``results.json`` holds the first under ``adaptation`` (as always) and,
with several styles, all of them under ``adaptations``. Everything is read from files, so it does
not matter where a run was trained, and nothing here holds a path outside the experiment folder
or a timing: a resumed experiment gives the same file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curricmusic.common.readback import read_json
from curricmusic.common.run_folder import CELL_FILE, RUN_FILE
from curricmusic.config import SCRATCH, SHARED, Experiment
from curricmusic.evaluation.stats import (
    MIN_SEEDS_FOR_CI,
    MIN_VAL_PIECES,
    censored_summary,
    holm,
    interpolated_time_to_target,
    mean_ci,
    paired_effect,
    restricted_mean,
)
from curricmusic.experiment.adapt_measures import (
    RUN_METRICS,
    adaptation_curves,
    adaptation_summary,
    adaptation_target,
    gap_closed,
)
from curricmusic.experiment.adapt_style import style_info
from curricmusic.experiment.adaptation import adapt_folder, model_dir
from curricmusic.experiment.lr_selection import choose_rate, rate_candidates

__all__ = [
    "ADAPT_METRICS",
    "COMPARED_METRICS",
    "adaptation_curves",
    "adaptation_summary",
    "adaptation_target",
    "adaptation_arms",
    "adaptation_comparisons",
    "adaptation_pairs",
    "adaptation_results",
    "select_adaptation_rates",
]

# metric -> True when lower is better
ADAPT_METRICS = {**RUN_METRICS, "tokens_to_target": True}
COMPARED_METRICS = ("tokens_to_target", "start_val", "early_val", "auc_val", "final_val", "test")
_BASELINE = "random"
#: Summary keys of the race to the random arm's target (see the module doc).
RANDOM_TARGET_TIME, RANDOM_TARGET_REACHED = "tokens_to_random_target", "reached_random_target"


def adaptation_arms(
    runs: Sequence[dict[str, Any]], models: Sequence[str], shots: Sequence[int], budget: float, report_steps: Sequence[int] = ()
) -> dict[str, Any]:
    """Per model and shot size: mean and t-interval over seeds of every metric; tokens to target
    with the seeds that never arrive kept at the budget (share reached, restricted mean)."""
    metrics = [m for m in ADAPT_METRICS if m != "tokens_to_target"] + [f"val_at_{k}" for k in report_steps]
    out: dict[str, Any] = {}
    for model in models:
        per_shot: dict[str, Any] = {}
        for k in shots:
            done = [r for r in runs if r["model"] == model and r["shots"] == k and r["status"] == "done"]
            stats = {m: mean_ci([r["summary"].get(m, math.nan) for r in done]) for m in metrics}
            stats["tokens_to_target"] = censored_summary(
                [r["summary"]["tokens_to_target"] for r in done], [r["summary"]["reached_target"] for r in done], budget
            )
            per_shot[str(k)] = {"n_done": len(done), "lr": done[0].get("lr") if done else None, **stats}
        out[model] = {"shots": per_shot}
    return out


def adaptation_pairs(models: Sequence[str], order_pairs: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(model, control): every arm against ``scratch``, every other arm against ``random``, and
    each ``order_pairs`` (an arm and the random-order arm with its tokens of every stage). The
    ``shared`` model (``[adapt] init_from``) is in no pair: its figures are exploratory."""
    arms = [m for m in models if m not in (SCRATCH, SHARED)]
    pairs = [(m, SCRATCH) for m in arms] if SCRATCH in models else []
    if _BASELINE in arms:
        pairs += [(m, _BASELINE) for m in arms if m != _BASELINE]
    return pairs + [p for p in order_pairs if p not in pairs and p[0] in arms and p[1] in arms]


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
                treatment = [by[(model, k, s)]["summary"].get(key, math.nan) for s in paired]
                baseline = [by[(control, k, s)]["summary"].get(key, math.nan) for s in paired]
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
    out_dir: Path, folder: Path, model: str, seed: int, shots: int, lr: float, failed: str | None
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
    entry["lr"] = info.get("lr", lr)  # the rate the run trained with
    entry["init_sha256"] = info.get("init_sha256")
    entry["pieces"] = (info.get("adapt") or {}).get("pieces")
    entry["tokens_seen"] = info.get("tokens_seen")
    return entry, info


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
                f"adaptation: the new style {style.get('stage')}'s {split} split holds {counts[split]} piece(s) (fewer than "
                f"{MIN_VAL_PIECES}): its {'validation' if split == 'val' else 'test'} loss is that of a handful of tunes"
            )
    if style.get("n_exact_duplicates_of_pretraining"):
        out.append(
            f"adaptation: {style['n_exact_duplicates_of_pretraining']} piece(s) of the new style are also in a "
            "pretraining stage: the style is not wholly new"
        )
    linked = {stage: n for stage, n in (style.get("tune_links_to_pretraining") or {}).items() if n}
    if linked:
        where = ", ".join(f"{n} with {stage}" for stage, n in linked.items())
        out.append(f"adaptation: pieces of {style.get('stage')} share a tune with pretraining pieces ({where}): not wholly new tunes")
    return out


def select_adaptation_rates(
    runs: Sequence[dict[str, Any]], models: Sequence[str], shots: Sequence[int], rule: Any
) -> dict[str, Any]:
    """Each model's learning rate per shot size, chosen by ``rule`` (an ``AdaptLRRule``) on the
    style's validation split, the same for every model: ``{"rule", "models": {model: {shots:
    {"chosen", "candidates"}}}}``. Per shot size the candidates are that size's runs; with
    ``per_shots = False`` every size shares the rate with the best mean over sizes."""
    out: dict[str, Any] = {"rule": rule.text(), "metric": rule.metric, "per_shots": rule.per_shots, "models": {}}
    for model in models:
        mine = [r for r in runs if r["model"] == model]
        entry: dict[str, Any] = {}
        for k in shots:
            candidates = rate_candidates([r for r in mine if r["shots"] == k], rule.metric)
            entry[str(k)] = {"chosen": choose_rate(candidates, rule.metric), "candidates": candidates}
        if not rule.per_shots:
            pooled = _pooled_candidates(mine, shots, rule.metric)
            chosen = choose_rate(pooled, rule.metric)
            for k in shots:
                entry[str(k)]["chosen"] = chosen
            entry["pooled"] = pooled
        out["models"][model] = entry
    return out


def _pooled_candidates(runs: Sequence[dict[str, Any]], shots: Sequence[int], metric: str) -> list[dict[str, Any]]:
    """Per rate, the mean over shot sizes of each size's mean over seeds (for ``per_shots = False``)."""
    per_size = [rate_candidates([r for r in runs if r["shots"] == k], metric) for k in shots]
    key = f"mean_{metric}"
    out = []
    for index, candidate in enumerate(per_size[0] if per_size else []):
        rows = [size[index] for size in per_size]
        values = [row[key] for row in rows]
        mean = sum(values) / len(values) if all(math.isfinite(v) for v in values) else math.nan
        out.append({"lr": candidate["lr"], key: mean, "n_seeds": min(r["n_seeds"] for r in rows), "n_failed": sum(r["n_failed"] for r in rows)})
    return out


def _found_runs(experiment: Experiment, out_dir: Path, chosen: Sequence[dict[str, Any]], style: str) -> list[tuple[dict, dict | None]]:
    """Every adaptation run of ``style`` (each model at its pretraining learning rate, every
    shot size and adaptation rate, every seed), with its run.json when it finished."""
    config = experiment.config
    adapt = config.adapt
    assert adapt is not None
    found: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for seed in config.seeds:  # seeds outermost, as the runner trains them
        for arm in config.arms:
            cell = next((r for r in chosen if r["arm"] == arm.name and r["seed"] == seed), None)
            if cell is None:
                continue
            failed = cell.get("error") if cell["status"] == "failed" else None
            for k in adapt.shots:
                for lr in adapt.learning_rates:
                    folder = adapt_folder(adapt, out_dir / cell["run_dir"], style, k, lr)
                    found.append(_run_entry(out_dir, folder, arm.name, seed, k, lr, failed))
        labels = [SCRATCH] + ([SHARED] if adapt.init_from is not None else [])  # shared: shown, never compared
        for label in labels:
            status = _read_json(model_dir(out_dir, label, seed) / CELL_FILE) or {}
            failed = status.get("error") if status.get("status") == "failed" else None
            for k in adapt.shots:
                for lr in adapt.learning_rates:
                    folder = adapt_folder(adapt, model_dir(out_dir, label, seed), style, k, lr)
                    found.append(_run_entry(out_dir, folder, label, seed, k, lr, failed))
    return found


def _style_results(experiment: Experiment, out_dir: Path, chosen: Sequence[dict[str, Any]], style: str) -> dict[str, Any]:
    """One style's entry (see the module doc)."""
    config = experiment.config
    adapt = config.adapt
    assert adapt is not None
    budget = float(adapt.total_steps(config.train.tokens_per_step) * config.train.tokens_per_step)
    early = float(adapt.eval_every * config.train.tokens_per_step)
    found = _found_runs(experiment, out_dir, chosen, style)
    runs = [entry for entry, _ in found]
    models = [arm.name for arm in config.arms] + ([SHARED] if adapt.init_from is not None else []) + [SCRATCH]
    for entry, info in found:  # every run's figures first: they choose the learning rates
        if info is not None:
            entry["curves"] = adaptation_curves(out_dir / entry["run_dir"], style)
            entry["summary"] = adaptation_summary(entry["curves"], info, style, math.nan, budget, early, adapt.report_steps)
    selection = select_adaptation_rates(runs, models, adapt.shots, adapt.lr_rule)
    for entry in runs:
        entry["chosen"] = entry["lr"] == selection["models"][entry["model"]][str(entry["shots"])]["chosen"]
    picked = [r for r in runs if r["chosen"]]
    target = adaptation_target(adapt.target_loss, picked, budget, adapt.shots[-1], adapt.target_model, adapt.target_at)
    has_random = any(arm.name == _BASELINE for arm in config.arms)
    random_target = (
        adaptation_target(None, picked, budget, adapt.shots[-1], _BASELINE, adapt.target_at)
        if has_random and adapt.target_loss is None and adapt.target_model != _BASELINE
        else None
    )
    for entry, info in found:
        if info is not None:
            entry["summary"] = adaptation_summary(entry["curves"], info, style, target["loss"], budget, early, adapt.report_steps)
            if random_target is not None:
                time, reached = interpolated_time_to_target(entry["curves"]["eval_tokens"], entry["curves"]["val"], random_target["loss"], budget)
                entry["summary"] |= {RANDOM_TARGET_TIME: time, RANDOM_TARGET_REACHED: reached}
    reference = _scratch_final(picked, adapt.shots)
    for entry in runs:
        if entry["status"] == "done":
            s = entry["summary"]
            s["gap_closed"] = gap_closed(s["start_val"], s["final_val"], reference.get(entry["shots"], math.nan))
    arms = adaptation_arms(picked, models, adapt.shots, budget, adapt.report_steps)
    info = style_info(experiment, out_dir, style, [i for _, i in found if i is not None])
    order_pairs = [(a.match, a.name) for a in config.arms if a.options.order_control and a.match]
    comparisons = adaptation_comparisons(picked, adaptation_pairs(models, order_pairs), adapt.shots, config.seeds, budget)
    return {
        "style": info,
        "shots": list(adapt.shots),
        "budget_tokens": budget,
        "early_tokens": early,
        "early_steps": adapt.eval_every,
        "report_steps": list(adapt.report_steps),
        "lr": adapt.lr,
        "lr_schedule": adapt.lr_schedule,
        "lr_selection": selection,
        "target": target,
        "random_target": random_target,
        "scratch_final": {str(k): v for k, v in reference.items()},
        "models": models,
        "shared_model": adapt.init_from.name if adapt.init_from is not None else None,
        "runs": runs,
        "arms": arms,
        "comparisons": comparisons,
        "failures": [f"{r['model']} seed {r['seed']}, {r['shots']} pieces, lr {r['lr']:g}: {r['error']}" for r in runs if r["status"] == "failed"],
        "warnings": _warnings(arms, info),
    }


def _scratch_final(runs: Sequence[dict[str, Any]], shots: Sequence[int]) -> dict[int, float]:
    """From-scratch's mean final validation loss per shot size (the level ``gap_closed`` reads)."""
    out = {}
    for k in shots:
        values = [r["summary"]["final_val"] for r in runs if r["model"] == SCRATCH and r["shots"] == k and r["status"] == "done"]
        finite = [v for v in values if math.isfinite(v)]
        out[k] = sum(finite) / len(finite) if finite else math.nan
    return out


def adaptation_results(experiment: Experiment, out_dir: Path, chosen: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """One entry per ``[adapt]`` style, in the experiment's order (None without ``[adapt]``).
    ``chosen``: the results.json run entries at each arm's chosen learning rate."""
    adapt = experiment.config.adapt
    if adapt is None:
        return None
    return [_style_results(experiment, Path(out_dir), chosen, style.name) for style in adapt.styles]
