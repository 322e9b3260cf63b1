"""Declared claims: validated against the experiment when it loads, then tested as one family
(Holm over exactly the declared comparisons, intervals and detectable differences at the
corrected level)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from curricmusic.common.errors import UserError
from curricmusic.config import load_experiment
from curricmusic.evaluation.stats import detectable_difference, holm
from curricmusic.experiment.claims import claim_results
from tests.helpers import REPO

DEBUG_TEXT = (REPO / "experiments" / "debug.toml").read_text()
DEBUG_TEXT = DEBUG_TEXT.replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
HEAD = DEBUG_TEXT[: DEBUG_TEXT.index("[[claims]]")]


def load_with(tmp_path, claims: str):
    path = tmp_path / "e.toml"
    path.write_text(HEAD + claims)
    return load_experiment(path)


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ('arm = "nobody"\nagainst = "random"\nstyle = "essen_folksong"\nshots = 4', "claims.0.arm: no model 'nobody'"),
        ('arm = "curriculum"\nagainst = "random"\nshots = 4', "claims.0.style: the experiment adapts to essen_folksong, oneills1850; name one"),
        ('arm = "curriculum"\nagainst = "random"\nstyle = "essen_folksong"', "claims.0.shots: the experiment adapts from [4, 8] pieces; name one"),
        ('arm = "curriculum"\nagainst = "random"\nstyle = "essen_folksong"\nshots = 16', "claims.0.shots: 16 is not one of adapt.shots"),
        ('arm = "curriculum"\nagainst = "random"\nstyle = "folk"\nshots = 4', "claims.0.style: no style 'folk'"),
        ('arm = "curriculum"\nagainst = "random"\nmetric = "test_target"\nstyle = "essen_folksong"\nshots = 4',
         "claims.0: metric: 'test_target' is not a adaptation measure"),
        ('arm = "curriculum"\nagainst = "scratch"\nphase = "pretraining"\nmetric = "test_target"', "claims.0.against: no model 'scratch'"),
        ('arm = "curriculum"\nagainst = "curriculum"\nstyle = "essen_folksong"\nshots = 4', "a claim compares two models"),
    ],
)  # fmt: skip
def test_a_claim_that_names_what_the_experiment_lacks_is_refused_at_load(tmp_path, claim, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_with(tmp_path, f"[[claims]]\n{claim}\n")


def test_a_claim_declared_twice_is_refused(tmp_path):
    claim = '[[claims]]\narm = "curriculum"\nagainst = "random"\nstyle = "essen_folksong"\nshots = 4\n'
    with pytest.raises(UserError, match="claims.1: declared twice"):
        load_with(tmp_path, claim + claim)


def _runs(model: str, values: list[float], style: str = "folk", shots: int = 8) -> list[dict]:
    return [
        {"model": model, "seed": s, "shots": shots, "status": "done", "chosen": True, "summary": {"auc_val": v}}
        for s, v in enumerate(values)
    ]


def test_the_family_is_corrected_together_with_intervals_and_detectable_differences_at_its_level(tmp_path):
    claims = (
        '[[claims]]\narm = "curriculum"\nagainst = "random"\nstyle = "essen_folksong"\nshots = 4\n'
        '[[claims]]\narm = "curriculum"\nagainst = "scratch"\nstyle = "essen_folksong"\nshots = 4\n'
        '[[claims]]\narm = "curriculum"\nagainst = "random"\nphase = "pretraining"\nmetric = "test_target"\n'
    )
    config = load_with(tmp_path, claims).config.model_copy(update={"seeds": [0, 1, 2, 3, 4]})
    curriculum = [3.0, 3.1, 2.9, 3.2, 3.05]
    random = [3.2, 3.15, 3.1, 3.5, 3.2]
    scratch = [3.01, 3.2, 2.8, 3.25, 3.0]
    adaptation = {"style": {"stage": "essen_folksong"}, "runs": _runs("curriculum", curriculum, "essen_folksong", 4)
                  + _runs("random", random, "essen_folksong", 4) + _runs("scratch", scratch, "essen_folksong", 4)}  # fmt: skip
    pretraining = [{"arm": a, "seed": s, "status": "done", "summary": {"test_target": 1.0 + 0.01 * s + (0.05 if a == "random" else 0.0)}}
                   for a in ("curriculum", "random") for s in range(5)]  # fmt: skip
    result = claim_results(config, pretraining, [adaptation])
    assert result["m"] == 3 and result["corrected_level"] == pytest.approx(1 - 0.05 / 3)
    rows = result["rows"]
    differences = [np.subtract(curriculum, random), np.subtract(curriculum, scratch), np.full(5, -0.05)]
    p_values = [stats.ttest_rel(curriculum, random).pvalue, stats.ttest_rel(curriculum, scratch).pvalue, math.nan]
    for row, diff, p in zip(rows, differences, p_values, strict=True):
        assert row["diff"] == pytest.approx(diff.mean())
        if diff.std() > 0:
            half = stats.t.ppf(1 - 0.05 / 6, 4) * diff.std(ddof=1) / math.sqrt(5)
            assert (row["diff_ci_low_corrected"], row["diff_ci_high_corrected"]) == pytest.approx((diff.mean() - half, diff.mean() + half))
            assert row["diff_ci_low_corrected"] < row["diff_ci_low"]  # wider than the 95% interval
            assert row["detectable_diff_corrected"] == pytest.approx(detectable_difference(diff.std(ddof=1), 5, alpha=0.05 / 3))
            assert row["p_value"] == pytest.approx(p)
    assert math.isnan(rows[2]["p_value"])  # differences that do not vary: no test, but still one of the 3
    assert [r["p_holm"] for r in rows[:2]] == pytest.approx(holm(p_values[:2], family_size=3))
    low, high = sorted(p_values[:2])
    assert min(r["p_holm"] for r in rows[:2]) == pytest.approx(min(1.0, 3 * low))
    assert [r["significant"] for r in rows] == [r["p_holm"] < 0.05 for r in rows[:2]] + [False]
    assert rows[0]["label"] == "curriculum vs random: auc_val, essen_folksong, 4 pieces"


def test_without_declared_claims_there_is_no_family(tmp_path):
    assert claim_results(load_with(tmp_path, "").config, [], []) is None
