"""The paragraph a report opens with: the experiment's answer, each figure with its interval.

:func:`answer_paragraph` is a pure function of ``results.json``. Per arm, against ``random`` and
against the from-scratch model of the adaptation phase: the pretraining tokens-to-target ratio,
the adaptation speed-up at each shot size, the final test-loss difference on the new style, each
with its 95% t-interval over seeds, and the arm's copy rate. A figure whose sample is too small
for an interval (fewer than 3 paired seeds) is not printed: the paragraph says so instead, and
when no figure has an interval it says only that the experiment cannot answer yet.
"""

from __future__ import annotations

import math
from typing import Any

from curricmusic.reporting.style import fmt

__all__ = ["answer_paragraph", "MIN_SEEDS"]

#: Paired seeds below which a figure has no interval (evaluation.stats.MIN_SEEDS_FOR_CI).
MIN_SEEDS = 3
_SCRATCH = "scratch"


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _neg(value: Any) -> float | None:
    return -float(value) if _finite(value) else None


class _Figures:
    """Formats figures, counting those printed and those held back for want of seeds."""

    def __init__(self) -> None:
        self.shown = 0
        self.too_few = 0

    def interval(self, row: dict[str, Any] | None, key: str, digits: int = 3, suffix: str = "") -> str:
        """``value [low, high]`` of ``row[key]`` with its interval, or why there is none."""
        if row is None:
            return "not measured"
        n = row.get("n_pairs", 0)
        value, low, high = row.get(key), row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
        if n < MIN_SEEDS:
            self.too_few += 1
            return f"too few seeds to say ({n} paired)"
        if not _finite(value, low, high):
            return "not measured"
        self.shown += 1
        return f"{fmt(value, digits)}{suffix} [{fmt(low, digits)}, {fmt(high, digits)}]"

    def speedup(self, row: dict[str, Any] | None) -> str:
        if row is not None and row.get("n_pairs", 0) >= MIN_SEEDS and row.get("n_at_start"):
            n, control = row["n_at_start"], row.get("n_control_at_start", 0)
            if control == row["n_pairs"]:
                return "none measurable (both at the target before adapting)"
            if n == row["n_pairs"]:  # the arm's time is 0: the control's is minus the difference
                needs = {"n_pairs": n, "t": _neg(row.get("diff")), "t_ci_low": _neg(row.get("diff_ci_high")),
                         "t_ci_high": _neg(row.get("diff_ci_low"))}  # fmt: skip
                return f"at the target before adapting (the control needs {self.interval(needs, 't', 0)} tokens)"
            return f"unbounded in {n} of {row['n_pairs']} seeds (at the target before adapting)"
        return self.interval(row, "speedup", 2, "x")


def _row(rows: list[dict[str, Any]], arm: str, baseline: str, metric: str, shots: int | None = None) -> dict[str, Any] | None:
    for row in rows:
        if row["arm"] == arm and row["baseline"] == baseline and row["metric"] == metric and row.get("shots") == shots:
            return row
    return None


def _copy_rate(arm: dict[str, Any]) -> str | None:
    summary = arm.get("summary") or {}
    rate, unblocked = summary.get("copy_rate") or {}, summary.get("copy_rate_unblocked") or {}
    if not _finite(rate.get("mean")):
        return None
    if rate.get("too_few") or not _finite(rate.get("ci_low"), rate.get("ci_high")):
        text = f"copy rate {fmt(rate['mean'], 2)} (too few seeds for an interval)"
    else:
        text = f"copy rate {fmt(rate['mean'], 2)} [{fmt(rate['ci_low'], 2)}, {fmt(rate['ci_high'], 2)}]"
    if _finite(unblocked.get("mean")):
        text += f", {fmt(unblocked['mean'], 2)} without copy-blocking"
    return text


def _adaptation_part(figures: _Figures, rows: list[dict[str, Any]], arm: str, baseline: str, shots: list[int]) -> str:
    speed = "; ".join(f"{k} pieces {figures.speedup(_row(rows, arm, baseline, 'tokens_to_target', k))}" for k in shots)
    test = "; ".join(f"{k} pieces {figures.interval(_row(rows, arm, baseline, 'test', k), 'diff')}" for k in shots)
    return f"adaptation speed-up {speed}; final test loss difference {test}"


def answer_paragraph(results: dict[str, Any]) -> str:
    """The report's opening paragraph (plain text, one line), from ``results.json`` alone."""
    baseline = results.get("baseline_arm")
    arms = [name for name in results.get("arms", {}) if name != baseline]
    adaptation = results.get("adaptation") or {}
    rows, shots = adaptation.get("comparisons") or [], adaptation.get("shots") or []
    style = (adaptation.get("style") or {}).get("stage")
    figures = _Figures()
    sentences = []
    for arm in arms + ([baseline] if baseline else []):
        parts = []
        if arm != baseline and baseline:
            pretraining = _row(results.get("comparisons") or [], arm, baseline, "tokens_to_target")
            against = [f"pretraining tokens to target {figures.interval(pretraining, 'ratio', 2, 'x')}"]
            if shots:
                against.append(_adaptation_part(figures, rows, arm, baseline, shots))
            parts.append(f"against {baseline}: " + "; ".join(against))
        if shots and any(r["arm"] == arm and r["baseline"] == _SCRATCH for r in rows):
            parts.append("against from-scratch: " + _adaptation_part(figures, rows, arm, _SCRATCH, shots))
        copy = _copy_rate(results["arms"].get(arm, {}))
        if copy:
            parts.append(copy)
        if parts:
            sentences.append(f"{arm}: " + "; ".join(parts) + ".")
    seeds = sorted({arm.get("n_done", 0) for arm in results.get("arms", {}).values()})
    if figures.shown == 0 and figures.too_few:
        return (
            f"In short: with {seeds[0] if seeds else 0} seed(s) per arm this experiment cannot say whether learning order "
            f"matters: a 95% interval needs {MIN_SEEDS} paired seeds, and no comparison has one. Run more seeds before "
            "quoting any number; the tables below list each seed's value."
        )
    if not sentences:
        return "In short: no arm finished, so there is nothing to compare yet."
    new = f" on the new style {style}" if style else ""
    legend = f"Means over seeds with 95% t-intervals. Tokens to target: arm / {baseline} (below 1: fewer tokens)."
    if shots:  # the adaptation phase's figures
        legend += (
            f" Speed-up: control's adaptation tokens to the target{new} / the arm's (above 1: faster; the target "
            "against from-scratch is the level from-scratch reaches at half the budget, against random the level "
            "random reaches). Test loss difference: arm minus control, nats per token (below 0: better)."
        )
    return "In short: " + " ".join(sentences) + " " + legend
