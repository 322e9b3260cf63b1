"""``curricmusic novelty``: score a folder of samples against the data a model was trained on.

Two views of "too close to the training data":
- audio: embeddings of the rendered samples, the training bank (training pieces) and the held-out
  bank (validation pieces of the target stage, for calibration); nearest neighbour, cosine, the
  distance ratio rho, the penalty, and the data-copying statistic C_T;
- symbolic: the longest span copied from one training piece (transposition- and tempo-invariant,
  in notes and bars, with its source) and n-gram hit rates, from the n-gram index of every stage.
A sample is flagged when rho is below ``rho_threshold`` or its copied span reaches
``max_copied_bars`` bars. Writes ``novelty.json`` and a self-contained ``novelty.html``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.atomic import json_safe, write_json, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, claim_folder
from curricmusic.common.progress import err_console
from curricmusic.config import NoveltySection
from curricmusic.data.prepared import PreparedData
from curricmusic.novelty.copy_index import DEFAULT_NS

__all__ = ["Against", "Scores", "resolve_against", "novelty_settings_for", "score_files", "score_novelty", "NGRAM_SIZES"]

NGRAM_SIZES = DEFAULT_NS  # the n-gram hit rates reported per sample


@dataclass(frozen=True)
class Against:
    """The training data to compare with: a prepared folder, and the run that used it if any."""

    prepared: PreparedData
    run_dir: Path | None

    @property
    def bank_stages(self) -> list[str]:
        return self.prepared.stage_names


def resolve_against(path: str | Path) -> Against:
    """A run folder (its prepared data) or a prepared folder."""
    path = Path(path)
    if (path / "run.json").is_file():
        info = json.loads((path / "run.json").read_text())
        return Against(PreparedData.open(info["prepared"]), path)
    if (path / "manifest.json").is_file():
        return Against(PreparedData.open(path), None)
    raise UserError(f"{path}: --against needs a run folder (with run.json) or a prepared folder (with manifest.json)")


_NOVELTY_FLAGS = {"embedder": "--embedder", "bank_stages": "--bank-stage", "max_seconds": "--max-seconds"}


def novelty_settings_for(against: str | Path, flags: dict[str, Any]) -> tuple[NoveltySection, dict[str, str]]:
    """How to score against ``against``: a run's recorded ``[novelty]`` section with ``flags`` over
    it (a prepared folder has none: defaults). ``max_seconds = 0`` means the whole piece.

    Returns the settings and where each value came from (``flag``, ``experiment`` or ``default``).
    """
    from curricmusic.config.generation import layered

    path = Path(against)
    recorded, source = None, str(path)
    if (path / "run.json").is_file():
        source = str(path / "run.json")
        recorded = (json.loads((path / "run.json").read_text()).get("config") or {}).get("novelty")
    whole = flags.get("max_seconds") == 0
    given = {**flags, "max_seconds": None} if whole else flags
    settings, sources = layered(NoveltySection, recorded, given, source=source, section="novelty", flag_names=_NOVELTY_FLAGS)
    if whole:
        settings = settings.model_copy(update={"max_seconds": None})
        sources["max_seconds"] = "flag"
    return settings, sources


def _sample_files(samples_dir: Path) -> list[Path]:
    if not samples_dir.is_dir():
        raise UserError(f"{samples_dir}: no such folder of samples")
    files = sorted(p for p in samples_dir.iterdir() if p.suffix.lower() in (".mid", ".midi") and p.is_file())
    if not files:
        raise UserError(f"{samples_dir}: no .mid or .midi files to score")
    return files


def _bank(data: PreparedData, stages: list[str], split: str) -> tuple[list[Path], list[dict]]:
    paths, pieces = [], []
    for stage in stages:
        for piece in data.pieces(stage, split):
            paths.append(data.piece_path(piece))
            pieces.append({"id": piece["id"], "stage": stage, "origin": piece["origin"]})
    return paths, pieces


@dataclass
class Scores:
    """Everything measured for a list of sample files (rows in the order of ``files``)."""

    files: list[Path]
    rows: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    summary: dict[str, Any]
    calibration: dict[str, Any]
    bank: dict[str, Any]
    embedder: Any


@dataclass
class _Embedded:
    """The embeddings of the training bank (memory-mapped), the held-out pieces and the samples."""

    embedder: Any
    train_bank: Any  # EmbeddingBank
    train_pieces: list[dict]  # one per bank row
    heldout: np.ndarray  # (H, D)
    samples: np.ndarray  # (S, D), one per file of ``scored``
    scored: list[Path]
    sample_skipped: list[dict[str, str]]


def _embed_all(files, data, stages, settings, embedder_spec, show_progress) -> _Embedded:
    """Load the embedder, embed the training bank (streamed to a bank file), the held-out
    pieces of the target stage (val, else test) and the samples; drop what cannot be read."""
    from curricmusic.novelty.embed import embed_bank, embed_midi_files
    from curricmusic.novelty.embedders import load_embedder

    for stage in stages:
        data.stage(stage)  # a clear error for an unknown stage
    embedder = load_embedder(embedder_spec or settings.embedder, fallback=settings.fallback)
    if getattr(embedder, "fallback_reason", None):
        err_console.print(f"[yellow]{embedder.fallback_reason}[/]")
    train_paths, train_pieces = _bank(data, stages, "train")
    heldout_paths, _ = _bank(data, [data.target_stage], "val")
    if not heldout_paths:
        heldout_paths, _ = _bank(data, [data.target_stage], "test")
    if not train_paths or not heldout_paths:
        raise UserError(f"{data.root}: needs training pieces and held-out pieces of {data.target_stage!r} to calibrate")
    kwargs: dict[str, Any] = {"progress": show_progress, "max_seconds": settings.max_seconds}
    train_bank, train_skipped = embed_bank(train_paths, embedder, **kwargs)
    heldout_emb, _ = embed_midi_files(heldout_paths, embedder, **kwargs)
    sample_emb, sample_skipped = embed_midi_files(files, embedder, **kwargs)
    bad_train = {str(s["path"]) for s in train_skipped}
    train_pieces = [p for p, path in zip(train_pieces, train_paths, strict=True) if str(path) not in bad_train]
    bad_samples = {str(s["path"]) for s in sample_skipped}
    scored = [f for f in files if str(f) not in bad_samples]
    if not scored:
        raise UserError(f"none of the {len(files)} MIDI files could be scored: {sample_skipped[0]['reason']}")
    return _Embedded(embedder, train_bank, train_pieces, heldout_emb, sample_emb, scored, sample_skipped)


def _copy_analyses(data: PreparedData, scored: list[Path], show_progress: bool):
    """Longest copied span and hit rates of every sample against the (cached) copy index."""
    from symusic import Score

    from curricmusic.music.notes import bar_length, score_notes
    from curricmusic.novelty.copy_index import training_index

    index = training_index(data, show_progress=show_progress)
    notes, bars = [], []
    for path in scored:
        score = Score(str(path))
        notes.append(score_notes(score))
        bars.append(bar_length(score))
    return index.analyze(notes, bar_len=bars, ns=NGRAM_SIZES)


def score_files(
    files: list[Path],
    data: PreparedData,
    settings: NoveltySection,
    *,
    embedder_spec: str | None = None,
    bank_stages: list[str] | None = None,
    show_progress: bool = True,
) -> Scores:
    """Embedding and symbolic novelty of every file against the training data of ``data``."""
    from curricmusic.novelty.score import (
        data_copying_statistic,
        distance_ratio,
        flag,
        nearest_neighbors,
        penalty,
        penalty_tau,
        set_summary,
    )

    stages = bank_stages or list(settings.bank_stages or data.stage_names)
    emb = _embed_all(files, data, stages, settings, embedder_spec, show_progress)
    embedder, train_bank, train_pieces = emb.embedder, emb.train_bank, emb.train_pieces
    heldout_emb, sample_emb, scored, sample_skipped = emb.heldout, emb.samples, emb.scored, emb.sample_skipped

    _, heldout_cos = nearest_neighbors(heldout_emb, train_bank, k=1)
    heldout_d = 1.0 - heldout_cos[:, 0].astype(np.float64)
    sample_idx, sample_cos = nearest_neighbors(sample_emb, train_bank, k=1)
    sample_d = 1.0 - sample_cos[:, 0].astype(np.float64)
    rho = distance_ratio(sample_d, heldout_d)
    tau = penalty_tau(heldout_d, settings.tau_quantile)
    penalties = penalty(sample_d, tau)

    analyses = _copy_analyses(data, scored, show_progress)
    copied_bars = np.array([a.span.bars for a in analyses], dtype=np.float64)
    flags = flag(rho, copied_bars, settings.rho_threshold, settings.max_copied_bars)
    copying = data_copying_statistic(train_bank.vectors, heldout_emb, sample_emb, seed=0)

    rows = []
    for i, path in enumerate(scored):
        span = analyses[i].span
        reasons = []
        if rho[i] < settings.rho_threshold:
            reasons.append(f"rho {rho[i]:.2f} < {settings.rho_threshold:g}")
        if copied_bars[i] >= settings.max_copied_bars:
            reasons.append(f"copied {copied_bars[i]:.1f} bars >= {settings.max_copied_bars:g}")
        rows.append(
            {
                "file": path.name,
                "nearest": train_pieces[int(sample_idx[i, 0])],
                "cosine": float(sample_cos[i, 0]),
                "distance": float(sample_d[i]),
                "rho": float(rho[i]),
                "penalty": float(penalties[i]),
                "copied_span": {
                    "notes": int(span.notes),
                    "bars": float(span.bars),
                    "piece_id": span.piece_id,
                    "piece_note_index": span.piece_note_index,
                    "query_note_index": span.query_note_index,
                },
                "hit_rates": {str(n): float(r) for n, r in analyses[i].hit_rates.items()},
                "flagged": bool(flags[i]),
                "flag_reasons": reasons,
            }
        )
    summary = set_summary(flags, rho, copied_bars)
    heldout_median = float(np.median(heldout_d))
    summary.update(
        {
            "rho_median": float(np.nanmedian(rho)),
            "data_copying_C_T": copying.c_t,
            "data_copying_cells": int(copying.kept.sum()),
            "longest_copied_notes_max": int(max(a.span.notes for a in analyses)),
            "heldout_rho": (heldout_d / heldout_median).tolist() if heldout_median > 0 else [],
        }
    )
    calibration = {
        "heldout_nn_distance_median": heldout_median,
        "heldout_nn_distance_quantiles": {f"{q:g}": float(np.quantile(heldout_d, q)) for q in (0.05, 0.1, 0.25, 0.5, 0.75, 0.95)},
        "tau": tau,
    }
    bank = {"stages": stages, "n_train": len(train_bank), "n_heldout": int(heldout_emb.shape[0])}
    return Scores(scored, rows, sample_skipped, summary, calibration, bank, embedder)


def score_novelty(
    samples_dir: str | Path,
    against: str | Path,
    out_dir: str | Path,
    settings: NoveltySection,
    *,
    embedder_spec: str | None = None,
    bank_stages: list[str] | None = None,
    sources: dict[str, str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score every MIDI file in ``samples_dir``; write ``novelty.json`` and ``novelty.html``.

    ``sources`` (where each setting came from, see :func:`novelty_settings_for`) is recorded.
    """
    from curricmusic.novelty.render import renderer_spec
    from curricmusic.reporting.novelty_page import novelty_html

    samples_dir, out_dir = Path(samples_dir), Path(out_dir)
    check_folder(out_dir, kind="novelty")  # refuse a folder that is not ours before any work
    files = _sample_files(samples_dir)
    data = resolve_against(against).prepared
    scores = score_files(
        files, data, settings, embedder_spec=embedder_spec, bank_stages=bank_stages, show_progress=show_progress
    )
    embedder = scores.embedder
    report = {
        "samples_dir": str(samples_dir.resolve()),
        "against": str(Path(against).resolve()),
        "prepared": str(data.root),
        "embedder": {
            **embedder.describe(),
            "requested": embedder_spec or settings.embedder,
            "weights_real": bool(getattr(embedder, "weights_real", False)),
            "fallback_reason": getattr(embedder, "fallback_reason", None),
        },
        "renderer": renderer_spec("soundfont", None, embedder.sample_rate) if embedder.input == "audio" else None,
        "settings": settings.model_dump(mode="json"),
        "settings_source": sources or {},
        "bank": scores.bank,
        "calibration": scores.calibration,
        "samples": scores.rows,
        "skipped": scores.skipped,
        "summary": scores.summary,
    }
    report = json_safe(report)
    claim_folder(out_dir, "novelty")
    write_json(out_dir / "novelty.json", report)
    write_text(out_dir / "novelty.html", novelty_html(report, samples_dir, out_dir))
    return report
