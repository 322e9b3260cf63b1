"""Tables and example exports for ``data prepare`` and ``data show``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from curricmusic.common.errors import UserError
from curricmusic.common.folders import writing_folder
from curricmusic.common.numbers import count
from curricmusic.common.paths import cache_dir
from curricmusic.common.progress import console
from curricmusic.config import CurriculumConfig, config_hash
from curricmusic.data.prepared import SPLITS, PreparedData

__all__ = [
    "default_prepared_dir",
    "print_summary",
    "print_stage",
    "print_unwritable",
    "unwritable_lines",
    "export_examples",
    "spread",
    "plot_difficulty",
]


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
    columns = ("stage", "source", "train", "val", "test", "train tokens", "tokens, all splits", "difficulty", "skipped")
    for column in columns:
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
            count(splits["train"]["n_tokens"]),
            count(tokens),
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
        listed = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common(6))
        console.print(f"skipped: {listed} (reasons per file in {data.root / 'manifest.json'})")
    print_unwritable(data)


def _pieces_text(ids: list[str], shown: int = 3) -> str:
    more = f", and {len(ids) - shown} more" if len(ids) > shown else ""
    return f"{len(ids)} piece{'s' if len(ids) != 1 else ''}: {', '.join(ids[:shown])}{more}"


def unwritable_lines(data: PreparedData, stage: str | None = None) -> list[str]:
    """What the tokenizer could not write, in words: each meter and out-of-range tempo with the
    pieces that have it (of ``stage`` only, when given), and how to keep them. Empty when the
    tokenizer wrote everything (or the folder predates the check)."""
    summary = data.manifest.get("unwritable") or {}
    tokenizer = summary.get("tokenizer") or {}
    lines = []
    keep = None if stage is None else {p["id"] for split in SPLITS for p in data.pieces(stage, split)}
    for key, what in (("time_signatures", "time signature"), ("tempos", "tempo")):
        found = {value: [i for i in ids if keep is None or i in keep] for value, ids in (summary.get(key) or {}).items()}
        found = {value: ids for value, ids in found.items() if ids}
        if not found:
            continue
        n_pieces = len({i for ids in found.values() for i in ids})
        listed = "; ".join(f"{value}{' qpm' if key == 'tempos' else ''} in {_pieces_text(ids)}" for value, ids in found.items())
        if key == "time_signatures":
            known = ", ".join(tokenizer.get("time_signatures") or []) or "none: the tokenizer writes no time signatures"
            advice = (
                f"dropped: each of these bars takes the meter before it. To keep them, add them to [tokenizer] "
                f"time_signatures in the curriculum (now: {known})"
            )
        else:
            span = tokenizer.get("tempo_range")
            where = f"outside [tokenizer] tempo_range {span[0]}-{span[1]}" if span else "the tokenizer writes no tempos"
            advice = f"{where}: written as the nearest tempo it has; widen tempo_range to keep them"
        lines.append(f"{n_pieces} piece(s) with a {what} the tokenizer cannot write ({listed}); {advice}")
    return lines


def print_unwritable(data: PreparedData, stage: str | None = None) -> None:
    """Print :func:`unwritable_lines` in yellow (nothing when nothing was lost)."""
    from rich.markup import escape

    for line in unwritable_lines(data, stage):
        console.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)


def _reason_kind(reason: str) -> str:
    """The kind of a skip reason, without the file-specific detail ("exact duplicate of X")."""
    return reason.split(" (")[0].split(":")[0].split(" of ")[0]


def _split_of(data: PreparedData, stage: str, split: str | None) -> str:
    """The split to list or export: ``split`` when given, else train (val when train is empty)."""
    if split is None:
        return "train" if data.pieces(stage, "train") else "val"
    if split not in SPLITS:
        raise UserError(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
    return split


def print_stage(data: PreparedData, stage: str, limit: int, split: str | None = None) -> None:
    """The easiest, middle and hardest pieces of one stage's split (default: training), with
    features, and the meters and tempos of the stage the tokenizer could not write."""
    chosen = _split_of(data, stage, split)
    pieces = data.pieces(stage, chosen)
    table = Table(title=f"stage {stage}: {len(pieces)} {chosen} pieces, ordered by difficulty")
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
    print_unwritable(data, stage)


def export_examples(
    data: PreparedData, out_dir: Path, limit: int, only_stage: str | None = None, split: str | None = None
) -> list[Path]:
    """Write ``limit`` pieces per stage (easiest to hardest) of ``split`` (default: training,
    else validation) as MIDI files into ``out_dir/<stage>/``.

    Each file is what the model trains on: the piece's tokens decoded (its piano reduction, at
    the tokenizer's resolution, with the meter and tempo it keeps), not a copy of the source.
    """
    stages = [only_stage] if only_stage else data.stage_names
    for stage in stages:
        _split_of(data, stage, split)  # a bad --split is refused before the folder is claimed
    written: list[Path] = []
    with writing_folder(out_dir, "examples", "--export-midi"):
        for stage in stages:
            written += _export_stage(data, stage, _split_of(data, stage, split), out_dir, limit)
    return written


def _export_stage(data: PreparedData, stage: str, split: str, out_dir: Path, limit: int) -> list[Path]:
    from curricmusic.common.atomic import atomic_path
    from curricmusic.music.tokenizers import decode_ids

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
