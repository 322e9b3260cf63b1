"""The report's opening lines and the table of the answer: each arm's main effect with its interval,
or each seed's value when the seeds are too few, never a paragraph of numbers."""

from __future__ import annotations

from curricmusic.reporting.answer import answer_table_lines, opening_lines


def _ci(mean, low=None, high=None, n=3):
    return {"n": n, "mean": mean, "ci_low": low, "ci_high": high, "too_few": n < 3, "values": [mean] * n}


def _effect(arm, baseline, metric, n, shots=None, **values):
    row = {"arm": arm, "baseline": baseline, "metric": metric, "n_pairs": n, "too_few_for_p": n < 5}
    for key, (value, low, high) in values.items():
        row.update({key: value, f"{key}_ci_low": low, f"{key}_ci_high": high})
    return row | ({"shots": shots} if shots is not None else {})


def small_results(n: int) -> dict:
    """results.json of two arms and from-scratch, with n seeds, as the report reads it."""
    arm = {
        "n_done": n,
        "summary": {"copy_rate": _ci(0.05, 0.0, 0.1, n), "copy_rate_unblocked": _ci(0.25, 0.1, 0.4, n), "test_target": _ci(1.5, 1.4, 1.6, n)},
        "novelty": {"n_samples": 8 * n, "copy_rate": 0.05, "copy_rate_unblocked": 0.25},
    }
    adaptation = [
        _effect("curriculum", "random", "tokens_to_target", n, 8, speedup=(1.25, 0.9, 1.7), diff=(-50.0, -90.0, -10.0)),
        _effect("curriculum", "random", "test", n, 8, diff=(-0.02, -0.05, 0.01)),
        _effect("curriculum", "scratch", "tokens_to_target", n, 8, speedup=(2.0, 1.5, 2.5), diff=(-300.0, -400.0, -200.0)),
        _effect("curriculum", "scratch", "test", n, 8, diff=(-0.4, -0.5, -0.3)),
        _effect("random", "scratch", "tokens_to_target", n, 8, speedup=(1.6, 1.2, 2.1), diff=(-250.0, -350.0, -150.0)),
        _effect("random", "scratch", "test", n, 8, diff=(-0.38, -0.5, -0.26)),
    ]
    return {
        "baseline_arm": "random",
        "target_stage": "chorales",
        "arms": {"curriculum": arm, "random": arm},
        "comparisons": [
            _effect("curriculum", "random", "tokens_to_target", n, ratio=(0.8, 0.7, 0.9)),
            _effect("curriculum", "random", "test_target", n, diff=(0.01, -0.02, 0.04)),
        ],
        "adaptation": {"shots": [8], "style": {"stage": "folk"}, "comparisons": adaptation},
    }


def test_the_opening_gives_each_arm_its_main_effect_with_its_interval():
    lines = opening_lines(small_results(5))
    assert lines[0].startswith("In short (each arm minus random, seed by seed, in nats per token: below 0 is a lower loss")
    assert lines[2:] == [
        "- **curriculum** against random: test loss on `chorales` 0.0100 [-0.0200, 0.0400]; test loss on `folk` after "
        "adapting on 8 pieces -0.0200 [-0.0500, 0.0100]",
        "- **random** (the baseline): test loss on `chorales` 1.50 [1.40, 1.60] nats per token",
        "- Copying: copy rate 0.05 in every arm (0.25 without copy-blocking), over 80 scored samples (share of samples "
        "flagged as copies: see Novelty).",
    ]
    without = small_results(5) | {"adaptation": None}  # no [adapt]: the target stage alone
    assert opening_lines(without)[2] == "- **curriculum** against random: test loss on `chorales` 0.0100 [-0.0200, 0.0400]"


def test_the_answer_is_a_table_not_a_paragraph():
    lines = answer_table_lines(small_results(5))
    assert lines[0] == "## The answer in numbers"
    assert lines[2] == (
        "| arm | against | seeds | pretraining: tokens to target, ratio | pretraining: test loss difference "
        "| speed-up, 8 pieces | test loss difference, 8 pieces |"
    )
    assert "| curriculum | random | 5 | 0.80x [0.70, 0.90] | 0.0100 [-0.0200, 0.0400] | 1.25x [0.90, 1.70] | -0.0200 [-0.0500, 0.0100] |" in lines
    assert "| curriculum | from-scratch | 5 | - | - | 2.00x [1.50, 2.50] | -0.400 [-0.500, -0.300] |" in lines
    assert "| random | from-scratch | 5 | - | - | 1.60x [1.20, 2.10] | -0.380 [-0.500, -0.260] |" in lines
    assert answer_table_lines({"comparisons": [], "adaptation": None}) == []


def test_too_few_seeds_show_no_interval_anywhere():
    results = small_results(2)
    opening = "\n".join(opening_lines(results))
    assert opening.startswith("In short: with 2 paired seed(s) against random this experiment cannot say whether learning order matters")
    assert "[" not in opening and "0.0100 (mean of 2)" in opening  # no solid-looking interval
    table = "\n".join(answer_table_lines(results))
    assert "| curriculum | random | 2 | 0.80x (2 seeds: no interval) | 0.0100 (2 seeds: no interval) |" in table
    with_pairs = small_results(2)
    with_pairs["comparisons"][1]["pairs"] = [[1.51, 1.49], [1.52, 1.51]]  # each seed's values, as results.json keeps them
    assert "seed by seed: 0.0200, 0.0100" in "\n".join(opening_lines(with_pairs))
    mixed = small_results(5)
    mixed["comparisons"][0]["n_pairs"] = 2  # one figure too small, the others not
    assert "| curriculum | random | 5 | 0.80x (2 seeds: no interval) | 0.0100 [-0.0200, 0.0400] |" in "\n".join(answer_table_lines(mixed))


def test_a_model_at_the_target_before_adapting_has_no_ratio_and_one_footnote():
    at_start = small_results(3)
    at_start["adaptation"]["comparisons"][2].update(speedup=None, n_at_start=3, n_control_at_start=0)
    lines = answer_table_lines(at_start)
    assert "| curriculum | from-scratch | 3 | - | - | at target at start (a) | -0.400 [-0.500, -0.300] |" in lines
    notes = [line for line in lines if line.startswith("(a)")]
    assert len(notes) == 1 and notes[0].endswith("To reach it, from-scratch needs 300 [200, 400] tokens with 8 pieces.")


def _claim(label, n, diff, p_holm=None, significant=False, low=None, high=None):
    return {"label": label, "n_pairs": n, "diff": diff, "p_holm": p_holm, "significant": significant,
            "diff_ci_low_corrected": low, "diff_ci_high_corrected": high}  # fmt: skip


def test_declared_claims_open_the_list_with_how_many_hold_after_correction():
    results = small_results(5) | {
        "claims": {
            "rows": [
                _claim("curriculum vs random: auc_val, folk, 8 pieces", 5, -0.12, 0.004, True, -0.2, -0.04),
                _claim("random vs scratch: auc_val, folk, 8 pieces", 5, 0.01, 0.61),
            ]
        }
    }
    assert opening_lines(results)[2] == (
        "- Declared claims (confirmatory, Holm over 2): 1 of 2 hold after correction: curriculum vs random: auc_val, "
        "folk, 8 pieces, difference -0.120 [-0.200, -0.0400] at the corrected level, p (Holm) 0.004 (see Declared claims)."
    )
    early = small_results(2) | {"claims": {"rows": [_claim("curriculum vs random: auc_val, folk, 8 pieces", 2, -0.1)]}}
    assert opening_lines(early)[2] == (
        "- Declared claims: none of the 1 can be tested yet (a p-value needs 5 paired seeds; the most paired now: 2); "
        "see Declared claims."
    )


def test_an_arm_that_random_matched_does_not_match_is_not_compared_with_it():
    results = small_results(5) | {"baseline_arm": "random-matched"}
    results["arms"] = {"curriculum": results["arms"]["curriculum"], "mixed": results["arms"]["curriculum"], "random-matched": results["arms"]["random"]}
    for row in results["comparisons"] + results["adaptation"]["comparisons"]:
        row["baseline"] = row["baseline"].replace("random", "random-matched")
    results["config"] = {"arms": [{"name": "curriculum"}, {"name": "mixed"}, {"name": "random-matched", "pacing": "random-matched", "match": "curriculum"}]}
    lines = opening_lines(results)
    assert lines[2].startswith("- **curriculum** against random-matched: test loss on `chorales` 0.0100 [-0.0200, 0.0400]")
    assert lines[3] == (
        "- **mixed**: not compared with random-matched, whose tokens of each stage are another arm's (order would not be "
        "the only difference)"
    )
