"""One piece through the pipeline: parse, check, reduce to piano, hash, measure, tokenize.

:func:`process_item` runs in worker processes and never raises for a bad file: it returns a
:class:`Skipped` with a reason a person can act on.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from symusic import Score

from curricmusic.config import PieceFilters
from curricmusic.data.difficulty import difficulty_features, difficulty_score
from curricmusic.data.sources import SourceItem
from curricmusic.data.tunes import tune_fingerprint
from curricmusic.music.notes import (
    bar_length,
    piano_reduction,
    score_notes,
    score_seconds,
    timing_problem,
)
from curricmusic.music.tokenizers import Tokenizer, encode_score, unwritable

__all__ = ["ProcessedPiece", "Skipped", "process_item", "content_hash", "HASH_GRID"]

# Onsets and durations are compared on a grid of 1/96 quarter note for duplicate detection.
HASH_GRID = 96


@dataclass
class ProcessedPiece:
    stage: str
    piece_id: str
    origin: str
    source_hash: str  # hash of the MIDI bytes as read
    content_hash: str  # hash of the notes (what the music is), used for dedup and splits
    features: dict[str, float]
    difficulty: float
    tokens: np.ndarray  # (n_tokens,) uint16, BOS ... EOS
    notes: np.ndarray  # (n_notes,) NOTE_DTYPE, quarter-note times
    qpm: float
    bar_len: float
    seconds: float
    midi: bytes | None  # bytes to keep in the prepared folder (pieces with no file of their own)
    meta: dict = field(default_factory=dict)
    tune: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # (n_shingles,) melody fingerprint
    unwritable: dict = field(default_factory=dict)  # meters and tempos the tokenizer drops (music.tokenizers.unwritable)


@dataclass
class Skipped:
    stage: str
    piece_id: str
    path: str
    reason: str


def content_hash(notes: np.ndarray) -> str:
    """Hash of the music itself: onsets, durations (1/96-quarter grid) and pitches; not velocity."""
    grid = np.empty((notes.shape[0], 3), dtype=np.int64)
    grid[:, 0] = np.rint(notes["onset"] * HASH_GRID)
    grid[:, 1] = np.rint(notes["duration"] * HASH_GRID)
    grid[:, 2] = notes["pitch"]
    if grid.shape[0]:
        grid[:, 0] -= grid[0, 0]  # a leading silence does not make a different piece
    return hashlib.sha256(grid.tobytes()).hexdigest()[:20]


def process_item(item: SourceItem, tokenizer: Tokenizer, filters: PieceFilters) -> ProcessedPiece | Skipped:
    """Turn one source item into a processed piece, or say why it cannot be used."""
    where = item.origin

    def skip(reason: str) -> Skipped:
        return Skipped(item.stage, item.piece_id, where, reason)

    if item.excluded:
        return skip(item.excluded)
    if item.midi is not None:
        data = item.midi
    else:
        assert item.path is not None  # an item holds MIDI bytes or names a file
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            return skip(f"unreadable file: {exc.strerror or exc}")
    if not data:
        return skip("empty file")
    if not data.startswith(b"MThd"):
        return skip("not a MIDI file (no MThd header)")
    try:
        score = Score.from_midi(data)
    except Exception as exc:  # noqa: BLE001 - symusic raises several types for broken files
        return skip(f"corrupt or truncated MIDI: {str(exc).strip().splitlines()[0][:120] or type(exc).__name__}")
    timing = timing_problem(score)
    if timing:
        return skip(timing)
    reduced = piano_reduction(score)
    n_notes = reduced.note_num()
    if n_notes == 0:
        return skip("no notes (outside drum tracks)")
    if n_notes < filters.min_notes:
        return skip(f"too few notes ({n_notes} < min_notes {filters.min_notes})")
    if n_notes > filters.max_notes:
        return skip(f"too many notes ({n_notes} > max_notes {filters.max_notes})")
    seconds = score_seconds(reduced)
    if not math.isfinite(seconds) or seconds > filters.max_minutes * 60:
        return skip(f"absurd length ({seconds / 60:.1f} min > max_minutes {filters.max_minutes:g})")
    if seconds < filters.min_seconds:
        return skip(f"too short ({seconds:.2f} s < min_seconds {filters.min_seconds:g})")
    notes = score_notes(reduced)
    bar_len = bar_length(score)
    features = difficulty_features(notes, bar_len)
    try:
        tokens = encode_score(tokenizer, reduced)
    except Exception as exc:  # noqa: BLE001 - a tokenizer failure is a property of this file
        return skip(f"tokenization failed: {type(exc).__name__}: {exc}"[:160])
    if tokens.shape[0] <= 2:
        return skip("no tokens after tokenization (notes outside the tokenizer's pitch range?)")
    qpm = float(score.tempos[0].qpm) if len(score.tempos) else 120.0
    return ProcessedPiece(
        stage=item.stage,
        piece_id=item.piece_id,
        origin=item.origin,
        source_hash=hashlib.sha256(data).hexdigest()[:20],
        content_hash=content_hash(notes),
        features=features,
        difficulty=float(difficulty_score(features)),
        tokens=tokens,
        notes=notes,
        qpm=qpm,
        bar_len=bar_len,
        seconds=seconds,
        midi=data if item.path is None else None,
        meta=item.meta,
        tune=tune_fingerprint(notes),
        unwritable={key: values for key, values in unwritable(tokenizer, reduced).items() if values},
    )
