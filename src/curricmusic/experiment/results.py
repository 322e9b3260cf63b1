"""Aggregating an experiment folder into ``results.json``: curves, summaries, statistics.

Everything here is computed from files (run metrics, samples, novelty reports), so it does not
matter where a run was trained. ``results.json`` holds no timings or dates: a resumed experiment
gives the same file as an uninterrupted one.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from curricmusic.common.atomic import write_json
from curricmusic.common.readback import Schema, read_json
from curricmusic.common.run_folder import CELL_FILE, RUN_FILE, RUN_SCHEMA, read_metrics
from curricmusic.config import Experiment, ExperimentConfig, NoveltySection
from curricmusic.evaluation.stats import (
    MIN_PAIRS_FOR_P,
    MIN_SEEDS_FOR_CI,
    MIN_VAL_PIECES,
    area_under_curve,
    censored_summary,
    first_reaching,
    holm,
    mean_ci,
    paired_effect,
    time_to_target,
    value_at,
)
from curricmusic.experiment.adapt_results import adaptation_results
from curricmusic.experiment.claims import claim_results
from curricmusic.experiment.lr_selection import select_learning_rates, selected_runs
from curricmusic.experiment.mastery_results import arm_mastery
from curricmusic.experiment.probe_results import arm_probe
from curricmusic.novelty.pipeline import NOVELTY_SCHEMA

#: Where a damaged file of an experiment folder's run comes from again.
RESUME_HINT = "`curricmusic run --resume` redoes what it belongs to"

if TYPE_CHECKING:  # annotations only
    from curricmusic.data.prepared import PreparedData

__all__ = [
    "aggregate",
    "run_curves",
    "run_summary",
    "target_rule",
    "small_sample_warnings",
    "music_metrics_of",
    "BASELINE_ARM",
    "SUMMARY_METRICS",
    "TARGET_AT",
    "MIN_VAL_PIECES",
    "MIN_CT_SAMPLES",
]

BASELINE_ARM = "random"
# summary -> True when lower is better
SUMMARY_METRICS = {
    "final_val_target": True,
    "best_val_target": True,
    "test_target": True,
    "auc_val_target": True,
    "tokens_to_target": True,
    "copy_rate": True,
    "copy_rate_unblocked": True,
    "rho_median": False,
}
#: The default target: the baseline arm's mean target validation loss at this share of the budget.
TARGET_AT = 0.5
#: Below these, the report says the sample is too small instead of printing a solid-looking number.
MIN_CT_SAMPLES = 30


class CellRecord(Protocol):
    """What aggregation reads of a cell (an arm and seed; :class:`~curricmusic.experiment.runner.Cell`)."""

    @property
    def arm(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def lr(self) -> float | None: ...

    @property
    def name(self) -> str: ...


def run_curves(run_dir: Path, target: str) -> dict[str, Any]:
    """Training and validation curves of a run, by real tokens seen (all, and of the target stage)."""
    rows = read_metrics(run_dir)
    evals = [r for r in rows if "val_loss" in r]
    stages = sorted({s for r in evals for s in r["val_loss"]})
    return {
        "train_tokens": [r["tokens_seen"] for r in rows],
        "train_target_tokens": [r.get("target_tokens_seen") for r in rows],
        "train_loss": [r["train_loss"] for r in rows],
        "stage_weights": [r["stage_weights"] for r in rows],
        "current_stage": [r["current_stage"] for r in rows],
        "eval_tokens": [r["tokens_seen"] for r in evals],
        "eval_target_tokens": [r.get("target_tokens_seen") for r in evals],
        "eval_steps": [r["step"] for r in evals],
        "val": {s: [r["val_loss"].get(s) for r in evals] for s in stages},
        "val_target": [r["val_loss"].get(target) for r in evals],
        "style_val": {s: [r.get("style_loss", {}).get(s) for r in evals] for s in _keys(evals, "style_loss")},
        "key_share": {s: [r.get("key_share", {}).get(s) for r in evals] for s in _keys(evals, "key_share")},
    }


def _keys(rows: list[dict[str, Any]], field: str) -> list[str]:
    """The names measured under ``field`` (a dict per row) in any of ``rows``, sorted."""
    return sorted({name for row in rows for name in (row.get(field) or {})})


def _stage_value(value: Any, target: str) -> float:
    """A loss from run.json that may be a number, ``{stage: loss}`` or ``{"loss": ...}``."""
    if isinstance(value, dict):
        if target in value:
            return _stage_value(value[target], target)
        if "loss" in value:
            return _stage_value(value["loss"], target)
        return math.nan
    return float(value) if isinstance(value, int | float) else math.nan


def run_summary(
    curves: dict[str, Any], target_loss: float, budget: float, run_info: dict[str, Any] | None = None, target: str = ""
) -> dict[str, Any]:
    """One run's figures. ``tokens_to_target`` is censored at ``budget`` (``reached_target``
    says whether it got there); best, final and test losses come from run.json when it has them."""
    tokens, values = curves["eval_tokens"], curves["val_target"]
    finite_values = [v for v in values if v is not None and math.isfinite(v)]
    info = run_info or {}
    summary: dict[str, Any] = {
        "final_val_target": values[-1] if values else math.nan,
        "best_val_target": min(finite_values) if finite_values else math.nan,
        "test_target": math.nan,
        "auc_val_target": area_under_curve(tokens, values),
        "final_val": {s: v[-1] for s, v in curves["val"].items() if v},
    }
    for key, name in (("best_val_loss", "best_val_target"), ("final_val_loss", "final_val_target"), ("test_loss", "test_target")):
        if key in info:
            value = _stage_value(info[key], target)
            if math.isfinite(value):
                summary[name] = value
    time, reached = time_to_target(tokens, values, target_loss, budget)
    summary["tokens_to_target"] = time
    summary["reached_target"] = reached
    summary["steps_to_target"] = first_reaching(curves["eval_steps"], values, target_loss) if reached else math.nan
    return summary


def target_rule(config: ExperimentConfig, runs: list[dict[str, Any]], baseline: str | None) -> dict[str, Any]:
    """The target validation loss and the rule that fixed it (written to results.json).

    The user's ``target_loss`` when given; else the baseline arm's mean target-stage validation
    loss at ``TARGET_AT`` of the budget (linear between evaluations), over its finished seeds at
    its chosen learning rate (``runs``: the selected runs, when the arm sweeps several). Either is
    fixed by the configuration before any run starts.
    """
    budget = float(config.train.tokens)
    if config.target_loss is not None:
        return {"loss": float(config.target_loss), "source": "user", "rule": "target_loss in the experiment file"}
    at = TARGET_AT * budget
    rule = f"mean validation loss of the {baseline!r} arm on the target stage at {TARGET_AT:g} of the budget ({at:,.0f} tokens)"
    if baseline is None:
        return {"loss": math.nan, "source": "none", "rule": "no target_loss and no random baseline arm: tokens to target not measured"}
    per_seed = [
        value_at(r["curves"]["eval_tokens"], r["curves"]["val_target"], at)
        for r in runs
        if r["arm"] == baseline and r["status"] == "done"
    ]
    finite_values = [v for v in per_seed if math.isfinite(v)]
    loss = float(np.mean(finite_values)) if finite_values else math.nan
    return {"loss": loss, "source": "rule", "rule": rule, "arm": baseline, "at_tokens": at, "per_seed": per_seed}


def music_metrics_of(paths: list[Path], n_bars: int | None = None) -> dict[str, list[float]]:
    """Every per-piece musical metric over a list of MIDI files (unreadable files left out).

    ``n_bars``: measure the first ``n_bars`` bars of each piece only (a length-matched excerpt;
    the piece's end is then the excerpt's end); None: the whole piece, to its last event.
    """
    from symusic import Score

    from curricmusic.evaluation.metrics import PIECE_METRICS, compute_all, piece_end
    from curricmusic.evaluation.setcompare import excerpt
    from curricmusic.music.notes import bar_length, score_notes

    values: dict[str, list[float]] = {name: [] for name in PIECE_METRICS}
    for path in paths:
        try:
            score = Score(str(path))
        except Exception:  # noqa: BLE001 - listed as skipped by the novelty report
            continue
        bar = bar_length(score)
        if not float(bar * 24).is_integer():
            bar = 4.0
        notes, end = score_notes(score), piece_end(score)
        if n_bars is not None and end > n_bars * bar:
            notes, end = excerpt(notes, bar, n_bars), n_bars * bar
        for name, value in compute_all(notes, bar, end=end).items():
            values[name].append(value)
    return values


def _heldout_music(experiment: Experiment, out_dir: Path) -> dict[str, list[float]]:
    """Metrics of the target stage's held-out pieces (test, else validation), cut to the samples'
    number of bars (``[generate] max_bars``) so that lengths match."""
    runs = sorted((out_dir / "runs").glob("*/run.json"))
    if not runs or experiment.config.generate.n == 0:  # no samples to compare them with
        return {}
    prepared = _eval_prepared(runs[0])
    target = prepared.target_stage
    pieces = prepared.pieces(target, "test") or prepared.pieces(target, "val")
    return music_metrics_of([prepared.piece_path(p) for p in pieces], experiment.config.generate.max_bars)


def _arm_music(music_by_seed: list[dict[str, list[float]]], heldout: dict[str, list[float]]) -> dict[str, Any]:
    """Per metric: the samples' values and Yang & Lerch's comparison with the held-out excerpts
    (``overlap``/``kl``: held-out intra-set against inter-set distances)."""
    from curricmusic.evaluation.setcompare import set_comparison

    out = {}
    for name in heldout:
        values = [v for run in music_by_seed for v in run.get(name, [])]
        finite_values = [v for v in values if math.isfinite(v)]
        out[name] = {
            "values": values,
            "mean": float(np.mean(finite_values)) if finite_values else math.nan,
            "heldout_mean": float(np.nanmean(heldout[name])) if heldout[name] else math.nan,
            **set_comparison(values, heldout[name]),
        }
    return out


def _read_json(path: Path, schema: Schema | None = None) -> dict[str, Any] | None:
    """A file of a run folder, or None when it does not exist; damaged: one line naming it."""
    return read_json(path, schema, missing_ok=True, hint=RESUME_HINT)


def _eval_prepared(run_json: Path) -> PreparedData:
    from curricmusic.data.prepared import PreparedData

    info = read_json(run_json, {"eval_prepared": str}, hint=RESUME_HINT)
    assert info is not None
    return PreparedData.open(info["eval_prepared"])


def _baseline_arms(config: ExperimentConfig) -> list[str]:
    """Arms that only mix the data (random order, a pacing with the ``baseline`` trait): every
    other arm is compared with each."""
    return [arm.name for arm in config.arms if arm.options.baseline]


def _primary_baseline(config: ExperimentConfig) -> str | None:
    """The arm that fixes the default target: ``random`` by name, else the first random arm."""
    names = [arm.name for arm in config.arms]
    if BASELINE_ARM in names:
        return BASELINE_ARM
    baselines = _baseline_arms(config)
    return baselines[0] if baselines else None


def aggregate(experiment: Experiment, out_dir: Path, cells: Sequence[CellRecord]) -> dict[str, Any]:
    """Read every cell of the experiment folder and write ``results.json``."""
    config = experiment.config
    target = experiment.curriculum.target
    budget = float(config.train.tokens)
    runs = []
    for cell in cells:
        lr = cell.lr if cell.lr is not None else config.learning_rates(cell.arm)[0]
        entry: dict[str, Any] = {"arm": cell.arm, "seed": cell.seed, "lr": lr, "run_dir": f"runs/{cell.name}"}
        status = _read_json(cell.run_dir / CELL_FILE, {"status": str}) or {"status": "missing"}
        entry["status"] = status["status"]
        if status["status"] != "done":
            entry["error"] = status.get("error", "not run")
            runs.append(entry)
            continue
        entry["curves"] = run_curves(cell.run_dir, target)
        info = _read_json(cell.run_dir / RUN_FILE, RUN_SCHEMA) or {}
        entry["run_info"] = info
        entry["lr"] = info.get("lr", entry["lr"])
        entry["heldout"] = {key: info.get(key) for key in ("best_val_loss", "final_val_loss", "test_loss")}
        entry["tokens"] = {key: info.get(key) for key in ("tokens_seen", "target_tokens_seen", "stage_tokens")}
        entry["schedule"] = info.get("schedule")
        entry["boundary_probes"] = (_read_json(cell.run_dir / "probe.json") or {}).get("boundaries", [])
        entry["stage_boundaries"] = info.get("stage_boundaries", [])
        entry["final_style_loss"] = info.get("final_style_loss")
        entry["music"] = music_metrics_of(sorted((cell.run_dir / "samples").glob("*.mid")))
        for folder, key in (("novelty", "novelty"), ("novelty-unblocked", "novelty_unblocked")):
            novelty = _read_json(cell.run_dir / folder / "novelty.json", NOVELTY_SCHEMA)
            if novelty is not None:
                entry[key] = {
                    "summary": novelty["summary"],
                    "samples": novelty["samples"],
                    "embedder": novelty["embedder"],
                    "calibration": novelty.get("calibration", {}),
                }
        runs.append(entry)
    done_runs = [entry for entry in runs if entry["status"] == "done"]
    for entry in done_runs:  # best validation losses first: they choose the learning rates
        entry["summary"] = run_summary(entry["curves"], math.nan, budget, entry["run_info"], target)
    selection = select_learning_rates(runs, [arm.name for arm in config.arms])
    chosen = selected_runs(runs, selection)  # each arm at its best learning rate on validation
    baseline = _primary_baseline(config)
    target_info = target_rule(config, chosen, baseline)  # the baseline arm at its chosen rate
    for entry in done_runs:
        info = entry.pop("run_info")
        entry["summary"] = run_summary(entry["curves"], target_info["loss"], budget, info, target)
        if "novelty" in entry:
            entry["summary"]["copy_rate"] = entry["novelty"]["summary"]["copy_rate"]
            entry["summary"]["rho_median"] = entry["novelty"]["summary"]["rho_median"]
        if "novelty_unblocked" in entry:
            entry["summary"]["copy_rate_unblocked"] = entry["novelty_unblocked"]["summary"]["copy_rate"]
    heldout = _heldout_music(experiment, out_dir)
    arms: dict[str, Any] = {}
    for arm in config.arms:
        done = [r for r in chosen if r["arm"] == arm.name and r["status"] == "done"]
        summaries: dict[str, Any] = {}
        for metric in SUMMARY_METRICS:
            values = [r["summary"].get(metric, math.nan) for r in done]
            summaries[metric] = mean_ci(values)
        summaries["tokens_to_target"] = {
            **censored_summary(
                [r["summary"]["tokens_to_target"] for r in done], [r["summary"]["reached_target"] for r in done], budget
            ),
            "target_loss": target_info["loss"],
        }
        arms[arm.name] = {
            "pacing": arm.pacing,
            "order": arm.order,
            "traits": arm.options.traits(),
            "n_done": len(done),
            "n_failed": sum(1 for r in chosen if r["arm"] == arm.name and r["status"] not in ("done", "missing")),
            "n_unfinished": sum(1 for r in chosen if r["arm"] == arm.name and r["status"] == "missing"),
            "lr": selection["arms"][arm.name]["chosen"],
            "tokens": _arm_tokens(done),
            "summary": summaries,
            "music": _arm_music([r["music"] for r in done], heldout),
            "novelty": _arm_novelty(done, out_dir, config.novelty),
            "probe": arm_probe(done, out_dir),
            "mastery": arm_mastery(done, config.train.tokens_per_step),
        }
    comparisons = _comparisons(chosen, config)
    n_val = _target_val_pieces(out_dir)
    adaptations = adaptation_results(experiment, out_dir, chosen) or []
    claims = claim_results(config, chosen, adaptations)
    results = {
        "experiment": config.name,
        "description": config.description,
        "experiment_file": experiment.source,
        "config": config.model_dump(mode="json"),
        "curriculum": experiment.curriculum.model_dump(mode="json"),
        "target_stage": target,
        "target_loss": target_info["loss"],
        "target": target_info,
        "budget_tokens": budget,
        "baseline_arm": baseline,
        "baseline_arms": _baseline_arms(config),
        "n_val_pieces_target": n_val,
        "runs": runs,
        "heldout_music": heldout,
        "arms": arms,
        "lr_selection": selection,
        "comparisons": comparisons,
        "warnings": small_sample_warnings(arms, comparisons, n_val) + [w for a in adaptations for w in a["warnings"]],
        "adaptation": adaptations[0] if adaptations else None,
        **({"adaptations": adaptations} if len(adaptations) > 1 else {}),
        "claims": claims,
        "versions": _versions(),
    }
    write_json(out_dir / "results.json", results)
    read_back = read_json(out_dir / "results.json", {"runs": list, "arms": dict})  # what every reader sees: JSON's values
    assert read_back is not None
    return read_back


def _target_val_pieces(out_dir: Path) -> int | None:
    runs = sorted((out_dir / "runs").glob("*/run.json"))
    if not runs:
        return None
    prepared = _eval_prepared(runs[0])
    return len(prepared.pieces(prepared.target_stage, "val"))


def small_sample_warnings(arms: dict[str, Any], comparisons: list[dict[str, Any]], n_val_pieces: int | None) -> list[str]:
    """One plain sentence for every sample too small to carry the number printed from it."""
    out = []
    seeds = sorted({arm["n_done"] for arm in arms.values()})
    if seeds and seeds[0] < MIN_SEEDS_FOR_CI:
        out.append(
            f"{seeds[0]} finished seed(s) per arm: too few for an interval (need {MIN_SEEDS_FOR_CI}); "
            "the report shows each seed's value instead"
        )
    if comparisons and all(row["too_few_for_p"] for row in comparisons):
        pairs = max(row["n_pairs"] for row in comparisons)
        out.append(f"{pairs} paired seed(s): no p-values (they need {MIN_PAIRS_FOR_P} seeds or more)")
    if n_val_pieces is not None and n_val_pieces < MIN_VAL_PIECES:
        out.append(
            f"the target stage has {n_val_pieces} validation piece(s) (fewer than {MIN_VAL_PIECES}): "
            "its validation loss is the loss of a handful of tunes"
        )
    for name, arm in arms.items():
        novelty = arm.get("novelty") or {}
        if novelty and novelty.get("n_samples", 0) < MIN_CT_SAMPLES:
            out.append(
                f"arm {name!r}: {novelty['n_samples']} scored samples (fewer than {MIN_CT_SAMPLES}): "
                "C_T and the copy rate rest on too few samples"
            )
        pooled = novelty.get("data_copying_C_T_pooled") or {}
        if novelty and pooled.get("cells", 0) < 2:
            out.append(f"arm {name!r}: C_T rests on {pooled.get('cells', 0)} cell(s): it measures one region of the data at most")
    return out


def _arm_tokens(done: list[dict]) -> dict[str, Any]:
    """Mean over seeds of the real tokens an arm trained on: all, the target stage's, per stage."""
    tokens = [r["tokens"] for r in done if r.get("tokens", {}).get("tokens_seen") is not None]
    if not tokens:
        return {}
    stages = sorted({s for t in tokens for s in t["stage_tokens"]})
    return {
        "tokens_seen": float(np.mean([t["tokens_seen"] for t in tokens])),
        "target_tokens_seen": float(np.mean([t["target_tokens_seen"] for t in tokens])),
        "stage_tokens": {s: float(np.mean([t["stage_tokens"].get(s, 0) for t in tokens])) for s in stages},
    }


def _arm_novelty(done: list[dict], out_dir: Path, settings: NoveltySection) -> dict[str, Any]:
    """The arm's samples pooled over seeds: copy rates with and without copy-blocking, C_T of the
    pooled samples (more cells than one seed's), and how far the embedder's flag can be trusted."""
    scored = [r for r in done if "novelty" in r]
    samples = [s for r in scored for s in r["novelty"]["samples"]]
    if not samples:
        return {}
    unblocked = [s for r in done if "novelty_unblocked" in r for s in r["novelty_unblocked"]["samples"]]
    calibrations = [r["novelty"].get("calibration", {}) for r in scored]
    pooled = _pooled_copying([out_dir / r["run_dir"] / "samples" for r in scored], out_dir / scored[0]["run_dir"], settings)
    return {
        "n_samples": len(samples),
        "copy_rate": float(np.mean([s["flagged"] for s in samples])),
        "n_samples_unblocked": len(unblocked),
        "copy_rate_unblocked": float(np.mean([s["flagged"] for s in unblocked])) if unblocked else math.nan,
        "rho": [s["rho"] for s in samples],
        "longest_copied_notes": [s["copied_span"]["notes"] for s in samples],
        "longest_copied_bars": [s["copied_span"]["bars"] for s in samples],
        "longest_copied_bars_unblocked": [s["copied_span"]["bars"] for s in unblocked],
        "data_copying_C_T": [r["novelty"]["summary"].get("data_copying_C_T") for r in scored],
        "data_copying_C_T_pooled": pooled,
        "fresh_false_flag_rate": [r["novelty"]["summary"].get("fresh_false_flag_rate") for r in scored],
        "rho_flag": [c.get("rho_flag") for c in calibrations],
        "rho_flag_reason": calibrations[0].get("rho_flag_reason") if calibrations else None,
        "separation_auc": [c.get("separation_auc") for c in calibrations],
        "embedders": sorted({r["novelty"]["embedder"]["spec"] for r in scored}),
        "weights_real": all(r["novelty"]["embedder"].get("weights_real") for r in scored),
    }


def _pooled_copying(sample_dirs: list[Path], against: Path, settings: NoveltySection) -> dict[str, Any]:
    from curricmusic.novelty.pipeline import copying_of_sets

    try:
        return copying_of_sets([d for d in sample_dirs if d.is_dir()], against, settings)
    except Exception as exc:  # noqa: BLE001 - a missing embedder or bank must not lose the results
        return {"C_T": math.nan, "cells": 0, "error": f"{type(exc).__name__}: {exc}"}


def comparison_pairs(config: ExperimentConfig) -> list[tuple[str, str]]:
    """(arm, baseline): every arm against the ``random`` arm, and every arm that an order control
    (``random-matched``) matches against that arm (the same tokens of every stage: order alone
    differs)."""
    names = [a.name for a in config.arms]
    pairs = [(n, BASELINE_ARM) for n in names if n != BASELINE_ARM] if BASELINE_ARM in names else []
    pairs += [(a.match, a.name) for a in config.arms if a.options.order_control and a.match is not None]
    return pairs


def _comparisons(runs: list[dict], config: ExperimentConfig) -> list[dict[str, Any]]:
    """Each pair of :func:`comparison_pairs`, paired by seed: difference and ratio with
    t-intervals, d_z, and p-values (from 5 pairs on) Holm-corrected over the whole family.
    Tokens to target compare the censored times (a seed that never arrives counts as the budget)."""
    by = {(r["arm"], r["seed"]): r for r in runs if r["status"] == "done"}
    rows = []
    for arm, baseline in comparison_pairs(config):
        seeds = [s for s in config.seeds if (arm, s) in by and (baseline, s) in by]
        for metric, lower_better in SUMMARY_METRICS.items():
            treatment = [by[(arm, s)]["summary"].get(metric, math.nan) for s in seeds]
            control = [by[(baseline, s)]["summary"].get(metric, math.nan) for s in seeds]
            result = paired_effect(treatment, control)
            if result["n_pairs"] == 0:
                continue
            rows.append(
                {"arm": arm, "baseline": baseline, "metric": metric, "lower_is_better": lower_better, "seeds": seeds, **result}
            )
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
    return rows


def _versions() -> dict[str, str]:
    out = {}
    for package in ("curricmusic", "torch", "miditok", "symusic", "music21", "transformers", "numpy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out
