"""The declared claims of an experiment, tested as one family: Holm-corrected, with intervals and
detectable differences at the corrected level.

An experiment lists its confirmatory comparisons before it runs (``[[claims]]``: an arm against a
control on one measure; adaptation claims at one style and shot size). Each is compared seed by
seed (:func:`~curricmusic.evaluation.stats.paired_effect`); the p-values are Holm-corrected over
exactly this family of ``m`` claims (a claim without a p-value, from fewer than 5 seeds, still
counts: that only makes the correction stricter); the intervals are given at 95% and at the Bonferroni level
``1 - alpha / m`` (simultaneous over the family, and never narrower than what Holm's first step
uses), and the detectable difference (80% power) at the two-sided level ``alpha / m``. Every other
comparison of the report is exploratory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from curricmusic.config import ExperimentConfig
from curricmusic.config.claims import Claim
from curricmusic.evaluation.stats import detectable_difference, holm, paired_effect

__all__ = ["ALPHA", "HIGHER_IS_BETTER", "claim_results"]

#: The family-wise error rate of the declared claims.
ALPHA = 0.05
#: Measures where a higher value is better (every other one: lower is better).
HIGHER_IS_BETTER = ("drop", "gap_closed")


def _values(claim: Claim, runs: Sequence[dict[str, Any]], adaptations: Sequence[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """(model, seed) -> the claim's measure, from the runs each model is reported with."""
    if claim.phase == "pretraining":
        return {
            (r["arm"], r["seed"]): r["summary"].get(claim.metric, math.nan)
            for r in runs
            if r["status"] == "done"
        }
    entry = next((a for a in adaptations if (a.get("style") or {}).get("stage") == claim.style), None)
    if entry is None:
        return {}
    return {
        (r["model"], r["seed"]): r["summary"].get(claim.metric, math.nan)
        for r in entry["runs"]
        if r["status"] == "done" and r.get("chosen", True) and r["shots"] == claim.shots
    }


def claim_results(config: ExperimentConfig, runs: Sequence[dict[str, Any]], adaptations: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``claims`` entry of results.json (None when the experiment declares none)."""
    family = config.claim_family()
    if not family:
        return None
    m = len(family)
    level = 1 - ALPHA / m
    rows = []
    for claim in family:
        values = _values(claim, runs, adaptations)
        seeds = [s for s in config.seeds if (claim.arm, s) in values and (claim.against, s) in values]
        treatment = [values[(claim.arm, s)] for s in seeds]
        control = [values[(claim.against, s)] for s in seeds]
        effect = paired_effect(treatment, control)
        corrected = paired_effect(treatment, control, confidence=level)
        diffs = np.array([t - c for t, c in zip(treatment, control, strict=True) if math.isfinite(t) and math.isfinite(c)])
        sd = float(diffs.std(ddof=1)) if diffs.size > 1 else math.nan
        rows.append(
            {
                **claim.model_dump(mode="json"),
                "label": claim.label(),
                "higher_is_better": claim.metric in HIGHER_IS_BETTER,
                "seeds": seeds,
                **effect,
                "diff_ci_low_corrected": corrected["diff_ci_low"],
                "diff_ci_high_corrected": corrected["diff_ci_high"],
                "detectable_diff_corrected": detectable_difference(sd, int(diffs.size), alpha=ALPHA / m),
            }
        )
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows], family_size=m), strict=True):
        row["p_holm"] = adjusted
        row["significant"] = bool(math.isfinite(adjusted) and adjusted < ALPHA)
    return {
        "alpha": ALPHA,
        "m": m,
        "correction": "Holm over exactly the declared claims",
        "corrected_level": level,
        "rule": (
            f"paired by seed; p: paired t-test (from 5 seeds), Holm-corrected over the {m} declared claims; "
            f"corrected intervals at the Bonferroni level {level:.4f} (1 - {ALPHA:g}/{m}); detectable: the smallest "
            f"difference found with 80% power at the two-sided level {ALPHA / m:.4f}"
        ),
        "rows": rows,
    }
