"""Scales, the chromatic scale and arpeggios, the way a piano student practises them.

Each *exercise* is a key, what is played (a major or minor scale form, the chromatic scale, or an
arpeggio) and a motion (hands separately, parallel octaves, contrary motion). Each exercise yields
``variants`` pieces, each with its own seeded choice of span in octaves and note value; a piece's
notes depend only on the seed and its own name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from curricmusic.config.pedagogy import ScalesOptions
from curricmusic.data.pedagogy._common import (
    TPQ,
    GeneratedPiece,
    PieceBuilder,
    finish_piece,
    keep_subset,
    piece_rng,
)
from curricmusic.music.keys import Key, ScaleForm, diatonic_chord, scale_pitch_classes

__all__ = ["generate_scales", "RHYTHMS", "MAX_CONTRARY_OCTAVES"]

# note value -> (ticks per note, time signature, tempo range in quarter notes per minute).
# Triplets are written as eighths in 12/8 (three to the dotted-quarter beat).
RHYTHMS: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    "quarters": (TPQ, (4, 4), (72, 120)),
    "eighths": (TPQ // 2, (4, 4), (66, 108)),
    "triplets": (TPQ // 2, (12, 8), (90, 144)),
    "sixteenths": (TPQ // 4, (4, 4), (56, 96)),
}
# In contrary motion the hands start an octave apart and diverge: wider spans leave the keyboard.
MAX_CONTRARY_OCTAVES = 2
# (step index, ascending) -> pitch of a line's step (negative indices below its start)
DegreePitch = Callable[[int, bool], int]
# (label, kind, root pc, up intervals, down intervals or None, extra meta) of one exercise
Exercise = tuple[str, str, int, tuple[int, ...], tuple[int, ...] | None, dict[str, Any]]
def _start_pitch(pc: int, low: int) -> int:
    """The pitch of class ``pc`` in ``low .. low + 11``."""
    return low + (pc - low) % 12


def _line(degree_pitch: DegreePitch, count: int, sign: int) -> list[int]:
    """Out ``count`` steps (up for sign +1, down for -1) and back: ``2 * count + 1`` pitches.

    ``degree_pitch(index, ascending)`` gives the pitch of a step index (negative below the start),
    so melodic minor can rise melodic and fall natural.
    """
    out = [degree_pitch(sign * i, sign > 0) for i in range(count + 1)]
    back = [degree_pitch(sign * i, sign < 0) for i in range(count - 1, -1, -1)]
    return out + back


def _stepper(start: int, up_steps: Sequence[int], down_steps: Sequence[int] | None = None) -> DegreePitch:
    """``degree_pitch`` for a cycle of intervals within an octave (scale, chord or semitones)."""
    down_steps = up_steps if down_steps is None else down_steps
    size = len(up_steps)

    def degree_pitch(index: int, ascending: bool) -> int:
        steps = up_steps if ascending else down_steps
        octave, step = divmod(index, size)
        return start + 12 * octave + steps[step]

    return degree_pitch


def _intervals(pcs: Sequence[int]) -> tuple[int, ...]:
    return tuple((pc - pcs[0]) % 12 for pc in pcs)


def _exercises(key: Key, options: ScalesOptions, chromatic_done: set[int]) -> list[Exercise]:
    """(label, kind, root pc, up intervals, down intervals, extra meta) of the key's exercises."""
    out: list[Exercise] = []
    if "scales" in options.parts:
        forms: list[ScaleForm | Literal["major"]] = ["major"] if key.mode == "major" else list(options.minor_forms)
        for form in forms:
            scale_form: ScaleForm = "natural" if form == "major" else form
            up = _intervals(scale_pitch_classes(key, scale_form))
            down = _intervals(scale_pitch_classes(key, "natural")) if form == "melodic" else up
            out.append((form, "scale", key.tonic_pc, up, down, {"form": form}))
    if "chromatic" in options.parts and key.tonic_pc not in chromatic_done:
        chromatic_done.add(key.tonic_pc)
        out.append(("chromatic", "chromatic", key.tonic_pc, tuple(range(12)), None, {}))
    if "arpeggios" in options.parts:
        for arpeggio in options.arpeggios:
            if arpeggio == "tonic":
                chord = diatonic_chord(key, 1)
            elif arpeggio == "dominant7":
                chord = diatonic_chord(key, 5, seventh=True)
            else:  # vii°7 on the leading tone, also in major (its minor-sixth seventh borrowed)
                leading = (key.tonic_pc + 11) % 12
                chord = tuple((leading + 3 * i) % 12 for i in range(4))
            meta = {"arpeggio": arpeggio, "chord_pitch_classes": list(chord)}
            out.append(
                (f"arpeggio-{arpeggio}", "arpeggio", chord[0], _intervals(chord), None, meta)
            )
    return out


def _play(builder: PieceBuilder, hand: str, pitches: list[int], start: int, step: int) -> int:
    """Play ``pitches`` from ``start`` every ``step`` ticks, the last held to a bar line (>= 1 beat).

    Returns the tick where the line ends. Louder towards the top of the line, softer at the bottom.
    """
    low, high = min(pitches), max(pitches)
    for i, pitch in enumerate(pitches):
        tick = start + i * step
        accent = round(8 * (pitch - low) / max(1, high - low)) - 4
        duration = step
        if i == len(pitches) - 1:
            duration = builder.next_bar(tick + builder.beat_ticks) - tick
        builder.add(hand, tick, duration, pitch, accent)
    return builder.next_bar(start + (len(pitches) - 1) * step + builder.beat_ticks)


def _build(key: Key, exercise: Exercise, motion: str, octaves: int, rhythm: str, name: str, seed: int) -> GeneratedPiece:
    label, kind, root_pc, up, down, extra = exercise
    step, meter, (qpm_low, qpm_high) = RHYTHMS[rhythm]
    rng = piece_rng(seed, name)
    builder = PieceBuilder(rng, meter)
    count = len(up) * octaves
    if motion == "contrary":
        # Both hands start an octave apart on the root (RH from C4..B4) and move apart.
        rh_start = _start_pitch(root_pc, 60)
        lh_start = rh_start - 12
        rh = _line(_stepper(rh_start, up, down), count, +1)
        lh = _line(_stepper(lh_start, up, down), count, -1)
        _play(builder, "RH", rh, 0, step)
        _play(builder, "LH", lh, 0, step)
    else:
        # RH from around middle C (F#3..F4), an octave lower for 3-4 octave spans; LH an octave below.
        rh_start = _start_pitch(root_pc, 55) - (12 if octaves >= 3 else 0)
        rh = _line(_stepper(rh_start, up, down), count, +1)
        lh = [pitch - 12 for pitch in rh]
        if motion == "parallel":
            _play(builder, "RH", rh, 0, step)
            _play(builder, "LH", lh, 0, step)
        else:  # hands separately: the right hand, then the left
            end = _play(builder, "RH", rh, 0, step)
            _play(builder, "LH", lh, end, step)
    return finish_piece(
        builder, name, key, generator="scales", seed=seed, qpm_range=(qpm_low, qpm_high),
        kind=kind, **extra, octaves=octaves, motion=motion, rhythm=rhythm,
    )  # fmt: skip


def generate_scales(keys: Sequence[Key], seed: int, options: ScalesOptions) -> list[GeneratedPiece]:
    """Scales, chromatic scales and arpeggios for every key (chromatic once per tonic)."""
    pieces = []
    chromatic_done: set[int] = set()
    for key in keys:
        for exercise in _exercises(key, options, chromatic_done):
            label = exercise[0]
            for motion in options.motions:
                spans = options.octaves
                if motion == "contrary":
                    spans = sorted({min(o, MAX_CONTRARY_OCTAVES) for o in spans})
                combos = [(o, r) for o in spans for r in options.rhythms]
                rng = piece_rng(seed, "scales", key.slug, label, motion)
                picks = rng.choice(
                    len(combos), size=min(options.variants, len(combos)), replace=False
                )
                for index in sorted(int(i) for i in picks):
                    octaves, rhythm = combos[index]
                    name = f"scales/{key.slug}/{label}/{octaves}oct/{motion}/{rhythm}"
                    pieces.append(_build(key, exercise, motion, octaves, rhythm, name, seed))
    return keep_subset(pieces, options.max_pieces, seed, "scales")
