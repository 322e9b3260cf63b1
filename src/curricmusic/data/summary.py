"""Tables and example exports for ``data prepare`` and ``data show``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from curricmusic.common.folders import writing_folder
from curricmusic.common.paths import cache_dir
from curricmusic.common.progress import console
from curricmusic.config import CurriculumConfig, config_hash
from curricmusic.data.prepared import SPLITS, PreparedData

__all__ = ["default_prepared_dir", "print_summary", "print_stage", "export_examples", "spread", "plot_difficulty"]


def default_prepared_dir(config: CurriculumConfig) -> Path:
    """Where a curriculum is prepared when no folder is given: keyed by its config hash."""
    return cache_dir("prepared") / f"{config.name}-{config_hash(config, 12)}"


def spread(count: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(count)`` (first, ..., last), without repeats."""
    if count <= 0:
        return []
    n = min(n, count)
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, n)})


def print_summary(data: PreparedData) -> None:
    """One row per stage: pieces per split, tokens, difficulty range, skipped files."""
    table = Table(title=f"{data.manifest['curriculum']['name']} (target stage: {data.target_stage})")
    for column in ("stage", "source", "train", "val", "test", "tokens", "difficulty", "skipped"):
        table.add_column(column, justify="left" if column in ("stage", "source") else "right")
    for stage in data.manifest["stages"]:
        splits = stage["splits"]
        tokens = sum(splits[s]["n_tokens"] for s in SPLITS)
        difficulties = [p["difficulty"] for s in SPLITS for p in splits[s]["pieces"] if p["difficulty"] is not None]
        difficulty = f"{min(difficulties):.2f}-{max(difficulties):.2f}" if difficulties else "-"
        table.add_row(
            stage["name"],
            stage["source"],
            *(str(splits[s]["n_pieces"]) for s in SPLITS),
            f"{tokens:,}",
            difficulty,
            str(stage["n_skipped"]),
        )
    console.print(table)
    tunes = data.manifest.get("tunes")
    if tunes:
        by_tune = [name for name, rule in tunes["by"].items() if rule == "tune"]
        console.print(
            f"split by tune: {', '.join(by_tune) or 'no stage'} ({tunes['n_pieces_merged']} pieces share a tune "
            f"with another, in {tunes['n_merged_groups']} groups, each kept on one side of the split)"
        )
    reasons = Counter(_reason_kind(s["reason"]) for s in data.manifest["skipped"])
    if reasons:
        listed = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common(6))
        console.print(f"skipped: {listed} (reasons per file in {data.root / 'manifest.json'})")


def _reason_kind(reason: str) -> str:
    """The kind of a skip reason, without the file-specific detail ("exact duplicate of X")."""
    return reason.split(" (")[0].split(":")[0].split(" of ")[0]


def print_stage(data: PreparedData, stage: str, limit: int) -> None:
    """The easiest, middle and hardest pieces of one stage's training split, with features."""
    pieces = data.pieces(stage, "train") or data.pieces(stage, "val")
    table = Table(title=f"stage {stage}: {len(pieces)} training pieces, ordered by difficulty")
    for column in ("piece", "difficulty", "notes", "tokens", "seconds", "density", "range", "polyphony"):
        table.add_column(column, justify="left" if column == "piece" else "right")
    for index in spread(len(pieces), limit):
        piece = pieces[index]
        features = piece["features"]

        def fmt(name: str, features: dict[str, Any] = features) -> str:
            value = features.get(name)
            return "-" if value is None else f"{value:.2f}"

        table.add_row(
            piece["id"],
            f"{piece['difficulty']:.3f}" if piece["difficulty"] is not None else "-",
            str(piece["n_notes"]),
            str(piece["n_tokens"]),
            f"{piece['seconds']:.1f}",
            fmt("note_density"),
            fmt("pitch_range"),
            fmt("polyphony"),
        )
    console.print(table)


def export_examples(
    data: PreparedData, out_dir: Path, limit: int, only_stage: str | None = None
) -> list[Path]:
    """Write ``limit`` pieces per stage (easiest to hardest) as MIDI files into ``out_dir``.

    Each file is what the model trains on: the piece's tokens decoded (its piano reduction, at
    the tokenizer's resolution, with the meter and tempo it keeps), not a copy of the source.
    """
    stages = [only_stage] if only_stage else data.stage_names
    written: list[Path] = []
    with writing_folder(out_dir, "examples", "--export-midi"):
        for stage in stages:
            written += _export_stage(data, stage, out_dir, limit)
    return written


def _export_stage(data: PreparedData, stage: str, out_dir: Path, limit: int) -> list[Path]:
    from curricmusic.common.atomic import atomic_path
    from curricmusic.music.tokenizers import decode_ids

    split = "train" if data.pieces(stage, "train") else "val"
    pieces = data.pieces(stage, split)
    written = []
    for rank, index in enumerate(spread(len(pieces), limit)):
        piece = pieces[index]
        score = decode_ids(data.tokenizer, data.piece_tokens(stage, split, index))
        name = piece["id"].split("/", 1)[-1].replace("/", "_")
        target = out_dir / stage / f"{rank:02d}_{name}.mid"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".mid") as tmp:
            score.dump_midi(str(tmp))
        written.append(target)
    return written


def plot_difficulty(data: PreparedData, path: Path) -> Path:
    """A PNG: the difficulty score of every piece per stage (curriculum order, left to right) and
    each stage's share of the training tokens, to check that the stages really get harder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from curricmusic.common.atomic import atomic_path

    names = data.stage_names
    scores = [[p["difficulty"] for s in SPLITS for p in data.pieces(n, s) if p["difficulty"] is not None] for n in names]
    tokens = [data.n_tokens(n, "train") for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True)
    kept = [i for i, values in enumerate(scores) if values]
    left.violinplot([scores[i] for i in kept], positions=kept, showmedians=True)
    left.set_xticks(range(len(names)), names, rotation=15)
    left.set_ylabel("difficulty score (0-1)")
    left.set_title("Difficulty of every piece, per stage (curriculum order)")
    left.grid(alpha=0.3, axis="y")
    right.bar(range(len(names)), tokens, color="#1f77b4")
    right.set_xticks(range(len(names)), names, rotation=15)
    right.set_ylabel("training tokens")
    right.set_title("Training tokens per stage")
    right.grid(alpha=0.3, axis="y")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
