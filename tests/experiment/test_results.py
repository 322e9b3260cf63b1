"""Aggregating run folders into results: exact values on a tiny synthetic experiment folder.

The folder is written file by file as training and the runner leave it (``metrics.jsonl``,
``run.json``, ``cell.json``, samples, novelty reports, and a prepared folder's manifest with its
held-out pieces), then read back by the public :func:`aggregate`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from curricmusic.config import load_experiment
from curricmusic.experiment.lr_selection import RULE
from curricmusic.experiment.results import aggregate, music_metrics_of, run_curves, run_summary
from curricmusic.experiment.runner import cells_of
from tests.conftest import REPO
from tests.helpers import melody_midi

EXPERIMENT = """
name = "tiny"
description = "Three arms on the debug curriculum."
curriculum = "{curriculum}"
seeds = {seeds}

[model]
size = "tiny"
d_model = 64
n_layers = 2
n_heads = 2

[train]
tokens = 24576          # 48 steps of 8 windows x 64 tokens
seq_len = 64
batch_size = 8
lr = {train_lr}
eval_every = 12

[[arms]]
name = "curriculum"
pacing = "fixed"
stage_fractions = [0.2, 0.2, 0.2]
lr = [1e-3, 3e-3]

[[arms]]
name = "random"
pacing = "random"

[[arms]]
name = "matched"
pacing = "random-matched"
match = "curriculum"

[generate]
n = 2
max_bars = 4

[novelty]
embedder = "audio-features"
"""
BUDGET = 24576
EVAL_TOKENS = [0, 6144, 12288, 18432, 24576]  # evaluations at steps 0, 12, 24, 36, 48
STAGES = ["scales", "hanon", "etudes", "chorales"]  # the debug curriculum; chorales is the target

# (arm, lr) -> per seed: target-stage validation loss at EVAL_TOKENS. With seeds 0 and 1 the
# target is the random arm's mean at half the budget: (5.0 + 5.4) / 2 = 5.2.
LOSSES = {
    ("curriculum", 1e-3): [[6.0, 5.0, 4.2, 3.8, 3.9], [6.0, 5.6, 5.1, 4.5, 4.4], [6.0, 5.3, 4.8, 4.2, 4.1],
                           [6.0, 5.1, 4.6, 4.1, 4.0], [6.0, 5.5, 4.9, 4.4, 4.3]],
    ("curriculum", 3e-3): [[6.0, 5.8, 5.6, 5.5, 5.5], [6.0, 5.9, 5.7, 5.6, 5.5], [6.0, 5.8, 5.7, 5.6, 5.6],
                           [6.0, 5.9, 5.8, 5.7, 5.6], [6.0, 5.9, 5.8, 5.6, 5.5]],
    ("random", 1e-3): [[6.0, 5.5, 5.0, 4.6, 4.4], [6.0, 5.7, 5.4, 5.0, 4.8], [6.0, 5.6, 5.1, 4.9, 4.7],
                       [6.0, 5.5, 5.15, 4.8, 4.6], [6.0, 5.8, 5.35, 5.0, 4.9]],
    ("matched", 1e-3): [[6.0, 5.4, 5.1, 4.9, 4.7], [6.0, 5.9, 5.8, 5.6, 5.3], [6.0, 5.5, 5.0, 4.8, 4.6],
                        [6.0, 5.6, 5.3, 4.9, 4.8], [6.0, 5.7, 5.3, 5.1, 5.0]],
}  # fmt: skip
# real tokens trained on per stage (the random-matched arm takes its curriculum's counts)
CURRICULUM_TOKENS = [{"scales": 4096, "hanon": 4096, "etudes": 4096, "chorales": 12288},
                     {"scales": 4096, "hanon": 4096, "etudes": 4608, "chorales": 11776}]  # fmt: skip
RANDOM_TOKENS = {"scales": 8192, "hanon": 4096, "etudes": 6144, "chorales": 6144}
TEST_LOSS_3E3 = 3.0  # better than any other test loss: the learning rate must still be chosen on validation


def losses_of(arm: str, lr: float, seed: int) -> list[float]:
    """LOSSES; an arm without a curve at ``lr`` (a sweep in [train]) is 0.5 worse there."""
    if (arm, lr) in LOSSES:
        return LOSSES[(arm, lr)][seed]
    return [round(v + 0.5, 6) for v in LOSSES[(arm, 1e-3)][seed]]


def stage_tokens(arm: str, seed: int) -> dict[str, int]:
    return RANDOM_TOKENS if arm == "random" else CURRICULUM_TOKENS[seed % 2]


def write_prepared(root: Path, n_val: int, n_test: int) -> Path:
    """The part of a prepared folder that aggregation reads: the manifest and held-out MIDI files."""
    splits = {"train": {"pieces": []}}
    for split, n in (("val", n_val), ("test", n_test)):
        splits[split] = {"pieces": []}
        for i in range(n):
            path = f"midi/chorales/{split}{i}.mid"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(melody_midi(100 * (split == "test") + i, n_notes=32))
            splits[split]["pieces"].append({"id": f"chorales/{split}{i}", "path": path})
    manifest = {"format": 1, "target_stage": "chorales", "tokenizer": {}, "stages": [{"name": "chorales", "splits": splits}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def write_run(
    run_dir: Path,
    losses: list[float],
    tokens: dict[str, int],
    prepared: Path,
    lr: float = 1e-3,
    test_loss: float | None = None,
    seed: int = 0,
) -> None:
    """A finished run folder as training and the runner leave it: metrics.jsonl (a train-only row
    between evaluations), run.json (losses per stage, token counts) and cell.json."""
    run_dir.mkdir(parents=True)
    total = sum(tokens.values())

    def row(step: int, seen: int, loss: float) -> dict:
        share = seen / total
        return {"step": step, "tokens_seen": seen, "target_tokens_seen": round(tokens["chorales"] * share),
                "stage_tokens": {s: round(n * share) for s, n in tokens.items()}, "lr": lr,
                "stage_weights": {s: 0.25 for s in STAGES}, "current_stage": "scales" if seen < 9216 else "chorales",
                "train_loss": loss}  # fmt: skip

    rows = []
    for i, (seen, loss) in enumerate(zip(EVAL_TOKENS, losses, strict=True)):
        if i:  # a logged step between two evaluations
            rows.append(row(12 * i - 6, seen - 3072, loss + 0.6))
        rows.append(row(12 * i, seen, loss + 0.5) | {"val_loss": {s: loss - 0.5 * (3 - k) for k, s in enumerate(STAGES)}})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    info = {"seed": seed, "config": {"train": {"lr": lr}}, "lr": lr, "prepared": str(prepared), "eval_prepared": str(prepared), "target_stage": "chorales",
            "status": "finished", "tokens_seen": total, "target_tokens_seen": tokens["chorales"], "stage_tokens": tokens,
            "final_val_loss": val[-1], "best_val_loss": {s: min(v[s] for v in val) for s in STAGES},
            "test_loss": {s: (losses[-1] + 0.2 if test_loss is None else test_loss) - 0.5 * (3 - k)
                          for k, s in enumerate(STAGES)}}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "cell.json").write_text(json.dumps({"status": "done"}))


def test_run_curves_and_summary_of_one_run(tmp_path):
    tokens = CURRICULUM_TOKENS[0]
    write_run(tmp_path / "run", [6.0, 5.0, 3.0, 3.2, 3.1], tokens, tmp_path)
    curves = run_curves(tmp_path / "run", "chorales")
    assert curves["eval_tokens"] == EVAL_TOKENS and curves["eval_steps"] == [0, 12, 24, 36, 48]
    assert curves["eval_target_tokens"] == [0, 3072, 6144, 9216, 12288]  # half of every batch is the target's
    assert curves["train_tokens"] == [0, 3072, 6144, 9216, 12288, 15360, 18432, 21504, 24576]  # every logged row
    assert curves["train_target_tokens"] == [0, 1536, 3072, 4608, 6144, 7680, 9216, 10752, 12288]
    assert curves["current_stage"] == ["scales"] * 3 + ["chorales"] * 6
    assert curves["val_target"] == [6.0, 5.0, 3.0, 3.2, 3.1] and curves["val"]["scales"] == pytest.approx([4.5, 3.5, 1.5, 1.7, 1.6])
    summary = run_summary(curves, target_loss=4.0, budget=BUDGET)
    assert summary["final_val_target"] == 3.1 and summary["best_val_target"] == 3.0
    assert math.isnan(summary["test_target"])  # no run.json given: no test loss
    assert summary["auc_val_target"] == pytest.approx((5.5 + 4.0 + 3.1 + 3.15) / 4)  # mean height, equal spans
    assert summary["tokens_to_target"] == 12288.0 and summary["reached_target"] is True
    assert summary["steps_to_target"] == 24.0
    assert summary["final_val"] == pytest.approx({"scales": 1.6, "hanon": 2.1, "etudes": 2.6, "chorales": 3.1})
    never = run_summary(curves, target_loss=1.0, budget=BUDGET)
    assert never["tokens_to_target"] == BUDGET and never["reached_target"] is False  # censored at the budget
    assert math.isnan(never["steps_to_target"])
    # best, final and test losses come from run.json ({stage: loss}) when it has them
    info = {"best_val_loss": {"chorales": 2.9, "scales": 1.0}, "final_val_loss": {"chorales": 3.05}, "test_loss": {"chorales": 3.4}}
    from_info = run_summary(curves, 4.0, BUDGET, info, "chorales")
    assert (from_info["best_val_target"], from_info["final_val_target"], from_info["test_target"]) == (2.9, 3.05, 3.4)
    assert from_info["tokens_to_target"] == 12288.0  # the curve still decides when the target was reached


def make_folder(tmp_path: Path, seeds: list[int], n_val: int, train_lr: str = "1e-3") -> tuple:
    path = tmp_path / "tiny.toml"
    path.write_text(EXPERIMENT.format(curriculum=REPO / "curricula" / "debug.toml", seeds=seeds, train_lr=train_lr))
    experiment = load_experiment(path)
    out = tmp_path / "out"
    prepared = write_prepared(tmp_path / "prepared", n_val=n_val, n_test=2)
    cells = cells_of(experiment, out)
    for cell in cells:
        lr = cell.lr or 1e-3
        test_loss = TEST_LOSS_3E3 if lr == 3e-3 else None
        write_run(cell.run_dir, losses_of(cell.arm, lr, cell.seed), stage_tokens(cell.arm, cell.seed), prepared, lr, test_loss, cell.seed)
    return experiment, out, cells, prepared


@pytest.fixture
def folder(tmp_path):
    """Seeds 0 and 1; the curriculum arm sweeps two learning rates; 3 validation pieces."""
    return make_folder(tmp_path, [0, 1], n_val=3)


def cell_of(cells, arm: str, seed: int, lr: float | None = None):
    return next(c for c in cells if c.arm == arm and c.seed == seed and c.lr == lr)


def test_aggregate_summarises_every_arm_and_compares_with_random(folder):
    experiment, out, cells, _ = folder
    results = aggregate(experiment, out, cells)
    assert (out / "results.json").is_file()
    assert [(r["arm"], r["lr"], r["seed"], r["status"]) for r in results["runs"]] == [
        ("curriculum", 1e-3, 0, "done"), ("curriculum", 3e-3, 0, "done"), ("random", 1e-3, 0, "done"), ("matched", 1e-3, 0, "done"),
        ("curriculum", 1e-3, 1, "done"), ("curriculum", 3e-3, 1, "done"), ("random", 1e-3, 1, "done"), ("matched", 1e-3, 1, "done"),
    ]  # fmt: skip
    assert results["baseline_arm"] == "random" and results["baseline_arms"] == ["random", "matched"]
    assert results["target_stage"] == "chorales" and results["budget_tokens"] == BUDGET
    # the target rule, written down: the random arm's mean at half the budget, every seed's value
    assert results["target"] == {
        "loss": pytest.approx(5.2), "source": "rule", "arm": "random", "at_tokens": 12288.0, "per_seed": [5.0, 5.4],
        "rule": "mean validation loss of the 'random' arm on the target stage at 0.5 of the budget (12,288 tokens)",
    }  # fmt: skip
    assert results["target_loss"] == pytest.approx(5.2)

    curriculum = results["arms"]["curriculum"]
    assert (curriculum["n_done"], curriculum["n_failed"], curriculum["lr"]) == (2, 0, 1e-3)
    final = curriculum["summary"]["final_val_target"]
    assert final["values"] == [3.9, 4.4] and final["mean"] == pytest.approx(4.15) and final["too_few"]
    # 2 seeds: no interval in results.json, and the reason instead (the one rule for small samples)
    assert final["ci_low"] is None and final["ci_high"] is None
    assert final["no_interval"] == "2 seeds: a 95% interval needs 3 or more"
    assert curriculum["summary"]["best_val_target"]["values"] == [3.8, 4.4]
    assert curriculum["summary"]["test_target"]["values"] == pytest.approx([4.1, 4.6])  # from run.json
    for name in ("random", "matched"):
        arm = results["arms"][name]
        assert (arm["n_done"], arm["n_failed"], arm["lr"]) == (2, 0, 1e-3)
        assert arm["summary"]["final_val_target"]["values"] == [LOSSES[(name, 1e-3)][s][-1] for s in (0, 1)]
    assert results["arms"]["random"]["pacing"] == "random" and results["arms"]["matched"]["pacing"] == "random-matched"

    # tokens to target: every seed counts, one that never arrives at the budget
    to_target = {name: arm["summary"]["tokens_to_target"] for name, arm in results["arms"].items()}
    assert to_target["curriculum"]["values"] == [6144.0, 12288.0] and to_target["curriculum"]["reached"] == [True, True]
    assert to_target["random"]["values"] == [12288.0, 18432.0] and to_target["random"]["restricted_mean"] == 15360.0
    matched = to_target["matched"]
    assert matched["values"] == [12288.0, BUDGET] and matched["reached"] == [True, False]
    assert (matched["n"], matched["n_reached"], matched["reached_share"]) == (2, 1, 0.5)
    assert matched["restricted_mean"] == matched["mean"] == 18432.0 and matched["km_median"] == 12288.0
    assert matched["budget"] == BUDGET and matched["target_loss"] == pytest.approx(5.2)
    never = next(r for r in results["runs"] if r["arm"] == "matched" and r["seed"] == 1)["summary"]
    assert never["tokens_to_target"] == BUDGET and never["reached_target"] is False and never["steps_to_target"] is None

    # real tokens per arm: mean over the seeds at the chosen learning rate
    assert curriculum["tokens"] == {"tokens_seen": 24576.0, "target_tokens_seen": 12032.0,
                                    "stage_tokens": {"chorales": 12032.0, "etudes": 4352.0, "hanon": 4096.0, "scales": 4096.0}}  # fmt: skip
    assert results["arms"]["matched"]["tokens"] == curriculum["tokens"]
    assert results["arms"]["random"]["tokens"]["target_tokens_seen"] == 6144.0

    # comparisons: every arm against random, and the curriculum against its random-matched twin
    pairs = {(r["arm"], r["baseline"]) for r in results["comparisons"]}
    assert pairs == {("curriculum", "random"), ("matched", "random"), ("curriculum", "matched")}
    assert all(r["seeds"] == [0, 1] and r["n_pairs"] == 2 for r in results["comparisons"])
    assert {r["metric"] for r in results["comparisons"]} == {
        "final_val_target", "best_val_target", "test_target", "auc_val_target", "tokens_to_target",
    }  # fmt: skip  (no novelty scores: no copy-rate rows)
    row = next(r for r in results["comparisons"] if (r["arm"], r["baseline"], r["metric"]) == ("curriculum", "random", "final_val_target"))
    assert row["diff"] == pytest.approx(-0.45) and row["lower_is_better"] is True
    assert row["pairs"] == [[3.9, 4.4], [4.4, 4.8]]  # each seed's values, which the report shows instead
    assert row["ratio"] == pytest.approx(math.sqrt(3.9 / 4.4 * 4.4 / 4.8))  # geometric mean of the ratios
    # 2 pairs: no interval, no d_z, no detectable difference (all rest on a spread 2 seeds cannot give), no p
    for key in ("diff_ci_low", "diff_ci_high", "ratio_ci_low", "ratio_ci_high", "d_z", "detectable_diff"):
        assert row[key] is None, key
    assert row["no_interval"] == "2 seeds: a 95% interval needs 3 or more"
    assert row["p_value"] is None and row["p_holm"] is None and row["too_few_for_p"]  # 2 pairs: no p
    censored = next(r for r in results["comparisons"] if (r["arm"], r["baseline"], r["metric"]) == ("matched", "random", "tokens_to_target"))
    assert censored["diff"] == pytest.approx((0 + (BUDGET - 18432)) / 2)  # the censored seed counts as the budget
    twin = next(r for r in results["comparisons"] if (r["arm"], r["baseline"], r["metric"]) == ("curriculum", "matched", "tokens_to_target"))
    assert twin["diff"] == pytest.approx(((6144 - 12288) + (12288 - BUDGET)) / 2)

    assert results["n_val_pieces_target"] == 3
    assert results["warnings"] == [
        "2 finished seed(s) per arm: too few for an interval (need 3); the report shows each seed's value instead",
        "2 paired seed(s): no p-values (they need 5 seeds or more)",
        "the target stage has 3 validation piece(s) (fewer than 10): its validation loss is the loss of a handful of tunes",
    ]


def test_each_arm_is_summarised_at_its_best_learning_rate_on_validation(folder):
    experiment, out, cells, _ = folder
    results = aggregate(experiment, out, cells)
    selection = results["lr_selection"]
    assert selection["rule"] == RULE
    assert selection["arms"]["curriculum"] == {
        "chosen": 1e-3,
        "candidates": [
            {"lr": 1e-3, "mean_best_val_target": pytest.approx((3.8 + 4.4) / 2), "n_seeds": 2, "n_failed": 0},
            {"lr": 3e-3, "mean_best_val_target": pytest.approx(5.5), "n_seeds": 2, "n_failed": 0},
        ],
    }
    assert selection["arms"]["random"] == {"chosen": 1e-3, "candidates": [{"lr": 1e-3, "mean_best_val_target": pytest.approx(4.6), "n_seeds": 2, "n_failed": 0}]}
    swept = [r for r in results["runs"] if r["arm"] == "curriculum" and r["lr"] == 3e-3]
    assert [r["summary"]["test_target"] for r in swept] == [TEST_LOSS_3E3, TEST_LOSS_3E3]  # better on test, not chosen
    assert [r["run_dir"] for r in swept] == ["runs/curriculum-lr0.003-seed0", "runs/curriculum-lr0.003-seed1"]
    summary = results["arms"]["curriculum"]["summary"]
    assert TEST_LOSS_3E3 not in summary["test_target"]["values"] and summary["final_val_target"]["n"] == 2
    assert all(r["seeds"] == [0, 1] for r in results["comparisons"])  # one run per seed: the chosen rate's


def test_the_target_comes_from_the_baseline_arm_at_its_chosen_learning_rate(tmp_path):
    experiment, out, cells, _ = make_folder(tmp_path, [0, 1], n_val=3, train_lr="[1e-3, 3e-3]")  # every arm sweeps
    results = aggregate(experiment, out, cells)
    assert len(results["runs"]) == 12 and results["lr_selection"]["arms"]["random"]["chosen"] == 1e-3
    assert results["target"]["per_seed"] == [5.0, 5.4]  # not the 3e-3 runs' 5.5 and 5.9
    assert results["target_loss"] == pytest.approx(5.2)
    assert results["arms"]["matched"]["summary"]["tokens_to_target"]["values"] == [12288.0, BUDGET]


def test_held_out_music_is_the_test_split_cut_to_the_samples_bars_and_samples_of_the_chosen_rate(folder):
    experiment, out, cells, prepared = folder
    chosen, other = cell_of(cells, "curriculum", 0, 1e-3), cell_of(cells, "curriculum", 0, 3e-3)
    for run_dir, n in ((chosen.run_dir, 2), (other.run_dir, 1)):
        (run_dir / "samples").mkdir()
        for i in range(n):
            (run_dir / "samples" / f"sample_{i:03d}.mid").write_bytes(melody_midi(10 + i))
    results = aggregate(experiment, out, cells)
    test_pieces = [prepared / "midi" / "chorales" / f"test{i}.mid" for i in range(2)]
    assert results["heldout_music"] == music_metrics_of(test_pieces, n_bars=4)  # [generate] max_bars
    assert results["heldout_music"] != music_metrics_of(test_pieces)  # the pieces are longer than 4 bars
    samples = music_metrics_of(sorted((chosen.run_dir / "samples").glob("*.mid")))
    music = results["arms"]["curriculum"]["music"]
    assert music.keys() == results["heldout_music"].keys()
    for name, entry in music.items():
        assert entry["values"] == samples[name]  # the 3e-3 run's sample is left out
        assert entry["mean"] == pytest.approx(np.mean(samples[name]))
        assert entry["heldout_mean"] == pytest.approx(np.mean(results["heldout_music"][name]))
        assert {"overlap", "kl"} <= entry.keys()
    assert all(entry["values"] == [] for entry in results["arms"]["random"]["music"].values())


def test_a_failed_cell_is_listed_and_left_out_of_the_means(folder):
    experiment, out, cells, _ = folder
    failed = cell_of(cells, "random", 1)
    (failed.run_dir / "cell.json").write_text(json.dumps({"status": "failed", "error": "RuntimeError: boom"}))
    (cell_of(cells, "matched", 1).run_dir / "cell.json").unlink()  # never finished
    results = aggregate(experiment, out, cells)
    entries = [r for r in results["runs"] if r["seed"] == 1 and r["arm"] in ("random", "matched")]
    assert entries == [
        {"arm": "random", "seed": 1, "lr": 1e-3, "run_dir": "runs/random-seed1", "status": "failed", "error": "RuntimeError: boom"},
        {"arm": "matched", "seed": 1, "lr": 1e-3, "run_dir": "runs/matched-seed1", "status": "missing", "error": "not run"},
    ]  # fmt: skip
    random, matched = results["arms"]["random"], results["arms"]["matched"]
    assert (random["n_done"], random["n_failed"], random["n_unfinished"]) == (1, 1, 0)
    assert (matched["n_done"], matched["n_failed"], matched["n_unfinished"]) == (1, 0, 1)  # not failed: not finished
    final = results["arms"]["random"]["summary"]["final_val_target"]
    assert final["values"] == [4.4] and final["mean"] == 4.4 and final["too_few"]
    assert final["ci_low"] is None and final["ci_high"] is None  # one seed: no interval
    # the target comes from the random seeds that finished
    assert results["target"]["per_seed"] == [5.0] and results["target_loss"] == 5.0
    assert results["arms"]["curriculum"]["summary"]["tokens_to_target"]["values"] == [6144.0, 18432.0]
    assert results["arms"]["random"]["summary"]["tokens_to_target"]["n"] == 1
    for row in results["comparisons"]:
        assert row["seeds"] == [0] and row["n_pairs"] == 1
    row = next(r for r in results["comparisons"] if (r["arm"], r["baseline"], r["metric"]) == ("curriculum", "random", "final_val_target"))
    assert row["diff"] == pytest.approx(-0.5) and row["diff_ci_low"] is None
    assert results["warnings"][:2] == [
        "1 finished seed(s) per arm: too few for an interval (need 3); the report shows each seed's value instead",
        "1 paired seed(s): no p-values (they need 5 seeds or more)",
    ]


def test_five_seeds_give_p_values_holm_corrected_and_no_small_sample_warnings(tmp_path):
    experiment, out, cells, _ = make_folder(tmp_path, [0, 1, 2, 3, 4], n_val=10)
    results = aggregate(experiment, out, cells)
    assert results["warnings"] == []
    assert not results["arms"]["curriculum"]["summary"]["final_val_target"]["too_few"]
    rows = results["comparisons"]
    assert all(r["n_pairs"] == 5 and not r["too_few_for_p"] for r in rows)
    row = next(r for r in rows if (r["arm"], r["baseline"], r["metric"]) == ("curriculum", "random", "final_val_target"))
    finals = {arm: [LOSSES[(arm, 1e-3)][s][-1] for s in range(5)] for arm in ("curriculum", "random")}
    assert row["p_value"] == pytest.approx(stats.ttest_rel(finals["curriculum"], finals["random"]).pvalue)
    tested = sorted((r for r in rows if r["p_value"] is not None), key=lambda r: r["p_value"])
    m = len(tested)
    assert m > 1 and tested[0]["p_holm"] == pytest.approx(min(1.0, m * tested[0]["p_value"]))  # over the whole family
    assert all(r["p_holm"] >= r["p_value"] for r in tested)
    assert [r["p_holm"] for r in tested] == sorted(r["p_holm"] for r in tested)  # Holm keeps the order


def test_novelty_scores_with_and_without_blocking_reach_the_run_and_its_arm(folder):
    experiment, out, cells, _ = folder
    cell = cell_of(cells, "curriculum", 0, 1e-3)
    samples = [{"rho": 0.5, "flagged": True, "copied_span": {"notes": 9, "bars": 2.0}},
               {"rho": 1.5, "flagged": False, "copied_span": {"notes": 3, "bars": 0.5}}]  # fmt: skip
    report = {"summary": {"copy_rate": 0.5, "rho_median": 1.0, "data_copying_C_T": -0.2, "fresh_false_flag_rate": 0.1},
              "samples": samples, "embedder": {"spec": "symbolic", "weights_real": False},
              "calibration": {"rho_flag": False, "rho_flag_reason": "probe AUC 0.6 < 0.9", "separation_auc": 0.6}}  # fmt: skip
    unblocked = {**report, "summary": {**report["summary"], "copy_rate": 1.0},
                 "samples": [{**s, "flagged": True, "copied_span": {"notes": 20, "bars": 5.0}} for s in samples]}  # fmt: skip
    for folder_name, content in (("novelty", report), ("novelty-unblocked", unblocked)):
        (cell.run_dir / folder_name).mkdir()
        (cell.run_dir / folder_name / "novelty.json").write_text(json.dumps(content))
    results = aggregate(experiment, out, cells)
    entry = next(r for r in results["runs"] if r["run_dir"] == "runs/curriculum-lr0.001-seed0")
    assert entry["summary"]["copy_rate"] == 0.5 and entry["summary"]["rho_median"] == 1.0
    assert entry["summary"]["copy_rate_unblocked"] == 1.0
    novelty = results["arms"]["curriculum"]["novelty"]
    assert novelty["n_samples"] == 2 and novelty["copy_rate"] == 0.5 and novelty["rho"] == [0.5, 1.5]
    assert novelty["n_samples_unblocked"] == 2 and novelty["copy_rate_unblocked"] == 1.0
    assert novelty["longest_copied_bars"] == [2.0, 0.5] and novelty["longest_copied_bars_unblocked"] == [5.0, 5.0]
    assert novelty["longest_copied_notes"] == [9, 3] and novelty["embedders"] == ["symbolic"]
    assert novelty["data_copying_C_T"] == [-0.2] and novelty["fresh_false_flag_rate"] == [0.1]
    assert novelty["rho_flag"] == [False] and novelty["rho_flag_reason"] == "probe AUC 0.6 < 0.9"
    assert novelty["weights_real"] is False
    # the synthetic prepared folder holds no bank to pool against: the error is recorded, the results kept
    assert novelty["data_copying_C_T_pooled"]["cells"] == 0 and "error" in novelty["data_copying_C_T_pooled"]
    assert results["arms"]["random"]["novelty"] == {}
    summary = results["arms"]["curriculum"]["summary"]
    assert summary["copy_rate"]["values"] == [0.5, None] and summary["copy_rate_unblocked"]["values"] == [1.0, None]
    assert "arm 'curriculum': 2 scored samples (fewer than 30): C_T and the copy rate rest on too few samples" in results["warnings"]
    assert "arm 'curriculum': C_T rests on 0 cell(s): it measures one region of the data at most" in results["warnings"]
