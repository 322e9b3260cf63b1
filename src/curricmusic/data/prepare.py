"""``curricmusic data prepare``: sources -> parse -> dedup -> tune groups + split -> tokens -> cache.

The whole folder is built beside its destination and swapped into place at the end, so a killed
preparation leaves the previous folder intact. A folder whose fingerprint (curriculum, tokenizer,
and every source piece's fingerprint) matches is reused as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

import curricmusic
from curricmusic.common.atomic import atomic_path, write_bytes, write_json
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_replaceable, mark_folder, remove_stale, umask_mode
from curricmusic.common.lock import folder_lock
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.common.workers import worker_initializer
from curricmusic.config import (
    CurriculumConfig,
    MidiDirStage,
    Music21Stage,
    StageConfig,
    config_hash,
)
from curricmusic.data.prepared import MANIFEST_FORMAT, SPLITS, PreparedData, split_paths
from curricmusic.data.process import ProcessedPiece, Skipped, process_item
from curricmusic.data.sources import SourceItem, stage_items, unique_ids
from curricmusic.data.splits import assign_split, group_keys, group_splits
from curricmusic.data.tunes import SHINGLE_SIZE, tune_groups
from curricmusic.music.notes import NOTE_DTYPE
from curricmusic.music.tokenizers import build_tokenizer, save_tokenizer, tokenizer_hash

__all__ = ["prepare", "assign_split", "PrepareOutcome", "CACHE_WAIT_S"]

#: How long ``train``, ``run`` and ``data show`` wait for another process building the same
#: cached prepared folder (``data prepare --out`` itself refuses at once).
CACHE_WAIT_S = 6 * 3600.0

# Bump when the pipeline's output changes for the same inputs (forces a rebuild).
PIPELINE_VERSION = 3
_CHUNK = 16


@dataclass
class PrepareOutcome:
    data: PreparedData
    reused: bool


# ---- parallel processing ------------------------------------------------------------------

_WORKER_STATE: dict = {}


def _init_worker(settings_json: str, filters_json: str) -> None:
    from curricmusic.config import PieceFilters, TokenizerSettings

    settings = TokenizerSettings.model_validate_json(settings_json)
    _WORKER_STATE["tokenizer"] = build_tokenizer(settings)
    _WORKER_STATE["filters"] = PieceFilters.model_validate_json(filters_json)


def _process_chunk(items: list[SourceItem]) -> list[ProcessedPiece | Skipped]:
    tokenizer, filters = _WORKER_STATE["tokenizer"], _WORKER_STATE["filters"]
    return [process_item(item, tokenizer, filters) for item in items]


def _process_all(
    items: Sequence[SourceItem], config: CurriculumConfig, workers: int, show_progress: bool
) -> Iterator[ProcessedPiece | Skipped]:
    chunks = [list(items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
    init_args = (config.tokenizer.model_dump_json(), config.filters.model_dump_json())
    with progress_bar("Tokenizing", len(items), show_progress) as update:
        if workers <= 1 or len(chunks) <= 1:
            _init_worker(*init_args)
            results = map(_process_chunk, chunks)
            for chunk_result in results:
                update(len(chunk_result))
                yield from chunk_result
            return
        with ProcessPoolExecutor(max_workers=workers, **worker_initializer(_init_worker, init_args)) as pool:
            for chunk_result in pool.map(_process_chunk, chunks):
                update(len(chunk_result))
                yield from chunk_result


# ---- the pipeline -------------------------------------------------------------------------


def _collect_items(config: CurriculumConfig, workers: int, show_progress: bool) -> list[SourceItem]:
    items: list[SourceItem] = []
    for stage in config.stages:
        if isinstance(stage, Music21Stage):
            with progress_bar(f"music21 {stage.collection}", None, show_progress) as update:
                report = lambda done, total, update=update: update(total=total, completed=done)  # noqa: E731
                items.extend(stage_items(config, stage, workers=workers, progress=report))
        else:
            items.extend(stage_items(config, stage, workers=workers))
    return unique_ids(items)


def _fingerprint(config: CurriculumConfig, items: Sequence[SourceItem]) -> str:
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "pipeline": PIPELINE_VERSION,
                "format": MANIFEST_FORMAT,
                "config": config_hash(config, 64),
                "tokenizer": tokenizer_hash(config.tokenizer),
            },
            sort_keys=True,
        ).encode()
    )
    for item in items:
        digest.update(f"{item.stage}\0{item.piece_id}\0{item.fingerprint}\n".encode())
    return digest.hexdigest()[:24]


def _is_current(out_dir: Path, fingerprint: str) -> bool:
    try:
        data = PreparedData.open(out_dir)
    except Exception:  # noqa: BLE001 - anything unreadable means "rebuild"
        return False
    if data.fingerprint != fingerprint:
        return False
    return all(
        path.is_file()
        for stage in data.stage_names
        for split in SPLITS
        for path in split_paths(out_dir, stage, split).values()
    )


def _split_by(stage: StageConfig, config: CurriculumConfig) -> str:
    if stage.split_by is not None:
        return stage.split_by
    return "content" if stage.source == "generated" else config.split.by


def _assign_splits(
    by_stage: dict[str, list[ProcessedPiece]], config: CurriculumConfig
) -> tuple[dict[str, dict[str, list[ProcessedPiece]]], dict[str, str], dict]:
    """Splits of every stage by whole tune groups (or piece by piece), and what was grouped.

    Returns ``(splits[stage][split] -> pieces, group key of each piece id, manifest record)``.
    """
    pieces = [piece for stage_pieces in by_stage.values() for piece in stage_pieces]
    rule = {stage.name: _split_by(stage, config) for stage in config.stages}
    tuned = [i for i, p in enumerate(pieces) if rule[p.stage] == "tune"]
    groups = np.arange(len(pieces))  # by content: every piece its own group
    if tuned:
        linked = tune_groups([pieces[i].tune for i in tuned], config.split.tune_threshold)
        groups[tuned] = np.asarray(tuned)[linked]  # a group's index is its first piece's
    keys = [p.content_hash for p in pieces]
    chosen = group_splits([p.stage for p in pieces], keys, groups, config.split.val, config.split.test)
    named = group_keys(keys, groups)
    splits: dict[str, dict[str, list[ProcessedPiece]]] = {
        name: {split: [] for split in SPLITS} for name in by_stage
    }
    for piece, split in zip(pieces, chosen, strict=True):
        splits[piece.stage][split].append(piece)
    for stage_splits in splits.values():
        for split in SPLITS:
            stage_splits[split].sort(key=lambda p: (p.difficulty, p.piece_id))
    members: dict[str, list[int]] = {}
    for i, key in enumerate(named):
        members.setdefault(key, []).append(i)
    merged = {key: idx for key, idx in members.items() if len(idx) > 1}
    record = {
        "by": rule,
        "method": (
            f"by tune: top-line interval {SHINGLE_SIZE}-grams, Jaccard >= {config.split.tune_threshold:g}, "
            "connected components across the stages split by tune; by content: one piece per group. "
            "A group goes to one split, from the hash of its smallest content hash"
        ),
        "n_pieces": len(pieces),
        "n_groups": len(members),
        "n_merged_groups": len(merged),
        "n_pieces_merged": sum(len(idx) for idx in merged.values()),
        "merged_groups": [
            {
                "key": key,
                "split": chosen[idx[0]],
                "pieces": [pieces[i].piece_id for i in idx],
            }
            for key, idx in sorted(merged.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    }
    return splits, {p.piece_id: key for p, key in zip(pieces, named, strict=True)}, record


def _midi_relpath(piece: ProcessedPiece) -> Path:
    safe = "".join(c if c.isalnum() or c in "_.-/~" else "-" for c in piece.piece_id)
    return Path("midi") / f"{safe}.mid"


def _write_split(
    root: Path, stage: str, split: str, pieces: list[ProcessedPiece], tune_of: dict[str, str]
) -> dict:
    paths = split_paths(root, stage, split)
    token_offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    note_offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    for i, piece in enumerate(pieces):
        token_offsets[i + 1] = token_offsets[i] + piece.tokens.shape[0]
        note_offsets[i + 1] = note_offsets[i] + piece.notes.shape[0]
    tokens = np.concatenate([p.tokens for p in pieces]) if pieces else np.zeros(0, np.uint16)
    notes = np.concatenate([p.notes for p in pieces]) if pieces else np.zeros(0, NOTE_DTYPE)
    write_bytes(paths["tokens"], tokens.astype(np.uint16).tobytes())
    for key, array in (("offsets", token_offsets), ("notes", notes), ("note_offsets", note_offsets)):
        with atomic_path(paths[key]) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    rows = []
    for i, piece in enumerate(pieces):
        if piece.midi is not None:
            relative = _midi_relpath(piece)
            write_bytes(root / relative, piece.midi)
            path = relative.as_posix()
        else:
            path = piece.origin
        rows.append(
            {
                "id": piece.piece_id,
                "path": path,
                "origin": piece.origin,
                "content_hash": piece.content_hash,
                "tune_group": tune_of[piece.piece_id],
                "source_hash": piece.source_hash,
                "difficulty": float(piece.difficulty),  # NaN is written as null
                "features": dict(piece.features),
                "n_tokens": int(piece.tokens.shape[0]),
                "n_notes": int(piece.notes.shape[0]),
                "seconds": round(piece.seconds, 3),
                "qpm": round(piece.qpm, 3),
                "bar_len": piece.bar_len,
                "token_offset": int(token_offsets[i]),
                "meta": piece.meta,
                **({"unwritable": piece.unwritable} if piece.unwritable else {}),
            }
        )
    return {
        "n_pieces": len(pieces),
        "n_tokens": int(tokens.shape[0]),
        "files": {key: path.relative_to(root).as_posix() for key, path in paths.items()},
        "pieces": rows,
    }


# What a prepared folder holds at its top level (anything else there is the user's: never replaced).
PREPARED_ENTRIES = ("manifest.json", "tokenizer.json", "stages", "midi")


def _check_out_dir(config: CurriculumConfig, out_dir: Path) -> None:
    """Refuse (one line, before any work) an ``--out`` that is not ours or overlaps a source folder."""
    cwd = Path.cwd().resolve()
    if out_dir == cwd or out_dir in cwd.parents:
        raise UserError(
            f"{out_dir}: --out is the current folder (or holds it); nothing was changed; "
            "choose a new sub-folder such as --out prepared"
        )
    for stage in config.stages:
        if isinstance(stage, MidiDirStage):
            source = Path(stage.path).expanduser().resolve()
            if out_dir == source or out_dir in source.parents or source in out_dir.parents:
                raise UserError(
                    f"{out_dir}: --out overlaps the MIDI folder {source} of stage {stage.name!r}; "
                    "nothing was changed; choose a folder outside it"
                )
    check_replaceable(out_dir, "prepared", PREPARED_ENTRIES)


def prepare(
    config: CurriculumConfig,
    out_dir: str | Path,
    *,
    workers: int = 1,
    show_progress: bool = True,
    force: bool = False,
    source: str = "",
    wait_s: float = 0.0,
) -> PrepareOutcome:
    """Build (or reuse) the prepared folder of ``config`` at ``out_dir``.

    A build holds the folder's writer lock: another process building the same folder is refused
    at once, or, with ``wait_s`` > 0 (``train`` and ``run`` preparing their cache), waited for
    that long, after which its result is reused when it is current."""
    out_dir = Path(out_dir).expanduser().resolve()
    _check_out_dir(config, out_dir)
    workers = max(1, int(workers))
    items = _collect_items(config, workers, show_progress)
    fingerprint = _fingerprint(config, items)
    if not force and _is_current(out_dir, fingerprint):
        return PrepareOutcome(PreparedData.open(out_dir), reused=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark_folder(out_dir, "prepared")  # the lock lives inside; the build replaces the folder whole
    with folder_lock(out_dir, "--out", wait_s=wait_s):
        if not force and _is_current(out_dir, fingerprint):  # another process built it meanwhile
            return PrepareOutcome(PreparedData.open(out_dir), reused=True)
        return _build(config, out_dir, items, fingerprint, workers, show_progress, source)


def _build(
    config: CurriculumConfig,
    out_dir: Path,
    items: list[SourceItem],
    fingerprint: str,
    workers: int,
    show_progress: bool,
    source: str,
) -> PrepareOutcome:
    """Process every item, build the folder beside ``out_dir``, and swap it into place."""

    by_stage: dict[str, list[ProcessedPiece]] = {name: [] for name in config.stage_names}
    skipped: list[Skipped] = []
    first_owner: dict[str, str] = {}
    for result in _process_all(items, config, workers, show_progress):
        if isinstance(result, Skipped):
            skipped.append(result)
            continue
        owner = first_owner.setdefault(result.content_hash, result.piece_id)
        if owner != result.piece_id:
            skipped.append(
                Skipped(result.stage, result.piece_id, result.origin, f"exact duplicate of {owner}")
            )
            continue
        by_stage[result.stage].append(result)

    empty = [name for name, pieces in by_stage.items() if not pieces]
    if len(empty) == len(by_stage):
        reasons = "; ".join(sorted({s.reason.split(" (")[0] for s in skipped})[:4]) or "no candidates"
        raise UserError(f"no usable piece in any stage ({len(skipped)} skipped: {reasons}); nothing to prepare")
    for name in empty:
        err_console.print(f"[yellow]stage {name!r} has no usable pieces (see 'skipped' in the manifest)[/]")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (f".{out_dir.name}.build-*", f".{out_dir.name}.old-*"):  # left by a killed run
        remove_stale(out_dir.parent, pattern)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        os.chmod(build, umask_mode(0o777))  # mkdtemp makes it 0700; the result follows the umask
        mark_folder(build, "prepared")
        save_tokenizer(config.tokenizer, build / "tokenizer.json")
        vocab_size = len(build_tokenizer(config.tokenizer))
        stages = []
        all_splits, tune_of, tunes = _assign_splits(by_stage, config)
        for stage in config.stages:
            splits = all_splits[stage.name]
            stage_skipped = [s for s in skipped if s.stage == stage.name]
            stages.append(
                {
                    "name": stage.name,
                    "source": stage.source,
                    "n_candidates": sum(1 for item in items if item.stage == stage.name),
                    "splits": {
                        split: _write_split(build, stage.name, split, splits[split], tune_of) for split in SPLITS
                    },
                    "n_tune_groups": {
                        split: len({tune_of[p.piece_id] for p in splits[split]}) for split in SPLITS
                    },
                    "n_skipped": len(stage_skipped),
                }
            )
        manifest = {
            "format": MANIFEST_FORMAT,
            "curricmusic_version": curricmusic.__version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "fingerprint": fingerprint,
            "curriculum": {
                "name": config.name,
                "source": source,
                "hash": config_hash(config),
                "config": config.model_dump(mode="json"),
            },
            "target_stage": config.target,
            "tokenizer": {
                "file": "tokenizer.json",
                "kind": config.tokenizer.kind,
                "hash": tokenizer_hash(config.tokenizer),
                "vocab_size": vocab_size,
                "settings": config.tokenizer.model_dump(mode="json"),
            },
            "stages": stages,
            "unwritable": unwritable_summary(by_stage, config),
            "tunes": tunes,
            "skipped": [{"stage": s.stage, "id": s.piece_id, "path": s.path, "reason": s.reason} for s in skipped],
        }
        write_json(build / "manifest.json", manifest)
        _check_out_dir(config, out_dir)  # again: the user may have put files there meanwhile
        _swap_into_place(build, out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return PrepareOutcome(PreparedData.open(out_dir), reused=False)


def unwritable_summary(by_stage: dict[str, list[ProcessedPiece]], config: CurriculumConfig) -> dict:
    """Every meter and tempo the tokenizer cannot write, with the pieces that have it:
    ``{"time_signatures": {"8/4": [piece ids]}, "tempos": {"300": [piece ids]}, "tokenizer": ...}``."""
    found: dict[str, dict[str, list[str]]] = {"time_signatures": {}, "tempos": {}}
    for pieces in by_stage.values():
        for piece in pieces:
            for key, values in piece.unwritable.items():
                for value in values:
                    found[key].setdefault(f"{value:g}" if isinstance(value, float) else str(value), []).append(piece.piece_id)
    settings = config.tokenizer
    return {
        **found,
        "tokenizer": {
            "time_signatures": list(settings.time_signatures) if settings.use_time_signatures else [],
            "tempo_range": list(settings.tempo_range) if settings.use_tempos else [],
        },
    }


def _swap_into_place(build: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``build`` with two renames (the old folder is removed after)."""
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rmdir(old)
        os.replace(out_dir, old)
        os.replace(build, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(build, out_dir)
