"""The report's sections on the mastery study's measures, from ``results.json`` alone: the declared
claims (confirmatory, Holm-corrected), mastery of the basics per arm and stage, the key share per
stage at the end, the new styles' distance over pretraining, and per style the learning speed of
every model with the learning-rate sweep that chose its rate. Each section is left out when the
experiment did not measure what it shows."""

from __future__ import annotations

import math
from typing import Any

from curricmusic.common.numbers import p_text
from curricmusic.reporting.adaptation import adaptation_entries
from curricmusic.reporting.style import fmt

__all__ = ["mastery_lines", "mastery_figures", "claims_lines", "basics_lines", "speed_lines", "sweep_lines"]

MIN_SEEDS = 3  # values an interval needs (evaluation.stats.MIN_SEEDS_FOR_CI)


def _stats(stats: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean [low, high]``; with too few values for an interval, the mean and each value."""
    if not stats or stats.get("mean") is None or not stats.get("n"):
        return "-"
    if stats.get("too_few") or stats.get("ci_low") is None:
        values = ", ".join(fmt(v, digits) for v in stats.get("values", []) if v is not None)
        return f"{fmt(stats['mean'], digits)} (values: {values})"
    return f"{fmt(stats['mean'], digits)} [{fmt(stats['ci_low'], digits)}, {fmt(stats['ci_high'], digits)}]"


def _interval(row: dict[str, Any], low: str, high: str, digits: int = 3) -> str:
    if row.get("n_pairs", 0) < MIN_SEEDS:
        return f"{fmt(row.get('diff'), digits)} (n={row.get('n_pairs', 0)}: no interval)"
    return f"{fmt(row.get('diff'), digits)} [{fmt(row.get(low), digits)}, {fmt(row.get(high), digits)}]"


def claims_lines(results: dict[str, Any]) -> list[str]:
    """The declared claims: each with its 95% and corrected intervals, p, Holm's p, and the
    difference the seeds could detect at the corrected level."""
    claims = results.get("claims")
    if not claims:
        return []
    level = claims["corrected_level"]
    lines = [
        "## Declared claims (confirmatory)",
        "",
        f"The experiment file declared these {claims['m']} comparisons before the run; they are corrected as one "
        f"family (Holm, family-wise alpha {claims['alpha']:g}). Every other comparison in this report is exploratory.",
        "",
        f"| claim | seeds | difference [95%] | difference [{level:.1%}, corrected] | p | p (Holm) | detectable at the corrected level | holds after correction |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in claims["rows"]:
        p = p_text(row["p_value"]) if not row.get("too_few_for_p") else "n < 5"
        p_holm = p_text(row.get("p_holm")) if not row.get("too_few_for_p") else "-"
        verdict = "yes" if row.get("significant") else "no"
        lines.append(
            f"| {row['label']} | {row['n_pairs']} | {_interval(row, 'diff_ci_low', 'diff_ci_high')} | "
            f"{_interval(row, 'diff_ci_low_corrected', 'diff_ci_high_corrected')} | {p} | {p_holm} | "
            f"{fmt(row.get('detectable_diff_corrected'))} | {verdict} |"
        )
    lines += [
        "",
        f"Difference: arm minus control, seed by seed (for drop and gap closed higher is better, for every other "
        f"measure lower is better). Rule: {claims['rule']}.",
        "",
    ]
    return lines


def basics_lines(results: dict[str, Any]) -> list[str]:
    """Per arm with a mastery record and basics stage: how many runs mastered it or hit the cap,
    the tokens at the boundary and the key share there."""
    arms = {name: arm["mastery"] for name, arm in results["arms"].items() if arm.get("mastery")}
    if not arms:
        return []
    lines = [
        "## Mastery of the basics",
        "",
        "| arm | stage | criterion | mastered | cap hit | not finished | tokens at the boundary | the stage's tokens | "
        "criterion value | key share there (evaluation) | key share there (probe, held-out val + test) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, mastery in arms.items():
        criteria = {c["stage"]: c for c in mastery["criteria"]}
        for stage, entry in mastery["stages"].items():
            criterion = criteria.get(stage, {})
            rule = criterion.get("criterion", "?")
            if criterion.get("threshold") is not None:
                rule += f" >= {criterion['threshold']:g}"
            lines.append(
                f"| {name} | {stage} | {rule} | {entry['n_mastered']}/{entry['n_runs']} | {entry['n_cap_hit']} | "
                f"{entry['n_not_ended']} | {_stats(entry['tokens'], 0)} | {_stats(entry['stage_tokens'], 0)} | "
                f"{_stats(entry['value'])} | {_stats(entry['key_share'])} | {_stats(entry['probe_key_share'])} |"
            )
    lines += [
        "",
        "Mean [95% t-interval] over the runs that finished the stage. A stage is mastered when its criterion held at "
        "an evaluation (plateau: the stage's validation loss stopped improving; key_share: the share of the "
        "predicted next pitch on the key's seven diatonic pitch classes, on the stage's held-out pieces, reached the "
        "threshold; a uniform spread puts 0.583 there); 'cap hit' means the token cap ended the stage first. The "
        "evaluation's key share uses the in-training subset of validation pieces; the probe's, every validation and "
        "test piece of the stage, on the model saved at the boundary.",
        "",
    ]
    return lines


def key_share_lines(results: dict[str, Any]) -> list[str]:
    """The key share of each stage's held-out pieces under every arm's final model."""
    arms = {n: a["probe"]["key_share_by_stage"] for n, a in results["arms"].items() if (a.get("probe") or {}).get("key_share_by_stage")}
    if not arms:
        return []
    stages = list(next(iter(arms.values()))["trained"])
    heard = next(iter(arms.values())).get("heard", {})
    lines = [
        "## Key share by stage at the end of pretraining",
        "",
        "| arm | " + " | ".join(stages) + " |",
        "|---" * (len(stages) + 1) + "|",
        "| the music itself (heard) | " + " | ".join(fmt((heard.get(s) or {}).get("mean")) for s in stages) + " |",
    ]
    for name, entry in arms.items():
        lines.append(f"| {name} | " + " | ".join(_stats(entry["trained"].get(s)) for s in stages) + " |")
    lines += [
        "",
        "Share of each final model's predicted next pitch on the key's diatonic pitch classes, held-out pieces "
        "(validation and test) of each stage; 0.583 is a uniform spread.",
        "",
    ]
    return lines


def zero_shot_lines(results: dict[str, Any]) -> list[str]:
    """Each arm's final validation loss on each new style before any adaptation."""
    per_arm: dict[str, dict[str, list[float]]] = {}
    for run in results["runs"]:
        for style, loss in (run.get("final_style_loss") or {}).items():
            per_arm.setdefault(run["arm"], {}).setdefault(style, []).append(loss)
    if not per_arm:
        return []
    styles = sorted({s for entry in per_arm.values() for s in entry})
    lines = [
        "## Distance to the new styles at the end of pretraining (zero-shot)",
        "",
        "| arm | " + " | ".join(styles) + " |",
        "|---" * (len(styles) + 1) + "|",
    ]
    for name, entry in per_arm.items():
        cells = []
        for style in styles:
            values = [v for v in entry.get(style, []) if isinstance(v, int | float) and math.isfinite(v)]
            cells.append(f"{fmt(sum(values) / len(values))} (n={len(values)})" if values else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Mean validation loss (nats/token) on every validation token of each style, by the final model.", ""]
    return lines


def speed_lines(adaptation: dict[str, Any]) -> list[str]:
    """Per model and shot size: the learning-speed measures of the adaptation runs."""
    steps = adaptation.get("report_steps") or []
    style = (adaptation.get("style") or {}).get("stage")
    target = adaptation.get("target") or {}
    lines = [
        f"### Learning speed on {style}",
        "",
        "| model | pieces | lr | epochs | loss at step 0 | " + " | ".join(f"after {k} steps" for k in steps)
        + " | final | drop | gap closed | area under the curve | reached the level | tokens to the level |",
        "|---" * (10 + len(steps)) + "|",
    ]
    for model in adaptation["models"]:
        for k in adaptation["shots"]:
            s = adaptation["arms"][model]["shots"][str(k)]
            t = s["tokens_to_target"]
            reached = f"{t['n_reached']}/{t['n']}" if t.get("n") else "-"
            lines.append(
                f"| {model} | {k} | {format(s['lr'], 'g') if s.get('lr') else '-'} | {_stats(s.get('epochs'), 1)} | "
                f"{_stats(s.get('start_val'))} | "
                + " | ".join(_stats(s.get(f"val_at_{step}")) for step in steps)
                + f" | {_stats(s.get('final_val'))} | {_stats(s.get('drop'))} | {_stats(s.get('gap_closed'))} | "
                f"{_stats(s.get('auc_val'))} | {reached} | {_stats({**t, 'mean': t.get('restricted_mean')}, 0)} |"
            )
    lines += [
        "",
        f"Validation loss on the style (nats/token), mean [95% t-interval] over seeds, each model at its chosen learning "
        f"rate. Drop: loss at step 0 minus final. Gap closed: the share of the gap between the step-0 loss and "
        f"from-scratch's final level (at the same number of pieces) that the run closed (none where a model starts "
        f"below that level). Area under the curve: the curve's mean height over the budget. Tokens to the level "
        f"{fmt(target.get('loss'))} ({target.get('rule', '')}): linear between evaluations; a run that never gets "
        f"there counts as the budget (restricted mean).",
        "",
    ]
    return lines


def sweep_lines(adaptation: dict[str, Any]) -> list[str]:
    """The adaptation learning-rate sweep: every candidate's score and the chosen rate."""
    selection = adaptation.get("lr_selection") or {}
    models = selection.get("models") or {}
    if not isinstance(adaptation.get("lr"), list) or not models:
        return []
    metric = selection["metric"]
    rates = [c["lr"] for c in next(iter(next(iter(models.values())).values()))["candidates"]]
    lines = [
        f"### Adaptation learning rates on {(adaptation.get('style') or {}).get('stage')}: the sweep",
        "",
        "| model | pieces | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |",
        "|---" * (len(rates) + 3) + "|",
    ]
    for model, per_shot in models.items():
        for k, entry in per_shot.items():
            if k == "pooled":
                continue
            cells = [fmt(c[f"mean_{metric}"]) + ("" if not c["n_failed"] else f" ({c['n_failed']} missing)") for c in entry["candidates"]]
            lines.append(f"| {model} | {k} | " + " | ".join(cells) + f" | {entry['chosen']:g} |")
    lines += ["", f"Mean over seeds of {metric} on the style's validation split. Rule: {selection['rule']}.", ""]
    return lines


def mastery_lines(results: dict[str, Any]) -> list[str]:
    """Every section of this module that the results have data for, in report order."""
    lines = claims_lines(results) + basics_lines(results) + key_share_lines(results) + zero_shot_lines(results)
    for adaptation in adaptation_entries(results):
        if adaptation.get("report_steps") is not None:
            lines += speed_lines(adaptation) + sweep_lines(adaptation)
    return lines


def mastery_figures(results: dict[str, Any]) -> list[tuple[str, bytes | None, str]]:
    """``(file name, png or None, caption)`` of this module's figures."""
    from curricmusic.reporting.mastery_plots import measure_curves

    png = measure_curves(results)
    if png is None:
        return []
    return [
        (
            "pretraining_measures.png",
            png,
            "What each arm learned and forgot during pretraining: one panel per measure, one line per arm (mean over "
            "seeds), on the in-training evaluation set (a seeded subset of held-out pieces when the experiment sets "
            "eval_pieces)",
        )
    ]
