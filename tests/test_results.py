"""Aggregating run folders into results: exact values on a tiny synthetic experiment folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from curricmusic.config import load_experiment
from curricmusic.experiment.results import aggregate, run_curves, run_summary
from curricmusic.experiment.runner import cells_of
from tests.conftest import REPO

DEBUG = REPO / "experiments" / "debug.toml"  # arms curriculum and random, seeds 0 and 1, target loss 4.0


def write_run(run_dir: Path, target_losses: list[float], status: str = "done") -> None:
    """A run folder as training and the runner leave it: metrics.jsonl and cell.json."""
    run_dir.mkdir(parents=True)
    rows = []
    for i, loss in enumerate(target_losses):
        rows.append({"step": 12 * i, "tokens_seen": 1000 * i, "lr": 0.001, "stage_weights": {"scales": 1.0},
                     "current_stage": "scales", "train_loss": loss + 0.5})  # fmt: skip
        rows.append({**rows[-1], "val_loss": {"chorales": loss, "scales": loss - 1.0}})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if "val_loss" in r))
    cell = {"status": status} if status == "done" else {"status": status, "error": "RuntimeError: boom"}
    (run_dir / "cell.json").write_text(json.dumps(cell))


def test_run_curves_and_summary_of_one_run(tmp_path):
    write_run(tmp_path / "run", [6.0, 5.0, 3.0])
    curves = run_curves(tmp_path / "run", "chorales")
    assert curves["eval_tokens"] == [0, 1000, 2000] and curves["eval_steps"] == [0, 12, 24]
    assert curves["val_target"] == [6.0, 5.0, 3.0] and curves["val"]["scales"] == [5.0, 4.0, 2.0]
    summary = run_summary(curves, target_loss=4.0)
    assert summary["final_val_target"] == 3.0
    assert summary["auc_val_target"] == pytest.approx(((6 + 5) / 2 + (5 + 3) / 2) / 2)  # mean height
    assert summary["tokens_to_target"] == 2000.0 and summary["steps_to_target"] == 24.0
    assert summary["final_val"] == {"chorales": 3.0, "scales": 2.0}
    assert math.isnan(run_summary(curves, target_loss=1.0)["tokens_to_target"])  # never reached


@pytest.fixture
def folder(tmp_path):
    experiment = load_experiment(DEBUG)
    cells = cells_of(experiment, tmp_path)
    losses = {("curriculum", 0): [6.0, 4.0, 3.0], ("curriculum", 1): [6.0, 5.0, 3.5],
              ("random", 0): [6.0, 5.0, 4.5], ("random", 1): [6.0, 5.5, 5.0]}  # fmt: skip
    for cell in cells:
        write_run(cell.run_dir, losses[(cell.arm, cell.seed)])
    return experiment, tmp_path, cells


def test_aggregate_summarises_every_arm_and_compares_with_random(folder):
    experiment, out, cells = folder
    results = aggregate(experiment, out, cells)
    assert (out / "results.json").is_file()
    assert [(r["arm"], r["seed"], r["status"]) for r in results["runs"]] == [
        ("curriculum", 0, "done"), ("random", 0, "done"), ("curriculum", 1, "done"), ("random", 1, "done"),
    ]  # fmt: skip
    final = results["arms"]["curriculum"]["summary"]["final_val_target"]
    assert final["values"] == [3.0, 3.5] and final["mean"] == pytest.approx(3.25)
    assert final["ci_low"] >= 3.0 and final["ci_high"] <= 3.5
    reached = results["arms"]["curriculum"]["summary"]["tokens_to_target"]
    assert reached["values"] == [1000.0, 2000.0] and reached["mean"] == pytest.approx(1500.0)
    assert results["arms"]["random"]["summary"]["final_val_target"]["values"] == [4.5, 5.0]
    assert results["arms"]["random"]["n_done"] == 2 and results["arms"]["random"]["n_failed"] == 0
    row = next(r for r in results["comparisons"] if r["metric"] == "final_val_target")
    assert (row["arm"], row["baseline"], row["n_pairs"]) == ("curriculum", "random", 2)
    assert row["mean_diff"] == pytest.approx(((3.0 - 4.5) + (3.5 - 5.0)) / 2)
    assert row["p_value"] is None  # equal differences: no variance, no t-test (NaN is null in JSON)
    assert results["baseline_arm"] == "random" and results["target_stage"] == "chorales"


def test_a_failed_cell_is_listed_and_left_out_of_the_means(folder):
    experiment, out, cells = folder
    failed = next(c for c in cells if c.arm == "random" and c.seed == 1)
    (failed.run_dir / "cell.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom"}))
    results = aggregate(experiment, out, cells)
    entry = next(r for r in results["runs"] if r["arm"] == "random" and r["seed"] == 1)
    assert entry == {"arm": "random", "seed": 1, "run_dir": "runs/random-seed1", "status": "failed", "error": "RuntimeError: boom"}
    arm = results["arms"]["random"]
    assert arm["n_done"] == 1 and arm["n_failed"] == 1
    assert arm["summary"]["final_val_target"]["values"] == [4.5]
    assert arm["summary"]["final_val_target"]["mean"] == arm["summary"]["final_val_target"]["ci_low"] == 4.5
    row = next(r for r in results["comparisons"] if r["metric"] == "final_val_target")
    assert row["n_pairs"] == 1 and row["mean_diff"] == pytest.approx(-1.5)


def test_novelty_scores_of_a_run_reach_its_summary_and_its_arm(folder):
    experiment, out, cells = folder
    cell = next(c for c in cells if c.arm == "curriculum" and c.seed == 0)
    samples = [{"rho": 0.5, "flagged": True, "copied_span": {"notes": 9, "bars": 2.0}},
               {"rho": 1.5, "flagged": False, "copied_span": {"notes": 3, "bars": 0.5}}]  # fmt: skip
    report = {"summary": {"copy_rate": 0.5, "rho_median": 1.0, "data_copying_C_T": -0.2},
              "samples": samples, "embedder": {"spec": "symbolic", "weights_real": False}}  # fmt: skip
    (cell.run_dir / "novelty").mkdir()
    (cell.run_dir / "novelty" / "novelty.json").write_text(json.dumps(report))
    results = aggregate(experiment, out, cells)
    entry = next(r for r in results["runs"] if r["arm"] == "curriculum" and r["seed"] == 0)
    assert entry["summary"]["copy_rate"] == 0.5 and entry["summary"]["rho_median"] == 1.0
    novelty = results["arms"]["curriculum"]["novelty"]
    assert novelty["n_samples"] == 2 and novelty["copy_rate"] == 0.5 and novelty["rho"] == [0.5, 1.5]
    assert novelty["longest_copied_notes"] == [9, 3] and novelty["embedders"] == ["symbolic"]
    assert novelty["weights_real"] is False
    assert results["arms"]["random"]["novelty"] == {}
