"""Czerny/Beyer-style etudes: 8 to 16 bars of right-hand figuration over a left-hand accompaniment.

A piece is a chain of 4-bar phrases over one chord per bar. Antecedent phrases end on a half
cadence (V), consequents and the piece on an authentic cadence (V or V7, then I); an 8-bar
sequence may walk the circle of fifths (I-IV-vii-iii-vi-ii-V-I, the subtonic VII in minor). The
right hand plays scale runs, broken chords, or a melody of chord tones on the beats and passing
notes between them; the left hand plays an Alberti bass, block chords (a waltz bass in 3/4) or
broken octaves, always on the bar's chord. The seed picks progression, length, meter,
figuration, accompaniment and tempo; ``meta["chords"]`` records every bar's chord.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curricmusic.config.pedagogy import CIRCLE, EtudesOptions
from curricmusic.data.pedagogy._common import (
    TPQ,
    GeneratedPiece,
    PieceBuilder,
    finish_piece,
    keep_subset,
    piece_rng,
    pitches_with,
)
from curricmusic.music.keys import Key, diatonic_chord, roman_numeral, scale_pitch_classes

__all__ = ["generate_etudes", "PROGRESSIONS", "chord_plan"]


# progression -> (antecedent ending on V, consequent ending V-I, closing phrase for 12 bars), as
# scale degrees, one chord per bar. The circle-of-fifths progression closes with its 8-bar sequence.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "I-IV-V-I": ((1, 4, 1, 5), (1, 4, 5, 1), (4, 1, 5, 1)),
    "ii-V-I": ((1, 4, 2, 5), (1, 2, 5, 1), (4, 2, 5, 1)),
    "vi-ii-V-I": ((1, 6, 2, 5), (6, 2, 5, 1), (6, 2, 5, 1)),
    CIRCLE: ((1, 4, 1, 5), (1, 4, 5, 1), (1, 4, 7, 3, 6, 2, 5, 1)),
}
_QPM = {"scale-runs": (66, 104), "broken-chords": (72, 116), "melody": (80, 132)}
RH_LOW, RH_HIGH = 64, 88  # right hand E4..E6; the left hand stays below E4
_MELODY_RHYTHMS = {  # beats -> rhythms (in beats) of one bar or half bar
    1: ((1,), (0.5, 0.5)),
    2: ((1, 1), (0.5, 0.5, 1), (1.5, 0.5), (2,)),
    3: ((1, 1, 1), (2, 1), (1, 0.5, 0.5, 1), (1.5, 0.5, 1), (0.5, 0.5, 1, 1)),
    4: (
        (1, 1, 1, 1),
        (2, 1, 1),
        (1, 1, 2),
        (1, 0.5, 0.5, 1, 1),
        (1.5, 0.5, 1, 1),
        (1, 1, 0.5, 0.5, 1),
    ),
}


@dataclass(frozen=True)
class _Bar:
    degree: int
    pitch_classes: tuple[int, ...]
    roman: str
    cadence: str | None  # "half", "authentic" or None


def chord_plan(key: Key, progression: str, bars: int, dominant_seventh: bool) -> list[_Bar]:
    """One chord per bar: the phrases of ``progression`` laid out over ``bars`` bars."""
    antecedent, consequent, closing = PROGRESSIONS[progression]
    if progression == CIRCLE:
        phrases = [antecedent, closing] if bars == 12 else [antecedent, consequent, closing]
    else:
        phrases = {8: [antecedent, consequent], 12: [antecedent, consequent, closing]}.get(
            bars, [antecedent, consequent, antecedent, consequent]
        )
    plan = []
    for phrase in phrases:
        for index, degree in enumerate(phrase):
            last = index == len(phrase) - 1
            cadence = ("half" if degree == 5 else "authentic") if last else None
            seventh = dominant_seventh and degree == 5 and not last
            raised = False if (progression == CIRCLE and degree == 7) else None
            pcs = diatonic_chord(key, degree, seventh, raised_leading_tone=raised)
            plan.append(_Bar(degree, pcs, roman_numeral(key, pcs, degree), cadence))
    return plan


def _bar_scale(key: Key, chord: tuple[int, ...]) -> list[int]:
    """The key's scale as this bar plays it: harmonic minor under chords with the leading tone."""
    if key.mode == "minor" and (key.tonic_pc + 11) % 12 in chord:
        return list(scale_pitch_classes(key, "harmonic"))
    return list(scale_pitch_classes(key, "natural"))


class _RightHand:
    """The right hand's figuration, carrying its position and direction from bar to bar."""

    def __init__(self, builder: PieceBuilder, rng: np.random.Generator, figuration: str) -> None:
        self.b, self.rng, self.figuration = builder, rng, figuration
        self.pos = int(rng.integers(70, 79))
        self.dir = 1 if rng.random() < 0.5 else -1
        self.broken_step = TPQ // 4 if rng.random() < 0.5 else TPQ // 2
        self.zigzag = bool(rng.random() < 0.5)

    def _nearest(self, candidates: list[int], target: float, avoid: int | None = None) -> int:
        pool = [p for p in candidates if p != avoid] or candidates
        return min(pool, key=lambda p: (abs(p - target), -self.dir * p))

    def play(self, start: int, beats: int, chord: Sequence[int], scale: Sequence[int]) -> None:
        if self.rng.random() < 0.25:
            self.dir = -self.dir
        chord_p = pitches_with(chord, RH_LOW, RH_HIGH)
        scale_p = pitches_with(scale, RH_LOW, RH_HIGH)
        figurations = {
            "scale-runs": self._scale_runs,
            "broken-chords": self._broken_chords,
            "melody": self._melody,
        }
        figurations[self.figuration](start, beats, chord_p, scale_p)

    def hold(self, start: int, duration: int, chord: Sequence[int]) -> None:
        """A long chord tone near the hand's position (phrase ends)."""
        pitch = self._nearest(pitches_with(chord, RH_LOW, RH_HIGH), self.pos)
        self.b.add("RH", start, duration, pitch, 4)
        self.pos = pitch

    def _scale_runs(self, start: int, beats: int, chord_p: list[int], scale_p: list[int]) -> None:
        step = TPQ // 4
        for beat in range(beats):
            first = self._nearest(chord_p, self.pos + self.dir, avoid=self.pos)
            i = scale_p.index(first)
            if not 0 <= i + 4 * self.dir < len(scale_p):
                self.dir = -self.dir
            for k in range(4):
                self.b.add("RH", start + beat * TPQ + k * step, step, scale_p[i + k * self.dir], 2)
            self.pos = scale_p[i + 3 * self.dir]

    def _broken_chords(
        self, start: int, beats: int, chord_p: list[int], scale_p: list[int]
    ) -> None:
        usable = chord_p[: len(chord_p) - 3]  # room for four chord tones upward
        i = chord_p.index(self._nearest(usable, self.pos))
        tones = chord_p[i : i + 4]
        order = itertools.cycle((0, 1, 2, 3, 2, 1) if self.zigzag else (0, 1, 2, 3))
        step = self.broken_step
        for n in range(beats * TPQ // step):
            self.b.add("RH", start + n * step, step, tones[next(order)], 2)
        self.pos = tones[0]

    def _melody(self, start: int, beats: int, chord_p: list[int], scale_p: list[int]) -> None:
        options = _MELODY_RHYTHMS[beats]
        rhythm = options[int(self.rng.integers(len(options)))]
        onset = 0.0
        for length in rhythm:
            if not RH_LOW + 5 <= self.pos <= RH_HIGH - 5:  # turn back towards the middle
                self.dir = 1 if self.pos < (RH_LOW + RH_HIGH) / 2 else -1
            elif self.rng.random() < 0.3:
                self.dir = -self.dir
            if onset == int(onset):  # on the beat: a chord tone, a small leap away
                leap = int(self.rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.1, 0.1]))
                pitch = self._nearest(chord_p, self.pos + self.dir * leap, avoid=self.pos)
            else:  # off the beat: a passing note, the next scale step on
                i = scale_p.index(self._nearest(scale_p, self.pos))
                i = min(max(i + self.dir, 0), len(scale_p) - 1)
                pitch = scale_p[i]
            tick = start + int(onset * TPQ)
            self.b.add("RH", tick, int(length * TPQ), pitch, 6 if onset == int(onset) else 0)
            self.pos = pitch
            onset += length


def _accompany(builder: PieceBuilder, style: str, start: int, beats: int, chord: Sequence[int]) -> None:
    """The left hand's bar on ``chord`` (pitch classes, root first); root in E2..D#3.

    ``style`` ``"final"`` holds the chord over a low octave for the whole bar.
    """
    root = 40 + (chord[0] - 40) % 12
    tones = [root + (pc - chord[0]) % 12 for pc in chord]
    add = builder.add
    if style == "final":
        for pitch in [root - 12, *tones]:
            add("LH", start, beats * TPQ, pitch, -4)
    elif style == "alberti":  # low, high, middle, high: the seventh replaces the fifth in V7
        low, mid, high = tones[0], tones[1], tones[-1]
        for n, pitch in enumerate(
            itertools.islice(itertools.cycle((low, high, mid, high)), 2 * beats)
        ):
            add("LH", start + n * TPQ // 2, TPQ // 2, pitch, -8 if n % 2 else -4)
    elif style == "broken-octaves":
        for n in range(2 * beats):
            add("LH", start + n * TPQ // 2, TPQ // 2, root if n % 2 == 0 else root + 12, -6)
    elif beats == 3:  # block chords in 3/4: a waltz bass, root then the chord twice
        add("LH", start, TPQ, root, -4)
        for beat in (1, 2):
            for pitch in tones[1:]:
                add("LH", start + beat * TPQ, TPQ, pitch, -10)
    else:  # block chords in 4/4: two half-note chords
        for beat in range(0, beats, 2):
            for pitch in tones:
                add("LH", start + beat * TPQ, 2 * TPQ, pitch, -6)


def _build(key: Key, combo: tuple, seed: int, name: str) -> GeneratedPiece:
    progression, bars, meter, figuration, accompaniment = combo
    rng = piece_rng(seed, name, *combo)
    numerator = int(meter.split("/")[0])
    builder = PieceBuilder(rng, (numerator, 4))
    dominant_seventh = bool(rng.random() < 0.6)
    plan = chord_plan(key, progression, bars, dominant_seventh)
    right = _RightHand(builder, rng, figuration)
    for index, bar in enumerate(plan):
        start = index * builder.bar_ticks
        if index == len(plan) - 1:  # the final tonic: held in both hands
            tonic = right._nearest(pitches_with([key.tonic_pc], RH_LOW, RH_HIGH), right.pos)
            builder.add("RH", start, builder.bar_ticks, tonic, 6)
            _accompany(builder, "final", start, numerator, bar.pitch_classes)
            continue
        scale = _bar_scale(key, bar.pitch_classes)
        if bar.cadence is not None:  # phrase end: figuration, then a held chord tone
            half = numerator // 2
            right.play(start, half, bar.pitch_classes, scale)
            right.hold(start + half * TPQ, (numerator - half) * TPQ, bar.pitch_classes)
        else:
            right.play(start, numerator, bar.pitch_classes, scale)
        _accompany(builder, accompaniment, start, numerator, bar.pitch_classes)
    chords = [
        {"bar": i + 1, "degree": b.degree, "roman": b.roman, "pitch_classes": list(b.pitch_classes)}
        for i, b in enumerate(plan)
    ]
    return finish_piece(
        builder, name, key, generator="etudes", seed=seed, qpm_range=_QPM[figuration],
        progression=progression, bars=bars, figuration=figuration, accompaniment=accompaniment,
        dominant_seventh=dominant_seventh, chords=chords,
        cadences=[{"bar": i + 1, "type": b.cadence} for i, b in enumerate(plan) if b.cadence],
    )  # fmt: skip


def generate_etudes(keys: Sequence[Key], seed: int, options: EtudesOptions) -> list[GeneratedPiece]:
    """``pieces_per_key`` etudes per key, over distinct seeded settings while they last."""
    combos = [
        (progression, bars, meter, figuration, accompaniment)
        for progression in options.progressions
        for bars in options.bars
        if not (progression == CIRCLE and bars == 8)
        for meter in options.meters
        for figuration in options.figurations
        for accompaniment in options.accompaniments
    ]
    pieces = []
    for key in keys:
        order = piece_rng(seed, "etudes", key.slug).permutation(len(combos))
        for i in range(options.pieces_per_key):
            combo = combos[int(order[i % len(combos)])]
            name = f"etudes/{key.slug}/{i + 1:02d}"
            pieces.append(_build(key, combo, seed, name))
    return keep_subset(pieces, options.max_pieces, seed, "etudes")
