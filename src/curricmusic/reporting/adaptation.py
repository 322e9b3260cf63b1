"""The report's adaptation section: what the new style is, each model's figures per shot size,
and each arm against from-scratch and against ``random``, from ``results.json`` alone."""

from __future__ import annotations

from typing import Any

from curricmusic.common.numbers import count, fmt, p_text, sig
from curricmusic.reporting.intervals import effect_text, stats_text

__all__ = ["adaptation_lines", "adaptation_figures", "adaptation_entries"]


def _random_target(adaptation: dict[str, Any]) -> str:
    """The second target, which the comparisons with ``random`` race to (absent: none)."""
    target = adaptation.get("random_target")
    if not target:
        return ""
    return f" Against `random`, speed-ups race to its own level: {sig(target.get('loss'))} ({target.get('rule', '')})."


def _to_target(stats: dict[str, Any] | None) -> tuple[str, str]:
    if not stats or not stats.get("n"):
        return "-", "-"
    return f"{stats['n_reached']}/{stats['n']}", stats_text({**stats, "mean": stats.get("restricted_mean")}, count)


def _speedup(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    if row.get("n_at_start"):
        return f"at target before adapting in {row['n_at_start']}/{row['n_pairs']} seeds"
    return effect_text(row, "speedup", lambda v: fmt(v, 2), "x")


def _shared_note(adaptation: dict[str, Any]) -> str:
    """What the ``shared`` model is, when ``[adapt] init_from`` named one."""
    name = adaptation.get("shared_model")
    if not name:
        return ""
    return (
        f" The model `shared` is `{name}` (`[adapt] init_from`), adapted alike; it was pretrained elsewhere, on other "
        "data and budget, so its figures are shown but compared with nothing."
    )


def adaptation_entries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every style's adaptation entry (``adaptations`` with several styles, else ``adaptation``)."""
    if results.get("adaptations"):
        return list(results["adaptations"])
    return [results["adaptation"]] if results.get("adaptation") else []


def _rate(adaptation: dict[str, Any]) -> str:
    """The adaptation learning rate: one for all, or chosen per model by the experiment's rule."""
    if isinstance(adaptation["lr"], list):
        rates = ", ".join(f"{lr:g}" for lr in adaptation["lr"])
        return f"a learning rate chosen per model from {rates} on the style's validation split (see the sweep below)"
    return f"learning rate {adaptation['lr']:g}"


def adaptation_lines(results: dict[str, Any]) -> list[str]:
    """Markdown lines of the section, one per new style (none when the experiment had no ``[adapt]``)."""
    lines: list[str] = []
    for adaptation in adaptation_entries(results):
        lines += _style_lines(adaptation)
    return lines


def _style_lines(adaptation: dict[str, Any]) -> list[str]:
    style = adaptation.get("style") or {}
    config = style.get("config") or {}
    source = config.get("collection") or config.get("path") or "?"
    counts = style.get("n_pieces") or {}
    pieces = ", ".join(f"{counts[s]} {s}" for s in ("train", "val", "test") if s in counts) or "not prepared"
    target = adaptation.get("target") or {}
    lines = [
        f"## Adaptation to a new style: {style.get('stage')}",
        "",
        f"Each arm's final model and a from-scratch model with the same initial weights, fine-tuned on "
        f"`{style.get('stage')}` ({source}: {pieces} pieces, split by tune; no pretraining stage holds it) "
        f"from {', '.join(str(k) for k in adaptation['shots'])} pieces (nested subsets, the same for every model of a "
        f"seed) for {count(adaptation['budget_tokens'])} tokens at {_rate(adaptation)} "
        f"({adaptation['lr_schedule']}). Target: {sig(target.get('loss'))} ({target.get('rule', '')}).{_random_target(adaptation)}"
        f"{_shared_note(adaptation)}",
        "",
        f"| model | pieces | seeds | loss after {adaptation['early_steps']} steps | final val loss | test loss "
        "| reached target | tokens to target (restricted mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in adaptation["models"]:
        for k in adaptation["shots"]:
            s = adaptation["arms"][model]["shots"][str(k)]
            reached, mean = _to_target(s["tokens_to_target"])
            lines.append(
                f"| {model} | {k} | {s['n_done']} | {stats_text(s['early_val'])} | {stats_text(s['final_val'])} | "
                f"{stats_text(s['test'])} | {reached} | {mean} |"
            )
    rows = adaptation.get("comparisons") or []
    if rows:
        lines += [
            "",
            "| arm | against | pieces | seeds | speed-up to target | tokens to target, difference | test loss difference "
            f"| loss after {adaptation['early_steps']} steps, difference | p test (Holm) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        keyed = {(r["arm"], r["baseline"], r["shots"], r["metric"]): r for r in rows}
        for arm, baseline, k in dict.fromkeys((r["arm"], r["baseline"], r["shots"]) for r in rows):
            speed = keyed.get((arm, baseline, k, "tokens_to_target"))
            test = keyed.get((arm, baseline, k, "test"))
            p = p_text(test.get("p_holm")) if test and not test.get("too_few_for_p") else "n < 5"
            lines.append(
                f"| {arm} | {baseline} | {k} | {(test or speed or {}).get('n_pairs', 0)} | {_speedup(speed)} | "
                f"{effect_text(speed, 'diff', count)} | {effect_text(test, 'diff')} | "
                f"{effect_text(keyed.get((arm, baseline, k, 'early_val')), 'diff')} | {p} |"
            )
        lines += [
            "",
            "Seed by seed. Speed-up: geometric mean of the control's tokens to the target over the arm's (above 1: "
            "faster; a seed that never arrives counts as the budget). Differences: arm minus control (below 0: fewer "
            "tokens, lower loss), nats per token. Intervals: 95% t over seeds, from 3 seeds (below that, each seed's "
            "value); p from 5 seeds.",
        ]
    return lines + [""]


def adaptation_figures(results: dict[str, Any]) -> list[tuple[bytes | None, str]]:
    """``(png, caption)`` of each adaptation figure, two per style (none without ``[adapt]``)."""
    from curricmusic.reporting import adapt_plots

    out = []
    entries = adaptation_entries(results)
    for entry in entries:
        name = f" ({(entry.get('style') or {}).get('stage')})" if len(entries) > 1 else ""
        out += [
            (adapt_plots.adaptation_curves(results, entry), f"Adaptation curves: validation loss on the new style per shot size{name}"),
            (adapt_plots.shot_size_plot(results, entry), f"Final test loss on the new style against the number of pieces{name}"),
        ]
    return out
