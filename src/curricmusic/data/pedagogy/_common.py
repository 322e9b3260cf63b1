"""What every pedagogy generator shares: the piece type, seeding, option base, score building."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from symusic import KeySignature, Note, Score, Tempo, TimeSignature, Track

from curricmusic.music.keys import Key, midi_key_signature

__all__ = [
    "TPQ",
    "GeneratedPiece",
    "piece_rng",
    "keep_subset",
    "PieceBuilder",
    "finish_piece",
    "pitches_with",
]

TPQ = 480  # ticks per quarter note of every generated score
PIANO_LOW, PIANO_HIGH = 21, 108
T = TypeVar("T")


@dataclass(frozen=True)
class GeneratedPiece:
    """One generated piece: a stable name, a symusic score (tpq 480) and JSON-serialisable meta."""

    name: str
    score: Score
    meta: dict[str, Any]


def piece_rng(seed: int, *parts: object) -> np.random.Generator:
    """A generator seeded from ``seed`` and a stable text of ``parts`` (SHA-256, never ``hash()``)."""
    text = "/".join(str(part) for part in parts)
    digest = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed) % 2**64, digest])


def keep_subset(
    pieces: list[GeneratedPiece], max_pieces: int | None, seed: int, kind: str
) -> list[GeneratedPiece]:
    """At most ``max_pieces`` of ``pieces``: a seeded choice, kept in the original order."""
    if max_pieces is None or len(pieces) <= max_pieces:
        return pieces
    rng = piece_rng(seed, kind, "max_pieces", len(pieces))
    chosen = np.sort(rng.choice(len(pieces), size=max_pieces, replace=False))
    return [pieces[int(i)] for i in chosen]


def pitches_with(pitch_classes: Iterable[int], low: int, high: int) -> list[int]:
    """Every MIDI pitch in ``low..high`` (inclusive) whose pitch class is in ``pitch_classes``."""
    wanted = {int(pc) % 12 for pc in pitch_classes}
    return [p for p in range(low, high + 1) if p % 12 in wanted]


class PieceBuilder:
    """Collects the notes of the two hands and writes them as a tick-based symusic Score.

    ``meter`` is the time signature; the beat is the quarter note in simple meters and the dotted
    quarter in compound ones (6/8, 9/8, 12/8). Velocities come from :meth:`velocity`: a seeded
    dynamic level for the piece, accents on downbeats and beats, a little seeded jitter, 60..100.
    """

    def __init__(self, rng: np.random.Generator, meter: tuple[int, int], level: int | None = None):
        self.rng = rng
        self.meter = meter
        numerator, denominator = meter
        self.bar_ticks = numerator * TPQ * 4 // denominator
        compound = denominator == 8 and numerator % 3 == 0 and numerator > 3
        self.beat_ticks = 3 * TPQ // 2 if compound else TPQ * 4 // denominator
        self.level = int(rng.integers(-6, 7)) if level is None else level
        self.hands: dict[str, list[tuple[int, int, int, int]]] = {"RH": [], "LH": []}

    def velocity(self, tick: int, accent: int = 0) -> int:
        """A velocity for a note at ``tick``: 86 on downbeats, 78 on beats, 70 between, +- a little."""
        position = tick % self.bar_ticks
        if position == 0:
            value = 86
        elif position % self.beat_ticks == 0:
            value = 78
        else:
            value = 70
        value += self.level + accent + int(self.rng.integers(-3, 4))
        return int(min(100, max(60, value)))

    def add(self, hand: str, start: int, duration: int, pitch: int, accent: int = 0) -> None:
        """Add one note (ticks) to ``"RH"`` or ``"LH"``; its velocity comes from :meth:`velocity`."""
        if duration <= 0 or start < 0:
            raise ValueError(f"note at tick {start} has duration {duration}")
        if not PIANO_LOW <= pitch <= PIANO_HIGH:
            raise ValueError(f"pitch {pitch} is outside the piano's range")
        self.hands[hand].append(
            (int(start), int(duration), int(pitch), self.velocity(start, accent))
        )

    def end(self, hand: str | None = None) -> int:
        """The tick where the last note (of ``hand``, or of either hand) ends; 0 when empty."""
        notes = self.hands[hand] if hand else self.hands["RH"] + self.hands["LH"]
        return max((start + duration for start, duration, _, _ in notes), default=0)

    def next_bar(self, tick: int) -> int:
        """The first bar line at or after ``tick``."""
        return -(-tick // self.bar_ticks) * self.bar_ticks

    def score(self, key: Key, qpm: int) -> Score:
        """The notes as a Score: tempo, time signature, key signature, one track per playing hand."""
        score = Score(TPQ)
        score.tempos.append(Tempo(0, qpm=float(qpm)))
        score.time_signatures.append(TimeSignature(0, *self.meter))
        score.key_signatures.append(KeySignature(0, *midi_key_signature(key)))
        for hand in ("RH", "LH"):
            notes = sorted(self.hands[hand])
            if not notes:
                continue
            columns = np.array(notes, dtype=np.int32).T
            track = Track(name=hand, program=0, is_drum=False)
            track.notes = Note.from_numpy(
                columns[0], columns[1], columns[2].astype(np.int8), columns[3].astype(np.int8)
            )
            score.tracks.append(track)
        return score


def finish_piece(
    builder: PieceBuilder,
    name: str,
    key: Key,
    *,
    generator: str,
    seed: int,
    qpm_range: tuple[int, int],
    **details: Any,
) -> GeneratedPiece:
    """The piece ``builder`` holds, named ``name``: its tempo drawn last from the builder's
    generator (in ``qpm_range``, both ends included), and its meta in one order for every
    generator: ``generator``, ``key``, the generator's own ``details``, ``time_signature``,
    ``qpm``, ``seed``."""
    low, high = qpm_range
    qpm = int(builder.rng.integers(low, high + 1))
    numerator, denominator = builder.meter
    meta = {
        "generator": generator,
        "key": key.name,
        **details,
        "time_signature": f"{numerator}/{denominator}",
        "qpm": qpm,
        "seed": seed,
    }
    return GeneratedPiece(name, builder.score(key, qpm), meta)
