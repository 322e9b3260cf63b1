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

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from curricmusic.common.atomic import json_safe, write_json, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, writing_folder
from curricmusic.common.progress import err_console
from curricmusic.common.run_folder import is_run_folder, read_run
from curricmusic.config import NoveltySection
from curricmusic.data.prepared import PreparedData
from curricmusic.novelty.copy_index import DEFAULT_NS, CopyAnalysis, NGramIndex

if TYPE_CHECKING:  # annotations only: these modules load torch
    from curricmusic.novelty.embedders import Embedder
    from curricmusic.novelty.score import CopyingTest, EmbeddingBank

#: What readers of novelty.json rely on (see curricmusic.common.readback).
NOVELTY_SCHEMA = {"summary": dict, "samples": list, "embedder": dict}

__all__ = [
    "NOVELTY_SCHEMA",
    "Against", "Scores", "resolve_against", "score_files", "score_novelty",
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
    if is_run_folder(path):
        return Against(PreparedData.open(read_run(path)["prepared"]), path)
    if (path / "manifest.json").is_file():
        return Against(PreparedData.open(path), None)
    raise UserError(f"{path}: --against needs a run folder (with run.json) or a prepared folder (with manifest.json)")


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


@dataclass(frozen=True)
class _Banks:
    """The data's pieces a sample is measured against, as MIDI paths: the training bank, the
    held-out pieces that calibrate the distance (the val split, else test) and fresh ones (test,
    when val calibrates)."""

    stages: list[str]
    train_paths: list[Path]
    train_pieces: list[dict]  # {id, stage, origin} per training path
    heldout_paths: list[Path]
    fresh_paths: list[Path]
    heldout_split: str


def _banks(data: PreparedData, stages: list[str]) -> _Banks:
    train_paths, train_pieces = _bank(data, stages, "train")
    heldout_paths, _ = _bank(data, stages, "val")
    fresh_paths, _ = _bank(data, stages, "test")
    heldout_split = "val"
    if not heldout_paths:
        heldout_paths, fresh_paths, heldout_split = fresh_paths, [], "test"
    if not train_paths or not heldout_paths:
        raise UserError(f"{data.root}: needs training and held-out pieces of {', '.join(stages)} to calibrate")
    return _Banks(stages, train_paths, train_pieces, heldout_paths, fresh_paths, heldout_split)


class _Nearest(NamedTuple):
    """Each embedded file's nearest training piece; rows in the order of ``kept``."""

    distance: np.ndarray  # (N,) float64, 1 - cosine
    cosine: np.ndarray  # (N,)
    row: np.ndarray  # (N,) int64, row of the training bank
    stage: np.ndarray  # (N,) that row's stage
    kept: list[Path]  # the files embedded (a file that cannot be rendered is left out)


_NO_NEAREST = _Nearest(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str), [])


@dataclass(frozen=True)
class _TrainingBank:
    """The training pieces embedded (memory-mapped), and how to embed anything else alike."""

    embedder: Embedder
    bank: EmbeddingBank  # (n_train, D)
    pieces: list[dict]  # (n_train,) {id, stage, origin}
    stage: np.ndarray  # (n_train,) str
    options: dict[str, Any]  # for embed_midi_files: progress, max_seconds

    def embed(self, paths: list[Path]) -> tuple[np.ndarray, list[dict[str, str]], list[Path]]:
        """``(embeddings (N, D), skipped, the paths embedded)``."""
        from curricmusic.novelty.embed import embed_midi_files

        embeddings, skipped = embed_midi_files(paths, self.embedder, **self.options)
        bad = {str(s["path"]) for s in skipped}
        return embeddings, skipped, [p for p in paths if str(p) not in bad]

    def nearest_of(self, embeddings: np.ndarray, kept: list[Path]) -> _Nearest:
        from curricmusic.novelty.score import nearest_neighbors

        idx, cos = nearest_neighbors(embeddings, self.bank, k=1)
        return _Nearest(1.0 - cos[:, 0].astype(np.float64), cos[:, 0], idx[:, 0], self.stage[idx[:, 0]], kept)

    def nearest(self, paths: list[Path]) -> _Nearest:
        if not paths:
            return _NO_NEAREST
        embeddings, _, kept = self.embed(paths)
        return self.nearest_of(embeddings, kept) if kept else _NO_NEAREST


def _training_bank(banks: _Banks, spec: str, settings: NoveltySection, show_progress: bool) -> _TrainingBank:
    """Load the embedder (saying so when it falls back) and embed the training pieces."""
    from curricmusic.novelty.embed import embed_bank
    from curricmusic.novelty.embedders import load_embedder

    embedder = load_embedder(spec, fallback=settings.fallback)
    if getattr(embedder, "fallback_reason", None):
        err_console.print(f"[yellow]{embedder.fallback_reason}[/]")
    options: dict[str, Any] = {"progress": show_progress, "max_seconds": settings.max_seconds}
    bank, skipped = embed_bank(banks.train_paths, embedder, **options)  # memory-mapped
    bad = {str(s["path"]) for s in skipped}
    pieces = [p for p, path in zip(banks.train_pieces, banks.train_paths, strict=True) if str(path) not in bad]
    return _TrainingBank(embedder, bank, pieces, np.array([p["stage"] for p in pieces]), options)


@dataclass(frozen=True)
class _FlagRule:
    """When a sample is flagged: its copied span reaches ``max_copied_bars`` bars, or (when the
    embedder earned it) its distance ratio rho is below ``threshold``."""

    threshold: float
    use_rho: bool
    reason: str
    max_copied_bars: float

    def flags(self, rhos: np.ndarray, bars: np.ndarray) -> np.ndarray:
        by_rho = (rhos < self.threshold) if self.use_rho else np.zeros(rhos.shape, dtype=bool)
        return by_rho | (bars >= self.max_copied_bars)

    def reasons(self, rho: float, bars: float) -> list[str]:
        out = []
        if self.use_rho and rho < self.threshold:
            out.append(f"rho {rho:.2f} < {self.threshold:.3g}")
        if bars >= self.max_copied_bars:
            out.append(f"copied {bars:.1f} bars >= {self.max_copied_bars:g}")
        return out


def _flag_rule(settings: NoveltySection, auc: float, heldout_rho: np.ndarray) -> _FlagRule:
    """The rho threshold set in ``[novelty]``, else the calibrated one, used only when the probe
    shows the embedder places copies closer than held-out music."""
    from curricmusic.novelty.score import calibrated_threshold

    if settings.rho_threshold is not None:
        reason = f"rho threshold {settings.rho_threshold:g} set in [novelty]"
        return _FlagRule(float(settings.rho_threshold), True, reason, settings.max_copied_bars)
    threshold = calibrated_threshold(heldout_rho, settings.flag_quantile)
    use_rho = bool(np.isfinite(auc) and auc >= settings.min_probe_auc)
    reason = (
        f"the embedder places transposed, re-timed copies of training pieces closer than held-out music "
        f"(separation AUC {auc:.2f} >= {settings.min_probe_auc:g}); flagged below the "
        f"{settings.flag_quantile:g} quantile of held-out rho"
        if use_rho
        else f"the embedder cannot tell transposed, re-timed copies of training pieces from held-out music "
        f"(separation AUC {auc:.2f} < {settings.min_probe_auc:g}): its distance does not flag; flags rest on "
        f"the copied span ({settings.max_copied_bars:g} bars)"
    )
    return _FlagRule(threshold, use_rho, reason, settings.max_copied_bars)


@dataclass(frozen=True)
class _Calibration:
    """What held-out pieces and probes (copies, fresh music) say about the distance flag."""

    heldout: _Nearest
    heldout_rho: np.ndarray  # (n_heldout,)
    medians: dict[str, float]  # the rho scale per nearest stage
    tau: float
    auc: float
    rule: _FlagRule
    probe_rho: dict[str, np.ndarray]  # copies, fresh_in_style, fresh_out_of_style
    probe_bars: dict[str, np.ndarray]
    index: NGramIndex  # every stage's training pieces, for copied spans

    def ratio(self, nearest: _Nearest) -> np.ndarray:
        """rho of each row: its distance over the held-out median of its nearest piece's stage."""
        from curricmusic.novelty.score import stratified_ratio

        return stratified_ratio(nearest.distance, nearest.stage, self.heldout.distance, self.heldout.stage)[0]


def _calibrate(
    data: PreparedData, banks: _Banks, training: _TrainingBank, settings: NoveltySection, show_progress: bool
) -> _Calibration:
    from curricmusic.novelty.copy_index import training_index
    from curricmusic.novelty.score import penalty_tau, separation_auc, stratified_ratio

    heldout = training.nearest(banks.heldout_paths)
    heldout_rho, medians = stratified_ratio(heldout.distance, heldout.stage, heldout.distance, heldout.stage)
    tau = penalty_tau(heldout.distance, settings.tau_quantile)
    with tempfile.TemporaryDirectory(prefix="curricmusic-probe-") as tmp:
        copy_paths, melody_paths = _write_probes(data, banks.stages, settings.probe_copies, settings.max_copied_bars, Path(tmp))
        named = (("copies", copy_paths), ("fresh_in_style", banks.fresh_paths), ("fresh_out_of_style", melody_paths))
        probe = {name: training.nearest(paths) for name, paths in named}
        probe_rho = {
            name: stratified_ratio(n.distance, n.stage, heldout.distance, heldout.stage)[0] for name, n in probe.items()
        }
        index = training_index(data, show_progress=show_progress)  # spans need no hash tables
        probe_bars = {name: _copied_bars(index.analyze(*_notes_and_bars(n.kept), ns=NGRAM_SIZES)) for name, n in probe.items()}
    auc = separation_auc(probe_rho["copies"], heldout_rho)
    rule = _flag_rule(settings, auc, heldout_rho)
    return _Calibration(heldout, heldout_rho, medians, tau, auc, rule, probe_rho, probe_bars, index)


def _copied_bars(analyses: list[CopyAnalysis]) -> np.ndarray:
    return np.array([a.span.bars for a in analyses], dtype=np.float64)


def _sample_row(path: Path, i: int, nearest: _Nearest, training: _TrainingBank, rho: np.ndarray,
                penalties: np.ndarray, analysis: CopyAnalysis, flagged: bool, rule: _FlagRule) -> dict[str, Any]:  # fmt: skip
    """One sample's entry in ``novelty.json``."""
    span = analysis.span
    return {
        "file": path.name,
        "nearest": training.pieces[int(nearest.row[i])],
        "cosine": float(nearest.cosine[i]),
        "distance": float(nearest.distance[i]),
        "rho": float(rho[i]),
        "penalty": float(penalties[i]),
        "copied_span": {
            "notes": int(span.notes),
            "bars": float(span.bars),
            "piece_id": span.piece_id,
            "piece_note_index": span.piece_note_index,
            "query_note_index": span.query_note_index,
        },
        "hit_rates": {str(n): float(r) for n, r in analysis.hit_rates.items()},
        "flagged": bool(flagged),
        "flag_reasons": rule.reasons(float(rho[i]), float(span.bars)),
    }


def _summary(flags: np.ndarray, rho: np.ndarray, analyses: list[CopyAnalysis], copying: dict[str, Any], calibration: _Calibration) -> dict[str, Any]:
    """The set's figures: copy rate, rho, C_T, the longest copy and the false-flag rate on fresh music."""
    from curricmusic.novelty.score import set_summary

    summary = set_summary(flags, rho, _copied_bars(analyses))
    fresh = ("fresh_in_style", "fresh_out_of_style")
    summary.update(
        {
            "rho_median": float(np.nanmedian(rho)),
            "data_copying_C_T": copying["C_T"],
            "data_copying_cells": copying["cells"],
            "longest_copied_notes_max": int(max(a.span.notes for a in analyses)),
            "heldout_rho": calibration.heldout_rho.tolist(),
            "rho_flag": calibration.rule.use_rho,
            "fresh_false_flag_rate": _rate(
                np.concatenate([calibration.rule.flags(calibration.probe_rho[n], calibration.probe_bars[n]) for n in fresh])
            ),
        }
    )
    return summary


def _calibration_record(calibration: _Calibration, banks: _Banks, n_copying_test: int) -> dict[str, Any]:
    """``novelty.json``'s ``calibration``: how the flag was set, and how the probes fared."""
    heldout_d, rule, stages = calibration.heldout.distance, calibration.rule, ", ".join(banks.stages)
    probes = calibration.probe_rho
    return {
        "heldout": f"{banks.heldout_split} split of {stages} ({heldout_d.size} pieces)",
        "heldout_nn_distance_median": float(np.median(heldout_d)),
        "heldout_nn_distance_quantiles": {f"{q:g}": float(np.quantile(heldout_d, q)) for q in (0.05, 0.1, 0.25, 0.5, 0.75, 0.95)},
        "rho_scale": {"by_nearest_stage": calibration.medians, "min_pieces": 5},
        "tau": calibration.tau,
        "rho_threshold": rule.threshold,
        "rho_flag": rule.use_rho,
        "rho_flag_reason": rule.reason,
        "separation_auc": calibration.auc,
        "max_copied_bars": rule.max_copied_bars,
        "probe": {
            name: {
                "n": int(probes[name].size),
                "rho_median": float(np.median(probes[name])) if probes[name].size else float("nan"),
                "flagged_by_rho": _rate(probes[name] < rule.threshold) if rule.use_rho else 0.0,
                "flagged_by_span": _rate(calibration.probe_bars[name] >= rule.max_copied_bars),
                "flagged": _rate(rule.flags(probes[name], calibration.probe_bars[name])),
            }
            for name in probes
        },
        "copying_test_set": f"val and test splits of {stages} ({n_copying_test} pieces)",
    }


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
    :mod:`curricmusic.novelty.calibrate`).

    The steps: embed the training bank and the samples; calibrate the distance flag on held-out
    pieces and probes (copies of training pieces, fresh music); measure each sample's distance
    ratio, penalty and copied span; then C_T of the set, the rows and the summary.
    """
    from curricmusic.novelty.score import data_copying_statistic, penalty

    stages = bank_stages or list(settings.bank_stages or data.stage_names)
    for stage in stages:
        data.stage(stage)  # a clear error for an unknown stage
    banks = _banks(data, stages)
    training = _training_bank(banks, embedder_spec or settings.embedder, settings, show_progress)
    sample_emb, sample_skipped, scored = training.embed(files)
    if not scored:
        raise UserError(f"none of the {len(files)} MIDI files could be scored: {sample_skipped[0]['reason']}")
    calibration = _calibrate(data, banks, training, settings, show_progress)
    nearest = training.nearest_of(sample_emb, scored)
    rho = calibration.ratio(nearest)
    penalties = penalty(nearest.distance, calibration.tau)
    analyses = calibration.index.analyze(*_notes_and_bars(scored), ns=NGRAM_SIZES)
    flags = calibration.rule.flags(rho, _copied_bars(analyses))
    ct_test, _, _ = training.embed(banks.heldout_paths + banks.fresh_paths)
    copying = _copying(data_copying_statistic, training.bank.vectors, ct_test, sample_emb, settings.ct_min_cell)
    rows = [
        _sample_row(path, i, nearest, training, rho, penalties, analyses[i], flags[i], calibration.rule)
        for i, path in enumerate(scored)
    ]
    summary = _summary(flags, rho, analyses, copying, calibration)
    record = _calibration_record(calibration, banks, ct_test.shape[0])
    bank = {"stages": stages, "n_train": len(training.bank), "n_heldout": int(calibration.heldout.distance.size)}
    return Scores(scored, rows, sample_skipped, summary, record, bank, training.embedder)


def _copying(statistic: Callable[..., CopyingTest], train: np.ndarray, test: np.ndarray, generated: np.ndarray, min_cell: int) -> dict[str, Any]:
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

    ``sources`` (where each setting came from, see
    :func:`curricmusic.config.run_settings.novelty_settings_for_run`) is recorded.
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
