"""The report's probe section: what the model knows of key, mode and meter, against its controls."""

from __future__ import annotations

from typing import Any

from curricmusic.reporting.intervals import stats_text
from curricmusic.reporting.style import fmt

__all__ = ["probe_lines", "interval_text", "PROBE_NOTE", "EXPECTATION_NOTE"]

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

EXPECTATION_NOTE = (
    "The same probe on what the model predicts: at every position whose next token starts a note, its next-pitch "
    "distribution folded onto the 12 pitch classes, averaged over the piece (12 features). An untrained network "
    "predicts a near-uniform spread whatever the piece (leaning slightly towards the pitches it was given, through "
    "the output head tied to the embeddings), so 'initial' stays close to chance here and 'trained - initial' is "
    "what training taught about which notes a key allows. 'heard pitches' is the probe on the pitches "
    "that actually came next, the profile of a perfect predictor: the ceiling. 'key-blind neighbour' is the probe on "
    "a predictor that knows only that melodies move by small steps (the next pitch anywhere within a whole step of "
    "the last note): where the notes go already points to a key, so only a trained model that reads the key better "
    "than this has shown it learned which notes a key allows. Chromatic-scale exercises carry no key label (their "
    "notes name none)."
)


def interval_text(stats: dict[str, Any] | None) -> str:
    """``mean [low, high]``; with too few seeds for an interval, the mean and each seed's value
    (one seed: its value alone): :func:`~curricmusic.reporting.intervals.stats_text` for accuracies."""
    return stats_text(stats, fmt)


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
    lines += ["", PROBE_NOTE, ""]
    expected = [
        (name, task, entry)
        for name, probe in arms.items()
        for task, entry in probe["tasks"].items()
        if "expectation" in entry
    ]
    if expected:
        lines += [
            "### What does the model expect? Key and mode from its predicted pitch classes",
            "",
            "| arm | task | classes | chance | heard pitches | key-blind neighbour | initial weights | trained | trained - initial |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, task, entry in expected:
            e = entry["expectation"]
            lines.append(
                f"| {name} | {task} | {entry['n_classes']} | {fmt(entry['chance'])} | {fmt(e['heard'])} | {fmt(e.get('neighbour'))} | "
                f"{interval_text(e['initial'])} | {interval_text(e['trained'])} | {interval_text(e['gain'])} |"
            )
        lines += ["", EXPECTATION_NOTE, ""]
    masses = [
        (name, entry["expectation"]["scale_mass"])
        for name, task, entry in expected
        if "scale_mass" in entry["expectation"]
    ]
    if masses:
        lines += [
            "How much of the predicted next-pitch probability falls on the key's seven diatonic pitch classes "
            "(mean over the pieces with a key; a uniform spread puts 0.583 there):",
            "",
            "| arm | heard pitches | key-blind neighbour | initial weights | trained |",
            "|---|---|---|---|---|",
        ]
        for name, mass in masses:
            lines.append(
                f"| {name} | {fmt(mass['heard'])} | {fmt(mass['neighbour'])} | {interval_text(mass['initial'])} | {interval_text(mass['trained'])} |"
            )
        lines.append("")
    return lines
