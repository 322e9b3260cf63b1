"""Where pieces come from: generated pedagogy, the bundled music21 corpus, and MIDI folders.

Each stage of a curriculum becomes a list of :class:`SourceItem`: either MIDI bytes in memory
(generated and converted pieces) or a MIDI file on disk (user folders, read by the workers). The
music21 corpus is converted to MIDI once, in parallel worker processes, and cached by the content
hash of each corpus file; a valid cache is never parsed again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.common.folders import remove_stale, umask_mode
from curricmusic.common.paths import cache_dir
from curricmusic.common.workers import worker_initializer
from curricmusic.config import (
    MUSIC21_COLLECTIONS,
    MUSIC21_PARTS,
    CurriculumConfig,
    GeneratedStage,
    MidiDirStage,
    Music21Stage,
    StageConfig,
)
from curricmusic.music.keys import Key

__all__ = [
    "SourceItem",
    "MIDI_SUFFIXES",
    "stage_items",
    "generated_items",
    "music21_items",
    "midi_dir_items",
    "music21_collection_files",
    "parts_rule",
    "curriculum_keys",
]

MIDI_SUFFIXES = (".mid", ".midi")
# Bump when the music21 -> MIDI conversion changes, to invalidate cached conversions.
_CONVERTER_VERSION = 1
# Mixed into the curriculum seed for a spread sample of a collection (independent of other streams).
_SPREAD_STREAM = 0x5A3D

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class SourceItem:
    """One candidate piece before parsing.

    ``fingerprint`` is cheap to compute and changes whenever the piece's MIDI would change: the
    bytes' hash for in-memory pieces, size and modification time for files on disk.
    """

    stage: str
    piece_id: str
    origin: str
    midi: bytes | None = None
    path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    excluded: str | None = None  # why the collection's rule leaves it out (skipped with this reason)

    @property
    def fingerprint(self) -> str:
        if self.midi is not None:
            return hashlib.sha256(self.midi).hexdigest()[:20]
        assert self.path is not None
        try:
            stat = self.path.stat()
        except OSError:
            return "missing"
        return f"{stat.st_size}-{stat.st_mtime_ns}"


def curriculum_keys(config: CurriculumConfig, stage: GeneratedStage) -> list[Key]:
    """The keys a generated stage uses: its own list, else the curriculum's ("all" = 24 keys)."""
    from curricmusic.music.keys import ALL_KEYS, parse_key

    names = stage.keys if stage.keys is not None else config.keys
    if "all" in names:
        return list(ALL_KEYS)
    return [parse_key(name) for name in names]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-/" else "-" for c in text)


def generated_items(config: CurriculumConfig, stage: GeneratedStage) -> list[SourceItem]:
    """Pieces of a pedagogy generator, rendered to MIDI bytes in memory."""
    from curricmusic.data.pedagogy import generate

    pieces = generate(stage.generator, curriculum_keys(config, stage), config.seed, stage.options)
    items = [
        SourceItem(
            stage=stage.name,
            piece_id=f"{stage.name}/{_slug(piece.name)}",
            origin=f"generated:{piece.name}",
            midi=piece.score.dumps_midi(),
            meta=piece.meta,
        )
        for piece in pieces
    ]
    return items[: stage.limit] if stage.limit else items


def midi_dir_items(stage: MidiDirStage) -> list[SourceItem]:
    """Every .mid/.midi file under the stage's folder, recursively, in sorted path order."""
    root = stage.path
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
    )
    if not files:
        raise UserError(f"{root}: no .mid or .midi files in this folder or below it (stage {stage.name!r})")
    if stage.limit:
        files = files[: stage.limit]
    items = []
    for path in files:
        relative = path.relative_to(root).with_suffix("").as_posix()
        items.append(
            SourceItem(stage=stage.name, piece_id=f"{stage.name}/{relative}", origin=str(path), path=path)
        )
    return items


# --------------------------------------------------------------------------------------------
# music21 corpus


def music21_collection_files(collection: str) -> list[Path]:
    """The corpus files of a named collection inside the installed music21 package."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    files: set[Path] = set()
    for pattern in MUSIC21_COLLECTIONS[collection]:
        files.update(root.glob(pattern))
    return sorted(files)


def parts_rule(collection: str, midi: bytes) -> str | None:
    """Why a converted piece falls outside its collection's part count (None: it is inside).

    A part is a MIDI track with at least one note (music21 writes one track per part).
    """
    if collection not in MUSIC21_PARTS or not midi:
        return None
    from symusic import Score

    try:
        score = Score.from_midi(midi)
    except Exception:  # noqa: BLE001 - a broken file is skipped later with its own reason
        return None
    parts = sum(1 for track in score.tracks if track.note_num() > 0)
    low, high = MUSIC21_PARTS[collection]
    if low <= parts <= high:
        return None
    return f"{collection} keeps {low}-{high} parts ({parts} parts)"


def _conversion_key(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"music21={importlib.metadata.version('music21')};v={_CONVERTER_VERSION}".encode())
    return digest.hexdigest()[:24]


def _music21_scratch() -> None:
    """music21 keeps parsed files in a scratch folder, by default in the system temp folder; ours
    is in the cache (set for this process only: never written to the user's ~/.music21rc)."""
    from music21 import environment

    environment.Environment()["directoryScratch"] = str(cache_dir("music21-scratch"))


def _convert_corpus_file(path: str) -> list[tuple[str, bytes]]:
    """Parse one corpus file (a score or an opus of many tunes) into ``(local id, MIDI bytes)``."""
    import warnings

    from music21 import converter
    from music21.midi import translate

    warnings.filterwarnings("ignore")
    _music21_scratch()
    parsed = converter.parse(path)
    scores = list(parsed.scores) if hasattr(parsed, "scores") and len(parsed.scores) else [parsed]
    stem = Path(path).stem
    out = []
    for index, score in enumerate(scores):
        number = getattr(score.metadata, "number", None) if score.metadata else None
        local = stem if len(scores) == 1 else f"{stem}/{number or index + 1}"
        try:
            out.append((local, translate.music21ObjectToMidiFile(score).writestr()))
        except Exception:  # noqa: BLE001 - an unconvertible tune is skipped later as empty
            out.append((local, b""))
    return out


def _read_cached(entry: Path) -> list[tuple[str, bytes]] | None:
    index = entry / "index.json"
    if not index.is_file():
        return None
    names = json.loads(index.read_text())
    return [(name, (entry / f"{i:05d}.mid").read_bytes()) for i, name in enumerate(names)]


def _write_cached(entry: Path, converted: list[tuple[str, bytes]]) -> None:
    """Write the converted tunes into a temporary folder, then rename it into place."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    os.chmod(tmp, umask_mode(0o777))  # mkdtemp makes it 0700
    for i, (_, data) in enumerate(converted):
        (tmp / f"{i:05d}.mid").write_bytes(data)
    (tmp / "index.json").write_text(json.dumps([name for name, _ in converted]))
    try:
        os.replace(tmp, entry)
    except OSError:  # another process won the race: its entry is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)


def music21_items(
    stage: Music21Stage, workers: int = 1, progress: Progress | None = None, seed: int = 0
) -> list[SourceItem]:
    """Pieces of a music21 corpus collection as MIDI bytes, converting uncached files in parallel.

    With a ``limit``, files are converted in order (``workers`` at a time) only until they hold
    that many pieces: an opus file holds hundreds of tunes (Essen), so ``limit = 40`` converts
    one file, not the whole collection. With ``sample = "spread"`` every file is converted and
    ``limit`` pieces are drawn from all of them (seeded by ``seed``), kept in collection order.
    """
    files = music21_collection_files(stage.collection)
    spread = stage.sample == "spread" and stage.limit is not None
    if spread:
        items = music21_items(stage.model_copy(update={"limit": None}), workers, progress, seed)
        keep = np.sort(np.random.default_rng([seed, _SPREAD_STREAM]).permutation(len(items))[: stage.limit])
        return [items[int(i)] for i in keep]
    if stage.limit:
        # Single-score files give one piece each; opus files give many, so this is an upper bound.
        files = files[: stage.limit]
    cache = cache_dir("music21")
    remove_stale(cache, ".*")  # half-written entries of a killed conversion (ours: hidden names)
    results: dict[Path, list[tuple[str, bytes]]] = {}
    pool = ProcessPoolExecutor(max_workers=workers, **worker_initializer()) if workers > 1 and len(files) > 1 else None
    try:
        start = 0
        while start < len(files) and not (stage.limit and sum(map(len, results.values())) >= stage.limit):
            end = start + max(1, workers) if stage.limit else len(files)
            batch, start = files[start:end], end
            todo: list[tuple[Path, Path]] = []
            for path in batch:
                entry = cache / _conversion_key(path)
                cached = _read_cached(entry)
                if cached is None:
                    todo.append((path, entry))
                else:
                    results[path] = cached
            if progress:
                progress(len(results), len(files))
            paths = [str(p) for p, _ in todo]
            converted_all = pool.map(_convert_corpus_file, paths, chunksize=1) if pool and len(todo) > 1 else map(_convert_corpus_file, paths)
            for (path, entry), converted in zip(todo, converted_all, strict=True):
                _write_cached(entry, converted)
                results[path] = converted
                if progress:
                    progress(len(results), len(files))
    finally:
        if pool is not None:
            pool.shutdown()
    files = [path for path in files if path in results]
    items = []
    for path in files:
        for local, data in results[path]:
            items.append(
                SourceItem(
                    stage=stage.name,
                    piece_id=f"{stage.name}/{local}",
                    origin=f"music21:{path.parent.name}/{path.name}" + (f"#{local.split('/')[-1]}" if "/" in local else ""),
                    midi=data,
                    excluded=parts_rule(stage.collection, data),
                )
            )
    return items[: stage.limit] if stage.limit else items


#: Generated and corpus stages already collected in this process: (stage, keys, seed) -> items.
#: Both are pure functions of their settings (the corpus ships inside the installed music21 and
#: its conversions are cached by content), so a run that prepares the same stage again (every
#: adaptation run checks its style's cache) does not generate or read them again. MIDI folders
#: are read every time: their files may change.
_COLLECTED: dict[str, list[SourceItem]] = {}


def stage_items(
    config: CurriculumConfig, stage: StageConfig, workers: int = 1, progress: Progress | None = None
) -> list[SourceItem]:
    """The candidate pieces of one stage, whatever its source."""
    if isinstance(stage, GeneratedStage | Music21Stage):
        key = json.dumps([stage.model_dump(mode="json"), list(config.keys), config.seed], sort_keys=True)
        if key not in _COLLECTED:
            if isinstance(stage, GeneratedStage):
                _COLLECTED[key] = generated_items(config, stage)
            else:
                _COLLECTED[key] = music21_items(stage, workers=workers, progress=progress, seed=config.seed)
        return list(_COLLECTED[key])
    if isinstance(stage, MidiDirStage):
        return midi_dir_items(stage)
    raise TypeError(f"unknown stage type {type(stage).__name__}")


def unique_ids(items: Sequence[SourceItem]) -> list[SourceItem]:
    """Make piece ids unique by suffixing repeats (two tunes numbered alike in one opus)."""
    seen: dict[str, int] = {}
    out = []
    for item in items:
        count = seen.get(item.piece_id, 0)
        seen[item.piece_id] = count + 1
        if count:
            item = SourceItem(
                item.stage, f"{item.piece_id}~{count}", item.origin, item.midi, item.path, item.meta, item.excluded
            )
        out.append(item)
    return out
