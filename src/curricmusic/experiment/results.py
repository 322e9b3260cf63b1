"""Aggregating an experiment folder into ``results.json``: curves, summaries, statistics.

Everything here is computed from files (run metrics, samples, novelty reports), so it does not
matter where a run was trained. ``results.json`` holds no timings or dates: a resumed experiment
gives the same file as an uninterrupted one.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.atomic import write_json
from curricmusic.config import Experiment
from curricmusic.evaluation.stats import (
    area_under_curve,
    bootstrap_ci,
    first_reaching,
    holm,
    paired_comparison,
)
from curricmusic.experiment.lr_selection import select_learning_rates, selected_runs
from curricmusic.training.run_files import read_metrics, read_run

__all__ = ["aggregate", "run_curves", "run_summary", "music_metrics_of", "BASELINE_ARM", "SUMMARY_METRICS"]

BASELINE_ARM = "random"
# summary -> True when lower is better
SUMMARY_METRICS = {
    "final_val_target": True,
    "best_val_target": True,
    "test_target": True,
    "auc_val_target": True,
    "tokens_to_target": True,
    "copy_rate": True,
    "rho_median": False,
}


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
    }


def run_summary(curves: dict[str, Any], target_loss: float | None) -> dict[str, float]:
    tokens, target = curves["eval_tokens"], curves["val_target"]
    finite = [v for v in target if v is not None and math.isfinite(v)]
    summary = {
        "final_val_target": target[-1] if target else math.nan,
        "best_val_target": min(finite) if finite else math.nan,
        "auc_val_target": area_under_curve(tokens, target),
        "final_val": {s: values[-1] for s, values in curves["val"].items() if values},
    }
    if target_loss is not None:
        summary["tokens_to_target"] = first_reaching(tokens, target, target_loss)
        steps = curves["eval_steps"]
        summary["steps_to_target"] = first_reaching(steps, target, target_loss)
    return summary


def music_metrics_of(paths: list[Path]) -> dict[str, list[float]]:
    """Every per-piece musical metric over a list of MIDI files (unreadable files left out)."""
    from symusic import Score

    from curricmusic.evaluation.metrics import PIECE_METRICS, compute_all
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
        for name, value in compute_all(score_notes(score), bar).items():
            values[name].append(value)
    return values


def _heldout_music(experiment: Experiment, out_dir: Path) -> dict[str, list[float]]:
    from curricmusic.data.prepared import PreparedData

    runs = sorted((out_dir / "runs").glob("*/run.json"))
    if not runs:
        return {}
    prepared = PreparedData.open(json.loads(runs[0].read_text())["eval_prepared"])
    target = prepared.target_stage
    pieces = prepared.pieces(target, "test") or prepared.pieces(target, "val")
    return music_metrics_of([prepared.piece_path(p) for p in pieces])


def _arm_music(music_by_seed: list[dict[str, list[float]]], heldout: dict[str, list[float]]) -> dict[str, Any]:
    from curricmusic.evaluation.metrics import kde_kl_divergence, kde_overlap

    out = {}
    for name in heldout:
        values = [v for run in music_by_seed for v in run.get(name, [])]
        finite = [v for v in values if math.isfinite(v)]
        out[name] = {
            "values": values,
            "mean": float(np.mean(finite)) if finite else math.nan,
            "heldout_mean": float(np.nanmean(heldout[name])) if heldout[name] else math.nan,
            "overlap": kde_overlap(values, heldout[name]),
            "kl": kde_kl_divergence(values, heldout[name]),
        }
    return out


def _novelty_of(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "novelty" / "novelty.json"
    return json.loads(path.read_text()) if path.is_file() else None


def aggregate(experiment: Experiment, out_dir: Path, cells) -> dict[str, Any]:
    """Read every cell of the experiment folder and write ``results.json``."""
    config = experiment.config
    target = experiment.curriculum.target
    runs = []
    for cell in cells:
        lr = cell.lr if cell.lr is not None else config.learning_rates(cell.arm)[0]
        entry: dict[str, Any] = {"arm": cell.arm, "seed": cell.seed, "lr": lr, "run_dir": f"runs/{cell.name}"}
        status_file = cell.run_dir / "cell.json"
        status = json.loads(status_file.read_text()) if status_file.is_file() else {"status": "missing"}
        entry["status"] = status["status"]
        if status["status"] != "done":
            entry["error"] = status.get("error", "not run")
            runs.append(entry)
            continue
        curves = run_curves(cell.run_dir, target)
        info = read_run(cell.run_dir)
        entry["lr"] = info.get("lr", entry["lr"])
        entry["curves"] = curves
        entry["summary"] = run_summary(curves, config.target_loss)
        entry["summary"]["test_target"] = info.get("test_loss", {}).get(target, math.nan)
        entry["heldout"] = {key: info.get(key) for key in ("best_val_loss", "final_val_loss", "test_loss")}
        entry["tokens"] = {key: info.get(key) for key in ("tokens_seen", "target_tokens_seen", "stage_tokens")}
        entry["music"] = music_metrics_of(sorted((cell.run_dir / "samples").glob("*.mid")))
        novelty = _novelty_of(cell.run_dir)
        if novelty is not None:
            entry["novelty"] = {"summary": novelty["summary"], "samples": novelty["samples"], "embedder": novelty["embedder"]}
            entry["summary"]["copy_rate"] = novelty["summary"]["copy_rate"]
            entry["summary"]["rho_median"] = novelty["summary"]["rho_median"]
        runs.append(entry)
    heldout = _heldout_music(experiment, out_dir)
    selection = select_learning_rates(runs, [arm.name for arm in config.arms])
    chosen = selected_runs(runs, selection)  # each arm at its best learning rate on validation
    arms: dict[str, Any] = {}
    for arm in config.arms:
        done = [r for r in chosen if r["arm"] == arm.name and r["status"] == "done"]
        summaries = {}
        for metric in SUMMARY_METRICS:
            values = [r["summary"].get(metric, math.nan) for r in done]
            mean, low, high = bootstrap_ci(values, seed=0)
            summaries[metric] = {"mean": mean, "ci_low": low, "ci_high": high, "values": values}
        arms[arm.name] = {
            "pacing": arm.pacing,
            "order": arm.order,
            "n_done": len(done),
            "n_failed": sum(1 for r in chosen if r["arm"] == arm.name and r["status"] != "done"),
            "lr": selection["arms"][arm.name]["chosen"],
            "tokens": _arm_tokens(done),
            "summary": summaries,
            "music": _arm_music([r["music"] for r in done], heldout),
            "novelty": _arm_novelty(done),
        }
    comparisons = _comparisons(chosen, config)
    results = {
        "experiment": config.name,
        "description": config.description,
        "experiment_file": experiment.source,
        "config": config.model_dump(mode="json"),
        "curriculum": experiment.curriculum.model_dump(mode="json"),
        "target_stage": target,
        "target_loss": config.target_loss,
        "baseline_arm": BASELINE_ARM if any(a.name == BASELINE_ARM for a in config.arms) else None,
        "runs": runs,
        "lr_selection": selection,
        "heldout_music": heldout,
        "arms": arms,
        "comparisons": comparisons,
        "versions": _versions(),
    }
    write_json(out_dir / "results.json", results)
    return json.loads((out_dir / "results.json").read_text())


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


def _arm_novelty(done: list[dict]) -> dict[str, Any]:
    samples = [s for r in done if "novelty" in r for s in r["novelty"]["samples"]]
    if not samples:
        return {}
    statistics = [r["novelty"]["summary"].get("data_copying_C_T") for r in done if "novelty" in r]
    embedders = {r["novelty"]["embedder"]["spec"] for r in done if "novelty" in r}
    return {
        "n_samples": len(samples),
        "copy_rate": float(np.mean([s["flagged"] for s in samples])),
        "rho": [s["rho"] for s in samples],
        "longest_copied_notes": [s["copied_span"]["notes"] for s in samples],
        "longest_copied_bars": [s["copied_span"]["bars"] for s in samples],
        "data_copying_C_T": statistics,
        "embedders": sorted(embedders),
        "weights_real": all(r["novelty"]["embedder"].get("weights_real") for r in done if "novelty" in r),
    }


def comparison_pairs(config) -> list[tuple[str, str]]:
    """(arm, baseline): every arm against the random arm, and every arm that a ``random-matched``
    arm matches against that arm (the same tokens of every stage: order alone differs)."""
    names = [a.name for a in config.arms]
    pairs = [(n, BASELINE_ARM) for n in names if n != BASELINE_ARM] if BASELINE_ARM in names else []
    pairs += [(a.match, a.name) for a in config.arms if a.pacing == "random-matched"]
    return pairs


def _comparisons(runs: list[dict], config) -> list[dict[str, Any]]:
    """Each pair of :func:`comparison_pairs`, paired by seed, Holm-corrected over the whole family."""
    by = {(r["arm"], r["seed"]): r for r in runs if r["status"] == "done"}
    rows = []
    for arm, baseline in comparison_pairs(config):
        for metric, lower_better in SUMMARY_METRICS.items():
            seeds = [s for s in config.seeds if (arm, s) in by and (baseline, s) in by]
            treatment = [by[(arm, s)]["summary"].get(metric, math.nan) for s in seeds]
            control = [by[(baseline, s)]["summary"].get(metric, math.nan) for s in seeds]
            result = paired_comparison(treatment, control)
            rows.append({"arm": arm, "baseline": baseline, "metric": metric, "lower_is_better": lower_better, **result})
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
