"""The package's one in-memory note representation, shared by difficulty, metrics and novelty.

A piece is a NumPy structured array of :data:`NOTE_DTYPE` with times in quarter notes (beats of a
4/4 bar), all non-drum tracks merged and sorted by ``(onset, pitch)``. Pure functions take this
array (and, where bars matter, the bar length in quarters) so that they can be tested on tiny
hand-written fixtures without any MIDI file.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

__all__ = [
    "NOTE_DTYPE",
    "score_seconds",
    "seconds_at",
    "make_notes",
    "score_notes",
    "bar_length",
    "notes_to_score",
    "piano_reduction",
    "timing_problem",
]

NOTE_DTYPE = np.dtype(
    [("onset", "<f8"), ("duration", "<f8"), ("pitch", "<i2"), ("velocity", "<i2")]
)


def make_notes(
    onsets: ArrayLike, durations: ArrayLike, pitches: ArrayLike, velocities: ArrayLike | None = None
) -> np.ndarray:
    """Build a sorted note array from parallel sequences (velocity 80 when omitted).

    >>> make_notes([1, 0], [1, 1], [64, 60])["pitch"].tolist()
    [60, 64]
    """
    onsets = np.asarray(onsets, dtype=np.float64)
    notes = np.empty(onsets.shape[0], dtype=NOTE_DTYPE)
    notes["onset"] = onsets
    notes["duration"] = np.asarray(durations, dtype=np.float64)
    notes["pitch"] = np.asarray(pitches, dtype=np.int16)
    notes["velocity"] = 80 if velocities is None else np.asarray(velocities, dtype=np.int16)
    return np.sort(notes, order=("onset", "pitch"))


def score_notes(score: Score) -> np.ndarray:
    """All non-drum notes of a tick-based ``score`` in quarter notes, sorted by (onset, pitch)."""
    arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and t.note_num() > 0]
    notes = np.empty(sum(a["time"].shape[0] for a in arrays), dtype=NOTE_DTYPE)
    if notes.shape[0] == 0:
        return notes
    tpq = float(score.tpq)
    notes["onset"] = np.concatenate([a["time"] for a in arrays]) / tpq
    notes["duration"] = np.concatenate([a["duration"] for a in arrays]) / tpq
    notes["pitch"] = np.concatenate([a["pitch"] for a in arrays])
    notes["velocity"] = np.concatenate([a["velocity"] for a in arrays])
    return notes[np.lexsort((notes["pitch"], notes["onset"]))]


def score_seconds(score: Score) -> float:
    """Duration of a tick-based score in seconds, from its end tick and tempo map (120 qpm default)."""
    return seconds_at(score, int(score.end()))


def seconds_at(score: Score, tick: int) -> float:
    """Seconds from the start of a tick-based score to ``tick``, by its tempo map (120 qpm default)."""
    tpq = float(score.tpq)
    seconds, at, mspq = 0.0, 0, 500_000
    for tempo in score.tempos:
        if tempo.time >= tick:
            break
        seconds += (tempo.time - at) / tpq * mspq / 1e6
        at, mspq = tempo.time, tempo.mspq
    return seconds + (tick - at) / tpq * mspq / 1e6


def bar_length(score: Score) -> float:
    """Quarter notes per bar, from the score's first time signature (4.0 when it has none)."""
    if len(score.time_signatures) == 0:
        return 4.0
    first = score.time_signatures[0]
    return 4.0 * first.numerator / first.denominator


def notes_to_score(
    notes: np.ndarray,
    *,
    tpq: int = 480,
    qpm: float = 120.0,
    time_signature: tuple[int, int] = (4, 4),
    key_signature: tuple[int, int] | None = None,
    program: int = 0,
    name: str = "Piano",
) -> Score:
    """A one-track tick-based Score from a note array (times in quarters).

    ``key_signature`` is ``(sharps, mode)`` as in MIDI: sharps in -7..7 (negative for flats),
    mode 0 for major and 1 for minor.
    """
    score = Score(tpq)
    score.tempos.append(Tempo(0, qpm=qpm))
    score.time_signatures.append(TimeSignature(0, *time_signature))
    if key_signature is not None:
        score.key_signatures.append(KeySignature(0, *key_signature))
    track = Track(name=name, program=program, is_drum=False)
    for note in notes:
        start = int(round(float(note["onset"]) * tpq))
        length = max(1, int(round(float(note["duration"]) * tpq)))
        track.notes.append(Note(start, length, int(note["pitch"]), int(note["velocity"])))
    score.tracks.append(track)
    return score


def piano_reduction(score: Score) -> Score:
    """One piano track (program 0) holding every non-drum note; tempo, meter and key kept.

    curricmusic models piano music as a single note stream: hands, voices and instruments are
    merged before tokenization so one token sequence describes the whole piece.
    """
    reduced = Score(score.tpq)
    reduced.tempos = score.tempos.copy()
    reduced.time_signatures = score.time_signatures.copy()
    reduced.key_signatures = score.key_signatures.copy()
    track = Track(name="Piano", program=0, is_drum=False)
    for source in score.tracks:
        if source.is_drum:
            continue
        track.notes.extend(source.notes)
    track.notes.sort()
    reduced.tracks.append(track)
    return reduced


def timing_problem(score: Score) -> str | None:
    """Why a score's timing is unusable (no time division, a zero or invalid tempo), or None.

    The one check ``data prepare`` and ``novelty`` both apply: such a file has no durations in
    seconds, so it can be neither rendered nor measured.
    """
    if score.tpq <= 0:
        return "invalid time division (ticks per quarter <= 0)"
    for tempo in score.tempos:
        if tempo.mspq <= 0 or not math.isfinite(tempo.qpm) or tempo.qpm <= 0:
            return "zero or invalid tempo"
    return None
