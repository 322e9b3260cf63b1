"""A learning-rate sweep: a cell per (arm, learning rate, seed), each arm reported at its best
learning rate on validation, by the rule written into results.json."""

from __future__ import annotations

import math

import pytest

from curricmusic.config import load_experiment
from curricmusic.experiment.lr_selection import RULE, select_learning_rates, selected_runs
from curricmusic.experiment.runner import cells_of, run_experiment
from tests.conftest import REPO


def run(arm, lr, seed, best, status="done"):
    entry = {"arm": arm, "lr": lr, "seed": seed, "status": status}
    if status == "done":
        entry["summary"] = {"best_val_target": best}
    return entry


def test_each_arm_gets_the_learning_rate_with_the_lowest_mean_best_validation_loss():
    runs = [
        run("a", 1e-3, 0, 2.0), run("a", 1e-3, 1, 2.2),  # mean 2.1
        run("a", 3e-3, 0, 1.9), run("a", 3e-3, 1, 2.1),  # mean 2.0: chosen
        run("b", 1e-3, 0, 1.5), run("b", 3e-3, 0, 1.5),  # a tie: the smaller rate
    ]  # fmt: skip
    selection = select_learning_rates(runs, ["a", "b"])
    assert selection["rule"] == RULE and "test loss is never used" in RULE
    assert selection["arms"]["a"]["chosen"] == 3e-3 and selection["arms"]["b"]["chosen"] == 1e-3
    a = {c["lr"]: c for c in selection["arms"]["a"]["candidates"]}
    assert a[1e-3]["mean_best_val_target"] == pytest.approx(2.1) and a[3e-3]["n_seeds"] == 2
    kept = selected_runs(runs, selection)
    assert [(r["arm"], r["lr"], r["seed"]) for r in kept] == [("a", 3e-3, 0), ("a", 3e-3, 1), ("b", 1e-3, 0)]


def test_a_learning_rate_with_a_failed_seed_does_not_win_on_the_seeds_that_survived():
    runs = [run("a", 1e-3, 0, 2.0), run("a", 1e-3, 1, 2.0), run("a", 3e-3, 0, 1.0), run("a", 3e-3, 1, None, "failed")]
    selection = select_learning_rates(runs, ["a"])
    assert selection["arms"]["a"]["chosen"] == 1e-3
    assert {c["lr"]: c["n_failed"] for c in selection["arms"]["a"]["candidates"]} == {1e-3: 0, 3e-3: 1}
    nothing = select_learning_rates([run("a", 1e-3, 0, math.nan)], ["a"])
    assert nothing["arms"]["a"]["chosen"] == 1e-3  # nothing finite: the only rate, reported as such


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    text = (REPO / "experiments" / "debug.toml").read_text()
    text = text.replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
    text = text[: text.index("[adapt]")]  # the sweep is of pretraining; the adaptation phase plays no part
    text = text.replace("seeds = [0, 1]", "seeds = [0]").replace("lr = 1e-3", "lr = [1e-4, 3e-3]")
    text = text.replace("[generate]\nn = 2", "[generate]\nn = 0")
    path = folder / "sweep.toml"
    path.write_text(text)
    experiment = load_experiment(path)
    return experiment, run_experiment(experiment, folder / "out", show_progress=False), folder / "out"


def test_a_sweep_trains_a_cell_per_learning_rate_and_reports_each_arm_at_its_best(sweep):
    experiment, results, out = sweep
    names = sorted(cell.name for cell in cells_of(experiment, out))
    assert names == ["curriculum-lr0.0001-seed0", "curriculum-lr0.003-seed0", "random-lr0.0001-seed0", "random-lr0.003-seed0"]
    assert {(r["arm"], r["lr"]) for r in results["runs"]} == {(a, lr) for a in ("curriculum", "random") for lr in (1e-4, 3e-3)}
    for arm in ("curriculum", "random"):
        entry = results["lr_selection"]["arms"][arm]
        best = min(entry["candidates"], key=lambda c: c["mean_best_val_target"])
        assert entry["chosen"] == best["lr"] == results["arms"][arm]["lr"]
        chosen_run = next(r for r in results["runs"] if r["arm"] == arm and r["lr"] == entry["chosen"])
        summary = results["arms"][arm]["summary"]
        assert summary["best_val_target"]["values"] == [chosen_run["summary"]["best_val_target"]]
        assert summary["test_target"]["values"] == [chosen_run["summary"]["test_target"]]
        assert math.isfinite(chosen_run["summary"]["test_target"])
    assert results["lr_selection"]["rule"] == RULE


def test_an_arm_matched_by_random_matched_is_compared_with_it():
    from curricmusic.experiment.results import comparison_pairs

    experiment = load_experiment(REPO / "experiments" / "quickstart.toml")
    assert comparison_pairs(experiment.config) == [
        ("pedagogy", "random"),
        ("random-matched", "random"),
        ("pedagogy", "random-matched"),  # the same tokens of every stage: order alone differs
    ]
