"""``curricmusic novelty``: score a folder of samples against the data a model was trained on.

Two views of "too close to the training data":
- audio: embeddings of the rendered samples, the training bank (training pieces) and the held-out
  bank (validation pieces of the target stage, for calibration); nearest neighbour, cosine, the
  distance ratio rho, the penalty, and the data-copying statistic C_T;
- symbolic: the longest span copied from one training piece (transposition- and tempo-invariant,
  in notes and bars, with its source) and n-gram hit rates, from the n-gram index of every stage.
A sample is flagged when its copied span reaches ``max_copied_bars`` bars, or when rho is below
the embedder's calibrated threshold, if the embedder passes the copy probe (see
:mod:`curricmusic.novelty.calibrate`; the audio-features fallback does not). Writes
``novelty.json`` and a self-contained ``novelty.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.atomic import json_safe, write_json, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, writing_folder
from curricmusic.common.progress import err_console
from curricmusic.common.readback import read_json
from curricmusic.config import NoveltySection
from curricmusic.data.prepared import PreparedData
from curricmusic.novelty.copy_index import DEFAULT_NS

#: What readers of novelty.json rely on (see curricmusic.common.readback).
NOVELTY_SCHEMA = {"summary": dict, "samples": list, "embedder": dict}

__all__ = [
    "NOVELTY_SCHEMA",
    "Against", "Scores", "resolve_against", "novelty_settings_for", "score_files", "score_novelty",
    "copying_of_sets", "NGRAM_SIZES",
]

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
        info = read_json(path / "run.json", {"prepared": str}, hint="`curricmusic train --resume` writes it again")
        assert info is not None
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
        info = read_json(path / "run.json", {"config": dict}, hint="`curricmusic train --resume` writes it again")
        assert info is not None
        recorded = info["config"].get("novelty")
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


def _time_signature(bar_len: float) -> tuple[int, int]:
    for denominator in (4, 8, 16):
        beats = bar_len * denominator / 4
        if abs(beats - round(beats)) < 1e-9 and round(beats) >= 1:
            return int(round(beats)), denominator
    return 4, 4


def _write_probes(
    data: PreparedData, stages: list[str], count: int, min_bars: float, folder: Path
) -> tuple[list[Path], list[Path]]:
    """Probe copies of training pieces (those of at least ``min_bars`` bars, so that copying one
    whole is a copy the span rule must catch) and fresh random-walk melodies, as MIDI files."""
    from curricmusic.music.notes import notes_to_score
    from curricmusic.novelty.calibrate import fresh_melody, probe_copy, probe_indices

    notes_of = {stage: data.piece_notes(stage, "train") for stage in stages}

    def bars(notes: np.ndarray, piece: dict) -> float:
        span = float((notes["onset"] + notes["duration"]).max() - notes["onset"].min()) if notes.shape[0] else 0.0
        return span / float(piece.get("bar_len") or 4.0)

    pieces = [
        (stage, i, piece)
        for stage in stages
        for i, piece in enumerate(data.pieces(stage, "train"))
        if bars(notes_of[stage][i], piece) >= min_bars + 1
    ]
    copies, fresh = [], []
    for k, j in enumerate(probe_indices(len(pieces), count)):
        stage, i, piece = pieces[j]
        notes, bar_len = probe_copy(notes_of[stage][i], float(piece.get("bar_len") or 4.0), k)
        path = folder / f"probe-copy-{k:02d}.mid"
        path.write_bytes(notes_to_score(notes, qpm=float(piece.get("qpm") or 120.0), time_signature=_time_signature(bar_len)).dumps_midi())
        copies.append(path)
    for k in range(count):
        path = folder / f"fresh-melody-{k:02d}.mid"
        path.write_bytes(notes_to_score(fresh_melody(k), qpm=100.0).dumps_midi())
        fresh.append(path)
    return copies, fresh


def _notes_and_bars(paths: list[Path]) -> tuple[list[np.ndarray], list[float]]:
    from symusic import Score

    from curricmusic.music.notes import bar_length, score_notes

    notes, bars = [], []
    for path in paths:
        score = Score(str(path))
        notes.append(score_notes(score))
        bars.append(bar_length(score))
    return notes, bars


def _rate(flags: np.ndarray) -> float:
    return float(np.mean(flags)) if flags.size else float("nan")


def score_files(
    files: list[Path],
    data: PreparedData,
    settings: NoveltySection,
    *,
    embedder_spec: str | None = None,
    bank_stages: list[str] | None = None,
    show_progress: bool = True,
) -> Scores:
    """Embedding and symbolic novelty of every file against the training data of ``data``,
    with the embedder's flag calibrated on held-out, copied and fresh material (see
    :mod:`curricmusic.novelty.calibrate`)."""
    import tempfile

    from curricmusic.novelty.copy_index import training_index
    from curricmusic.novelty.embed import embed_bank, embed_midi_files
    from curricmusic.novelty.embedders import load_embedder
    from curricmusic.novelty.score import (
        calibrated_threshold,
        data_copying_statistic,
        nearest_neighbors,
        penalty,
        penalty_tau,
        separation_auc,
        set_summary,
        stratified_ratio,
    )

    stages = bank_stages or list(settings.bank_stages or data.stage_names)
    for stage in stages:
        data.stage(stage)  # a clear error for an unknown stage
    embedder = load_embedder(embedder_spec or settings.embedder, fallback=settings.fallback)
    if getattr(embedder, "fallback_reason", None):
        err_console.print(f"[yellow]{embedder.fallback_reason}[/]")
    train_paths, train_pieces = _bank(data, stages, "train")
    heldout_paths, _ = _bank(data, stages, "val")
    fresh_paths, _ = _bank(data, stages, "test")
    heldout_split = "val"
    if not heldout_paths:
        heldout_paths, fresh_paths, heldout_split = fresh_paths, [], "test"
    if not train_paths or not heldout_paths:
        raise UserError(f"{data.root}: needs training and held-out pieces of {', '.join(stages)} to calibrate")

    kwargs: dict[str, Any] = {"progress": show_progress, "max_seconds": settings.max_seconds}
    train_bank, train_skipped = embed_bank(train_paths, embedder, **kwargs)  # memory-mapped
    bad_train = {str(s["path"]) for s in train_skipped}
    train_pieces = [p for p, path in zip(train_pieces, train_paths, strict=True) if str(path) not in bad_train]
    train_stage = np.array([p["stage"] for p in train_pieces])
    sample_emb, sample_skipped = embed_midi_files(files, embedder, **kwargs)
    bad_samples = {str(s["path"]) for s in sample_skipped}
    scored = [f for f in files if str(f) not in bad_samples]
    if not scored:
        raise UserError(f"none of the {len(files)} MIDI files could be scored: {sample_skipped[0]['reason']}")

    def neighbours(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Path]]:
        """(distance, nearest index, nearest stage, paths embedded) of every file."""
        if not paths:
            return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str), []
        emb, skipped = embed_midi_files(paths, embedder, **kwargs)
        bad = {str(s["path"]) for s in skipped}
        kept = [p for p in paths if str(p) not in bad]
        if not kept:
            return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str), []
        idx, cos = nearest_neighbors(emb, train_bank, k=1)
        return 1.0 - cos[:, 0].astype(np.float64), idx[:, 0], train_stage[idx[:, 0]], kept

    heldout_d, _, heldout_nn_stage, _ = neighbours(heldout_paths)
    sample_idx, sample_cos = nearest_neighbors(sample_emb, train_bank, k=1)
    sample_d = 1.0 - sample_cos[:, 0].astype(np.float64)
    heldout_rho, medians = stratified_ratio(heldout_d, heldout_nn_stage, heldout_d, heldout_nn_stage)
    rho, _ = stratified_ratio(sample_d, train_stage[sample_idx[:, 0]], heldout_d, heldout_nn_stage)
    tau = penalty_tau(heldout_d, settings.tau_quantile)
    penalties = penalty(sample_d, tau)

    with tempfile.TemporaryDirectory(prefix="curricmusic-probe-") as tmp:
        copy_paths, melody_paths = _write_probes(data, stages, settings.probe_copies, settings.max_copied_bars, Path(tmp))
        probe = {name: neighbours(paths) for name, paths in (("copies", copy_paths), ("fresh_in_style", fresh_paths), ("fresh_out_of_style", melody_paths))}
        probe_rho = {
            name: stratified_ratio(d, nn_stage, heldout_d, heldout_nn_stage)[0] for name, (d, _, nn_stage, _) in probe.items()
        }
        index = training_index(data, show_progress=show_progress)  # spans need no hash tables
        probe_bars = {}
        for name, (_, _, _, kept) in probe.items():
            notes, bars = _notes_and_bars(kept)
            probe_bars[name] = np.array([a.span.bars for a in index.analyze(notes, bar_len=bars, ns=NGRAM_SIZES)], dtype=np.float64)

    auc = separation_auc(probe_rho["copies"], heldout_rho)
    if settings.rho_threshold is not None:
        threshold, use_rho = float(settings.rho_threshold), True
        rho_reason = f"rho threshold {settings.rho_threshold:g} set in [novelty]"
    else:
        threshold = calibrated_threshold(heldout_rho, settings.flag_quantile)
        use_rho = bool(np.isfinite(auc) and auc >= settings.min_probe_auc)
        rho_reason = (
            f"the embedder places transposed, re-timed copies of training pieces closer than held-out music "
            f"(separation AUC {auc:.2f} >= {settings.min_probe_auc:g}); flagged below the "
            f"{settings.flag_quantile:g} quantile of held-out rho"
            if use_rho
            else f"the embedder cannot tell transposed, re-timed copies of training pieces from held-out music "
            f"(separation AUC {auc:.2f} < {settings.min_probe_auc:g}): its distance does not flag; flags rest on "
            f"the copied span ({settings.max_copied_bars:g} bars)"
        )

    def flags_of(rhos: np.ndarray, bars: np.ndarray) -> np.ndarray:
        by_rho = (rhos < threshold) if use_rho else np.zeros(rhos.shape, dtype=bool)
        return by_rho | (bars >= settings.max_copied_bars)

    notes, bars = _notes_and_bars(scored)
    analyses = index.analyze(notes, bar_len=bars, ns=NGRAM_SIZES)
    copied_bars = np.array([a.span.bars for a in analyses], dtype=np.float64)
    flags = flags_of(rho, copied_bars)
    ct_test, _ = embed_midi_files(heldout_paths + fresh_paths, embedder, **kwargs)
    copying = _copying(data_copying_statistic, train_bank.vectors, ct_test, sample_emb, settings.ct_min_cell)

    rows = []
    for i, path in enumerate(scored):
        span = analyses[i].span
        reasons = []
        if use_rho and rho[i] < threshold:
            reasons.append(f"rho {rho[i]:.2f} < {threshold:.3g}")
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
    summary.update(
        {
            "rho_median": float(np.nanmedian(rho)),
            "data_copying_C_T": copying["C_T"],
            "data_copying_cells": copying["cells"],
            "longest_copied_notes_max": int(max(a.span.notes for a in analyses)),
            "heldout_rho": heldout_rho.tolist(),
            "rho_flag": use_rho,
            "fresh_false_flag_rate": _rate(
                np.concatenate([flags_of(probe_rho[n], probe_bars[n]) for n in ("fresh_in_style", "fresh_out_of_style")])
            ),
        }
    )
    calibration = {
        "heldout": f"{heldout_split} split of {', '.join(stages)} ({heldout_d.size} pieces)",
        "heldout_nn_distance_median": float(np.median(heldout_d)),
        "heldout_nn_distance_quantiles": {f"{q:g}": float(np.quantile(heldout_d, q)) for q in (0.05, 0.1, 0.25, 0.5, 0.75, 0.95)},
        "rho_scale": {"by_nearest_stage": medians, "min_pieces": 5},
        "tau": tau,
        "rho_threshold": threshold,
        "rho_flag": use_rho,
        "rho_flag_reason": rho_reason,
        "separation_auc": auc,
        "max_copied_bars": settings.max_copied_bars,
        "probe": {
            name: {
                "n": int(probe_rho[name].size),
                "rho_median": float(np.median(probe_rho[name])) if probe_rho[name].size else float("nan"),
                "flagged_by_rho": _rate(probe_rho[name] < threshold) if use_rho else 0.0,
                "flagged_by_span": _rate(probe_bars[name] >= settings.max_copied_bars),
                "flagged": _rate(flags_of(probe_rho[name], probe_bars[name])),
            }
            for name in probe_rho
        },
        "copying_test_set": f"val and test splits of {', '.join(stages)} ({ct_test.shape[0]} pieces)",
    }
    bank = {"stages": stages, "n_train": len(train_bank), "n_heldout": int(heldout_d.size)}
    return Scores(scored, rows, sample_skipped, summary, calibration, bank, embedder)


def _copying(statistic, train: np.ndarray, test: np.ndarray, generated: np.ndarray, min_cell: int) -> dict[str, Any]:
    """C_T with cells of at least ``min_cell`` generated and ``min_cell`` held-out pieces."""
    need = max(1, min(min_cell, generated.shape[0]))
    n_cells = max(1, min(50, test.shape[0] // need, generated.shape[0] // (2 * need)))
    result = statistic(train, test, generated, n_cells=n_cells, min_generated=min_cell, seed=0)
    return {"C_T": result.c_t, "cells": int(result.kept.sum()), "n_cells": n_cells, "n_generated": int(generated.shape[0]), "n_test": int(test.shape[0])}


def copying_of_sets(
    sample_dirs: list[Path], against: str | Path, settings: NoveltySection, *, show_progress: bool = False
) -> dict[str, Any]:
    """C_T of several sample folders pooled (the seeds of one arm), against one prepared data set.

    Embeddings come from the cache the per-run scoring filled, so this costs little.
    """
    from curricmusic.novelty.embed import embed_bank, embed_midi_files
    from curricmusic.novelty.embedders import load_embedder
    from curricmusic.novelty.score import data_copying_statistic

    data = resolve_against(against).prepared
    stages = list(settings.bank_stages or data.stage_names)
    embedder = load_embedder(settings.embedder, fallback=settings.fallback)
    kwargs = {"progress": show_progress, "max_seconds": settings.max_seconds}
    train_bank, _ = embed_bank(_bank(data, stages, "train")[0], embedder, **kwargs)
    train = train_bank.vectors
    test, _ = embed_midi_files(_bank(data, stages, "val")[0] + _bank(data, stages, "test")[0], embedder, **kwargs)
    files = [f for d in sample_dirs for f in sorted(Path(d).glob("*.mid"))]
    generated, _ = embed_midi_files(files, embedder, **kwargs)
    if not generated.shape[0] or not test.shape[0]:
        return {"C_T": float("nan"), "cells": 0, "n_cells": 0, "n_generated": int(generated.shape[0]), "n_test": int(test.shape[0])}
    return _copying(data_copying_statistic, train, test, generated, settings.ct_min_cell)


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
    samples_dir, out_dir = Path(samples_dir), Path(out_dir)
    check_folder(out_dir, kind="novelty")  # refuse a folder that is not ours before any work
    files = _sample_files(samples_dir)
    with writing_folder(out_dir, "novelty"):  # one writer: a second one is refused at once
        return _score_into(files, samples_dir, against, out_dir, settings, embedder_spec, bank_stages, sources, show_progress)


def _score_into(
    files: list[Path],
    samples_dir: Path,
    against: str | Path,
    out_dir: Path,
    settings: NoveltySection,
    embedder_spec: str | None,
    bank_stages: list[str] | None,
    sources: dict[str, str] | None,
    show_progress: bool,
) -> dict[str, Any]:
    from curricmusic.novelty.render import renderer_spec
    from curricmusic.reporting.novelty_page import novelty_html

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
    write_json(out_dir / "novelty.json", report)
    write_text(out_dir / "novelty.html", novelty_html(report, samples_dir, out_dir))
    return report
