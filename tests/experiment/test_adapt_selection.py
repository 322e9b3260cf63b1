"""The adaptation learning rate: chosen per model on the style's validation split by the rule the
experiment file writes, the same rule for every model (from-scratch included), never on the test
split; and the learning-speed figures of one run, exactly, on a tiny curve."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from curricmusic.config.adapt import AdaptLRRule
from curricmusic.evaluation.stats import interpolated_time_to_target
from curricmusic.experiment.adapt_measures import adaptation_summary, gap_closed
from curricmusic.experiment.adapt_results import select_adaptation_rates

MODELS = ["pedagogy", "random", "scratch"]
RATES = [1e-3, 3e-3, 1e-2]
SHOTS = [8, 32]


def runs(seed: int = 0) -> list[dict]:
    """Every (model, shots, rate, seed) run with random validation and test figures."""
    rng = np.random.default_rng(seed)
    out = []
    for model, k, lr, s in itertools.product(MODELS, SHOTS, RATES, range(5)):
        summary = {name: float(rng.uniform(1, 4)) for name in ("auc_val", "final_val", "best_val", "test")}
        out.append({"model": model, "shots": k, "lr": lr, "seed": s, "status": "done", "summary": summary})
    return out


def best_by_hand(entries: list[dict], model: str, k: int | None, metric: str) -> float:
    """The rate with the lowest mean validation figure, computed directly."""
    means = {}
    for lr in RATES:
        mine = [r for r in entries if r["model"] == model and r["lr"] == lr and (k is None or r["shots"] == k)]
        if k is None:  # mean over shot sizes of each size's mean over seeds
            means[lr] = np.mean([np.mean([r["summary"][metric] for r in mine if r["shots"] == size]) for size in SHOTS])
        else:
            means[lr] = np.mean([r["summary"][metric] for r in mine])
    return min(means, key=lambda lr: (means[lr], lr))


@pytest.mark.parametrize(("metric", "per_shots"), [("auc_val", True), ("final_val", True), ("best_val", False)])
def test_each_model_gets_the_rate_with_the_lowest_mean_validation_figure_by_one_rule(metric, per_shots):
    entries = runs()
    rule = AdaptLRRule(metric=metric, per_shots=per_shots)
    selection = select_adaptation_rates(entries, MODELS, SHOTS, rule)
    assert selection["rule"] == rule.text() and metric in selection["rule"] and "test split is never used" in selection["rule"]
    for model in MODELS:  # from-scratch is chosen exactly like every arm
        for k in SHOTS:
            chosen = selection["models"][model][str(k)]["chosen"]
            assert chosen == best_by_hand(entries, model, k if per_shots else None, metric)
            candidates = selection["models"][model][str(k)]["candidates"]
            assert [c["lr"] for c in candidates] == RATES and all(c["n_seeds"] == 5 for c in candidates)


def test_the_test_split_never_enters_the_choice():
    entries = runs()
    rule = AdaptLRRule()
    before = select_adaptation_rates(entries, MODELS, SHOTS, rule)
    rng = np.random.default_rng(1)
    for entry in entries:  # any test losses at all, even ones that would favour another rate
        entry["summary"]["test"] = float(rng.uniform(-100, 100))
    assert select_adaptation_rates(entries, MODELS, SHOTS, rule) == before
    for entry in entries:  # while moving the validation figure does change it
        if entry["model"] == "scratch" and entry["shots"] == 8 and entry["lr"] == 1e-2:
            entry["summary"]["auc_val"] = 0.0
    assert select_adaptation_rates(entries, MODELS, SHOTS, rule)["models"]["scratch"]["8"]["chosen"] == 1e-2


def test_a_rate_with_a_failed_seed_is_chosen_only_when_every_rate_has_a_gap():
    entries = runs()
    for entry in entries:
        if entry["lr"] == 1e-3:
            entry["summary"]["auc_val"] = 0.0  # the best by far...
    entries[0]["status"] = "failed"  # ...but one of pedagogy's 8-piece runs at 1e-3 failed
    selection = select_adaptation_rates(entries, MODELS, SHOTS, AdaptLRRule())
    assert entries[0]["model"] == "pedagogy" and entries[0]["shots"] == 8 and entries[0]["lr"] == 1e-3
    assert selection["models"]["pedagogy"]["8"]["chosen"] != 1e-3
    assert selection["models"]["pedagogy"]["32"]["chosen"] == 1e-3


def test_tokens_to_a_level_are_interpolated_between_evaluations_and_censored():
    x, y = [0, 100, 200, 300], [4.0, 3.0, 2.0, 1.5]
    assert interpolated_time_to_target(x, y, 2.5, 300) == (150.0, True)
    assert interpolated_time_to_target(x, y, 3.0, 300) == (100.0, True)
    assert interpolated_time_to_target(x, y, 5.0, 300) == (0.0, True)  # there before the first step
    assert interpolated_time_to_target(x, y, 1.0, 300) == (300.0, False)  # never: censored at the budget
    assert interpolated_time_to_target(x, [4.0, None, 2.0, 1.5], 3.0, 300) == (100.0, True)  # a gap is skipped


def test_one_runs_learning_speed_figures_exactly():
    curves = {"eval_tokens": [0, 100, 200, 300, 400], "eval_steps": [0, 4, 8, 12, 16], "val": [5.0, 4.0, 3.0, 2.5, 2.0]}
    info = {"test_loss": {"folk": 2.2}, "tokens_seen": 400, "adapt": {"train_tokens": 50}}
    s = adaptation_summary(curves, info, "folk", 3.5, 400.0, 100.0, report_steps=(4, 16))
    assert s["start_val"] == 5.0 and s["val_at_4"] == 4.0 and s["val_at_16"] == 2.0 and s["early_val"] == 4.0
    assert s["final_val"] == 2.0 and s["best_val"] == 2.0 and s["drop"] == 3.0 and s["test"] == 2.2
    assert s["auc_val"] == pytest.approx((4.5 + 3.5 + 2.75 + 2.25) * 100 / 400)
    assert (s["tokens_to_target"], s["reached_target"]) == (150.0, True)
    assert s["epochs"] == 8.0
    assert gap_closed(5.0, 2.0, 1.0) == 0.75  # closed 3 of the 4 nats to from-scratch's final level
    assert math.isnan(gap_closed(1.0, 0.8, 2.0))  # started below that level: no gap to close
