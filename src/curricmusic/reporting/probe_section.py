"""The report's probe section: what the model knows of key, mode and meter, against its controls."""

from __future__ import annotations

from typing import Any

from curricmusic.reporting.style import fmt

__all__ = ["probe_lines", "interval_text", "PROBE_NOTE"]

PROBE_NOTE = (
    "Linear probe (multinomial logistic regression, 5-fold stratified cross-validation) on the mean of the final "
    "hidden states over the first window of each held-out piece (validation and test splits of every stage). "
    "'initial' is the same probe on the seed's untrained weights, the control every arm of the seed starts from; "
    "'trained - initial' is what training added (paired by seed). 'bag of tokens' is the probe on the input's token "
    "counts, with no network: a random network's pooled features are close to a random projection of them, and they "
    "already hold a piece's pitches (much of its key) and its time-signature token (its meter). 'mode' (major or "
    "minor) is the transposition-controlled task: over pieces in every key, pitch counts alone do not separate it "
    "linearly. Chance is the commonest label's share."
)


def interval_text(stats: dict[str, Any] | None) -> str:
    """``mean [low, high]``; with too few seeds for an interval, the mean and each seed's value
    (one seed: its value alone)."""
    if not stats or stats.get("mean") is None:
        return "-"
    if stats.get("too_few"):
        values = stats.get("values", [])
        if len(values) == 1:
            return fmt(stats["mean"])
        return f"{fmt(stats['mean'])} (seeds: {', '.join(fmt(v) for v in values)})" if values else "-"
    return f"{fmt(stats['mean'])} [{fmt(stats['ci_low'])}, {fmt(stats['ci_high'])}]"


def probe_lines(results: dict[str, Any]) -> list[str]:
    """Markdown lines of the section (none when no arm was probed)."""
    arms = {name: arm["probe"] for name, arm in results.get("arms", {}).items() if arm.get("probe", {}).get("tasks")}
    if not arms:
        return []
    pieces = next(iter(arms.values())).get("pieces", {})
    stages = ", ".join(f"{stage} {n}" for stage, n in pieces.get("per_stage", {}).items())
    lines = [
        "## What did the model learn? Linear probes of key, mode and meter",
        "",
        f"{pieces.get('n', '-')} held-out pieces ({stages}), first {pieces.get('seq_len', '-')} tokens each.",
        "",
        "| arm | task | classes | chance | bag of tokens | initial weights | trained | trained - initial |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, probe in arms.items():
        for task, entry in probe["tasks"].items():
            lines.append(
                f"| {name} | {task} | {entry['n_classes']} | {fmt(entry['chance'])} | {fmt(entry.get('bag_of_tokens'))} | "
                f"{interval_text(entry['initial'])} | {interval_text(entry['trained'])} | {interval_text(entry['gain'])} |"
            )
    return lines + ["", PROBE_NOTE, ""]
