"""What a report opens with: the experiment's answer in a few lines, then the same in a table.

Pure functions of ``results.json``:

- :func:`opening_lines`: "In short", a line on the declared claims (when the experiment file
  declares any), one line per arm with its main effect against the baseline
  arm (the paired difference of the target stage's test loss and, with an adaptation phase, of
  the new style's test loss at the largest shot size), a line on copying, and a legend: at most
  about ten lines for a handful of arms. ``curricmusic run`` and ``report`` print them.
- :func:`answer_table_lines`: per arm and control, the pretraining tokens-to-target ratio and
  test-loss difference, the adaptation speed-up and test-loss difference at every shot size.

Every figure follows :mod:`curricmusic.reporting.intervals`: an interval from 3 paired seeds on,
each seed's value below that.
"""

from __future__ import annotations

from typing import Any

from curricmusic.common.numbers import count, fmt, is_number, p_text, sig
from curricmusic.reporting.intervals import (
    MIN_SEEDS,
    effect_text,
    pair_values,
    row_has_interval,
    stats_text,
)

__all__ = ["opening_lines", "answer_table_lines", "main_effect_row", "MIN_SEEDS"]

_SCRATCH = "scratch"


def _row(rows: list[dict[str, Any]], arm: str, baseline: str, metric: str, shots: int | None = None) -> dict[str, Any] | None:
    for row in rows:
        if row["arm"] == arm and row["baseline"] == baseline and row["metric"] == metric and row.get("shots") == shots:
            return row
    return None


def main_effect_row(results: dict[str, Any], arm: str, baseline: str) -> dict[str, Any] | None:
    """The pretraining comparison an arm's opening line shows: the target stage's test loss,
    else its final validation loss (an experiment that scored no test split)."""
    rows = results.get("comparisons") or []
    for metric in ("test_target", "final_val_target"):
        row = _row(rows, arm, baseline, metric)
        if row is not None and is_number(row.get("diff")):
            return row
    return None


def _seeds_only(row: dict[str, Any]) -> str:
    """Each pair's difference, for a row with too few pairs for an interval."""
    values = pair_values(row, "diff")
    if values is None:
        return f"{sig(row['diff'])} (mean of {row['n_pairs']})"
    return ", ".join(sig(v) for v in values)


def _effect_phrase(label: str, row: dict[str, Any] | None) -> str:
    if row is None:
        return f"{label} not measured"
    if row_has_interval(row, "diff"):
        return f"{label} {effect_text(row, 'diff')}"
    return f"{label}, seed by seed: {_seeds_only(row)}"


def _adaptation_row(results: dict[str, Any], arm: str, baseline: str) -> tuple[dict[str, Any] | None, int | None]:
    adaptation = results.get("adaptation") or {}
    shots = adaptation.get("shots") or []
    if not shots:
        return None, None
    k = max(shots)
    return _row(adaptation.get("comparisons") or [], arm, baseline, "test", k), k


def _loss_name(metric: str | None) -> str:
    return "final validation loss" if metric == "final_val_target" else "test loss"


def _arm_line(results: dict[str, Any], arm: str, baseline: str) -> tuple[str, bool, int]:
    """``(line, has an interval, paired seeds)`` of one arm against the baseline arm."""
    target = results.get("target_stage", "the target stage")
    main = main_effect_row(results, arm, baseline)
    parts = [_effect_phrase(f"{_loss_name(main['metric'] if main else None)} on `{target}`", main)]
    adapted, k = _adaptation_row(results, arm, baseline)
    if k is not None:
        style = ((results.get("adaptation") or {}).get("style") or {}).get("stage", "the new style")
        parts.append(_effect_phrase(f"test loss on `{style}` after adapting on {k} pieces", adapted))
    rows = [r for r in (main, adapted) if r is not None]
    interval = any(row_has_interval(r, "diff") for r in rows)
    n = max((r.get("n_pairs", 0) for r in rows), default=0)
    lead = f"**{arm}** against {baseline}"
    if rows and not interval:
        lead += f" (too few seeds for an interval: {n} paired)"
    return f"- {lead}: " + "; ".join(parts), interval, n


def _baseline_line(results: dict[str, Any], baseline: str, metric: str) -> str:
    summary = (results["arms"].get(baseline) or {}).get("summary") or {}
    stats = stats_text(summary.get(metric))
    return f"- **{baseline}** (the baseline): {_loss_name(metric)} on `{results.get('target_stage')}` {stats} nats per token"


def _copy_line(results: dict[str, Any]) -> str | None:
    """One sentence on copying, over every arm's scored samples."""
    arms = {name: arm.get("novelty") or {} for name, arm in results.get("arms", {}).items()}
    scored = {name: n for name, n in arms.items() if n.get("n_samples")}
    if not scored:
        return None
    samples = sum(n["n_samples"] for n in scored.values())
    rates = {name: n.get("copy_rate") for name, n in scored.items()}
    unblocked = {name: n.get("copy_rate_unblocked") for name, n in scored.items()}
    if len(scored) == 1:
        text = f"copy rate {fmt(next(iter(rates.values())), 2)} ({next(iter(scored))}, the one arm scored)"
    elif len({fmt(r, 2) for r in rates.values()}) == 1:
        every = "every arm" if len(scored) == len(arms) else f"every scored arm ({', '.join(scored)})"
        text = f"copy rate {fmt(next(iter(rates.values())), 2)} in {every}"
    else:
        text = "copy rate " + ", ".join(f"{name} {fmt(rate, 2)}" for name, rate in rates.items())
    shown = [u for u in unblocked.values() if is_number(u)]
    if shown and len({fmt(u, 2) for u in shown}) == 1:
        text += f" ({fmt(shown[0], 2)} without copy-blocking)"
    elif shown:
        text += " (without copy-blocking: " + ", ".join(f"{a} {fmt(u, 2)}" for a, u in unblocked.items() if is_number(u)) + ")"
    return f"- Copying: {text}, over {count(samples)} scored samples (share of samples flagged as copies: see Novelty)."


def _claims_line(results: dict[str, Any]) -> str | None:
    """One line on the claims the experiment file declared before it ran (the confirmatory part)."""
    rows = (results.get("claims") or {}).get("rows") or []
    if not rows:
        return None
    m = len(rows)
    if not any(is_number(row.get("p_holm")) for row in rows):
        most = max((row.get("n_pairs", 0) for row in rows), default=0)
        return (
            f"- Declared claims: none of the {m} can be tested yet (a p-value needs 5 paired seeds; the most paired now: "
            f"{most}); see Declared claims."
        )
    holding = [row for row in rows if row.get("significant")]
    text = f"- Declared claims (confirmatory, Holm over {m}): {len(holding)} of {m} hold after correction"
    if holding:
        text += ": " + "; ".join(f"{row['label']}, {_corrected(row)}" for row in holding)
    return text + " (see Declared claims)."


def _corrected(row: dict[str, Any]) -> str:
    low, high = row.get("diff_ci_low_corrected"), row.get("diff_ci_high_corrected")
    interval = f" [{sig(low)}, {sig(high)}] at the corrected level" if is_number(low) and is_number(high) else ""
    return f"difference {sig(row['diff'])}{interval}, p (Holm) {p_text(row['p_holm'])}"


def _compared(results: dict[str, Any], arm: str, baseline: str) -> bool:
    """Whether ``arm`` is compared with ``baseline``: always, except where the baseline is a
    ``random-matched`` arm that holds another arm's tokens of each stage."""
    for entry in (results.get("config") or {}).get("arms") or []:
        if entry.get("name") == baseline and entry.get("pacing") == "random-matched":
            return entry.get("match") == arm
    return True


def opening_lines(results: dict[str, Any]) -> list[str]:
    """The report's first lines (Markdown), from ``results.json`` alone."""
    baseline = results.get("baseline_arm")
    arms = [name for name in results.get("arms", {}) if name != baseline]
    done = [arm for arm in results.get("arms", {}).values() if arm.get("n_done")]
    if not done:
        return ["In short: no arm finished, so there is nothing to compare yet."]
    claims = _claims_line(results)
    lines, intervals, pairs = [claims] if claims else [], 0, 0
    metric = "test_target"
    if baseline and baseline in results["arms"]:
        for arm in arms:
            if not _compared(results, arm, baseline):  # random-matched holds another arm's tokens
                lines.append(
                    f"- **{arm}**: not compared with {baseline}, whose tokens of each stage are another arm's (order "
                    "would not be the only difference)"
                )
                continue
            line, interval, n = _arm_line(results, arm, baseline)
            lines.append(line)
            intervals += interval
            pairs = max(pairs, n)
            main = main_effect_row(results, arm, baseline)
            metric = main["metric"] if main else metric
        lines.append(_baseline_line(results, baseline, metric))
    copy = _copy_line(results)
    if copy:
        lines.append(copy)
    if not baseline:
        head = "In short: no random-order arm to compare with; each arm's figures are below."
    elif intervals == 0:
        head = (
            f"In short: with {pairs} paired seed(s) against {baseline} this experiment cannot say whether learning order "
            f"matters: a 95% interval needs {MIN_SEEDS}. Each seed's difference is shown instead; run more seeds before "
            "quoting any number."
        )
    else:
        head = (
            f"In short (each arm minus {baseline}, seed by seed, in nats per token: below 0 is a lower loss than "
            f"{baseline}'s; [95% t-interval]):"
        )
    return [head, "", *lines]


# ---- the table ------------------------------------------------------------------------------------


def _speedup_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    pairs = row.get("n_pairs", 0)
    at_start, control_at_start = row.get("n_at_start") or 0, row.get("n_control_at_start") or 0
    if at_start and control_at_start == pairs:
        return "none: both at target at start"
    if at_start == pairs:
        return "at target at start (a)"
    if at_start:
        return f"at target at start in {at_start} of {pairs} seeds (a)"
    return effect_text(row, "speedup", lambda v: fmt(v, 2), "x")


def _at_start_note(results: dict[str, Any]) -> str | None:
    """The footnote of the speed-up cells of models at the target before adapting: how many
    tokens the control needed, once per shot size."""
    adaptation = results.get("adaptation") or {}
    needs: dict[tuple[str, int], str] = {}
    for row in adaptation.get("comparisons") or []:
        if row["metric"] != "tokens_to_target" or not row.get("n_at_start") or row["n_at_start"] != row.get("n_pairs"):
            continue
        if row.get("n_control_at_start") == row["n_pairs"]:
            continue
        flipped = {**row, "diff": -row["diff"], "diff_ci_low": _neg(row.get("diff_ci_high")),
                   "diff_ci_high": _neg(row.get("diff_ci_low")), "pairs": [[c, t] for t, c in row.get("pairs") or []] or None}  # fmt: skip
        needs.setdefault((row["baseline"], row["shots"]), effect_text(flipped, "diff", count))
    if not needs:
        return None
    grouped: dict[tuple[str, str], list[int]] = {}
    for (control, k), text in needs.items():
        grouped.setdefault((control, text), []).append(k)
    listed = "; ".join(
        f"{'from-scratch' if control == _SCRATCH else control} needs {text} tokens with {_and(ks)} pieces"
        for (control, text), ks in grouped.items()
    )
    return (
        "(a) At target at start: the pretrained model's loss on the new style is already below the target before its "
        f"first adaptation step, so no ratio exists. To reach it, {listed}."
    )


def _and(values: list[int]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _neg(value: Any) -> float | None:
    return -float(value) if is_number(value) else None


def answer_table_lines(results: dict[str, Any]) -> list[str]:
    """Markdown lines of "The answer in numbers" (none when nothing was compared)."""
    rows = results.get("comparisons") or []
    adaptation = results.get("adaptation") or {}
    adapt_rows, shots = adaptation.get("comparisons") or [], adaptation.get("shots") or []
    pairs = list(dict.fromkeys([(r["arm"], r["baseline"]) for r in rows] + [(r["arm"], r["baseline"]) for r in adapt_rows]))
    if not pairs:
        return []
    mains = [main_effect_row(results, arm, baseline) for arm, baseline in pairs if baseline != _SCRATCH]
    metric = next((row["metric"] for row in mains if row), "test_target")
    head = ["arm", "against", "seeds", "pretraining: tokens to target, ratio", f"pretraining: {_loss_name(metric)} difference"]
    head += [f"speed-up, {k} pieces" for k in shots] + [f"test loss difference, {k} pieces" for k in shots]
    lines = ["## The answer in numbers", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for arm, baseline in pairs:
        ratio = _row(rows, arm, baseline, "tokens_to_target")
        test = main_effect_row(results, arm, baseline) if baseline != _SCRATCH else None
        adapted = [_row(adapt_rows, arm, baseline, m, k) for m in ("tokens_to_target", "test") for k in shots]
        n = max((r.get("n_pairs", 0) for r in [ratio, test, *adapted] if r), default=0)
        cells = [arm, "from-scratch" if baseline == _SCRATCH else baseline, str(n)]
        cells += [effect_text(ratio, "ratio", lambda v: fmt(v, 2), "x"), effect_text(test, "diff")]
        cells += [_speedup_cell(r) for r in adapted[: len(shots)]] + [effect_text(r, "diff") for r in adapted[len(shots) :]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _table_legend(results, bool(shots))]
    note = _at_start_note(results)
    if note:
        lines += ["", note]
    return lines + [""]


def _table_legend(results: dict[str, Any], adapted: bool) -> str:
    baseline = results.get("baseline_arm") or "the baseline"
    legend = (
        f"Seed by seed, arm against control; [95% t-interval] from {MIN_SEEDS} paired seeds, each seed's value below that. "
        f"Tokens to target: arm / control (below 1: fewer tokens). Loss differences: arm minus control, nats per "
        f"token (below 0: lower loss)."
    )
    if adapted:
        style = ((results.get("adaptation") or {}).get("style") or {}).get("stage", "the new style")
        legend += (
            f" Speed-up: the control's adaptation tokens to the target on {style} / the arm's (above 1: faster); against "
            f"from-scratch the target is the level from-scratch reaches at half the budget, against {baseline} the "
            f"level {baseline} reaches."
        )
    return legend
