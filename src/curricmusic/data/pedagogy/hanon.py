"""Hanon-style five-finger exercises, in the shape of the first twenty of *The Virtuoso Pianist*.

An 8-note figure of scale degrees (offsets from its first note, within a five-finger hand
position) is played once per bar and sequenced up the scale one degree at a time for two octaves,
then its mirror image (the same offsets, negated) sequences back down from the top note reached
to the tonic, which is held for a final bar. The left hand doubles the right an octave lower.
The figures are this module's own, written in Hanon's manner.
"""

from __future__ import annotations

from collections.abc import Sequence

from curricmusic.config.pedagogy import HanonOptions
from curricmusic.data.pedagogy._common import (
    TPQ,
    GeneratedPiece,
    PieceBuilder,
    finish_piece,
    keep_subset,
    piece_rng,
)
from curricmusic.music.keys import Key, ScaleForm, scale_pitch_classes

__all__ = ["FIGURES", "generate_hanon", "figure_degrees", "NOTE_VALUES"]

# name -> scale-degree offsets of the 8-note figure, from its first (lowest) note.
FIGURES: dict[str, tuple[int, ...]] = {
    "rise-and-fall": (0, 2, 3, 4, 5, 4, 3, 2),
    "leap-and-turn": (0, 2, 5, 4, 3, 4, 3, 2),
    "climbing-thirds": (0, 2, 1, 3, 2, 4, 3, 1),
    "broken-thirds": (0, 2, 1, 3, 2, 4, 3, 5),
    "upper-pedal": (0, 4, 1, 4, 2, 4, 3, 4),
    "neighbour-climb": (0, 1, 2, 1, 3, 2, 4, 3),
    "arch": (0, 2, 4, 5, 4, 2, 3, 1),
    "fifth-fall": (0, 5, 4, 3, 2, 3, 4, 5),
    "thumb-pivot": (0, 3, 2, 3, 1, 2, 4, 3),
    "trill-and-run": (0, 1, 0, 1, 2, 3, 4, 5),
}
# note value -> (ticks per note, time signature: one figure per bar, tempo range in qpm)
NOTE_VALUES: dict[str, tuple[int, tuple[int, int], tuple[int, int]]] = {
    "sixteenths": (TPQ // 4, (2, 4), (60, 108)),
    "eighths": (TPQ // 2, (4, 4), (80, 132)),
}


def figure_degrees(figure: Sequence[int], octaves: int) -> tuple[list[int], list[int]]:
    """Scale degrees (0 = tonic) of the ascending and descending sequences of ``figure``.

    Ascending: ``7 * octaves`` groups, group ``g`` is ``g + figure``. Descending: as many groups of
    the mirrored figure, from the top note reached down to a last group that ends on the tonic.
    """
    groups = 7 * octaves
    up = [g + offset for g in range(groups) for offset in figure]
    top = groups - 1 + max(figure)
    down = [top - g - offset for g in range(groups) for offset in figure]
    return up, down


def _build(key: Key, figure_name: str, value: str, options: HanonOptions, seed: int, name: str) -> GeneratedPiece:
    step, meter, (qpm_low, qpm_high) = NOTE_VALUES[value]
    rng = piece_rng(seed, name)
    builder = PieceBuilder(rng, meter)
    figure = FIGURES[figure_name]
    form: ScaleForm = options.minor_form
    steps = [(pc - key.tonic_pc) % 12 for pc in scale_pitch_classes(key, form)]
    tonic = 48 + key.tonic_pc  # right hand from C3..B3, left hand an octave lower

    def pitch(degree: int) -> int:
        octave, index = divmod(degree, 7)
        return tonic + 12 * octave + steps[index]

    up, down = figure_degrees(figure, options.octaves)
    for i, degree in enumerate(up + down):
        tick = i * step
        accent = 6 if i % len(figure) == 0 else 0
        builder.add("RH", tick, step, pitch(degree), accent)
        builder.add("LH", tick, step, pitch(degree) - 12, accent)
    final = len(up + down) * step
    builder.add("RH", final, builder.bar_ticks, tonic, 4)
    builder.add("LH", final, builder.bar_ticks, tonic - 12, 4)
    return finish_piece(
        builder, name, key, generator="hanon", seed=seed, qpm_range=(qpm_low, qpm_high),
        figure=figure_name, degrees=list(figure), octaves=options.octaves,
        groups_up=7 * options.octaves, groups_down=7 * options.octaves, note_value=value,
        scale_form=form if key.mode == "minor" else "major",
    )  # fmt: skip


def generate_hanon(keys: Sequence[Key], seed: int, options: HanonOptions) -> list[GeneratedPiece]:
    """For each key a seeded choice of figures (in library order), each in a seeded note value."""
    pieces = []
    for key in keys:
        names = list(options.figures)
        count = len(names) if options.figures_per_key is None else options.figures_per_key
        if count < len(names):
            rng = piece_rng(seed, "hanon", key.slug, "figures")
            chosen = set(rng.choice(len(names), size=count, replace=False).tolist())
            names = [n for i, n in enumerate(names) if i in chosen]
        for figure_name in names:
            rng = piece_rng(seed, "hanon", key.slug, figure_name, "note_value")
            value = options.note_values[int(rng.integers(len(options.note_values)))]
            name = f"hanon/{key.slug}/{figure_name}/{value}"
            pieces.append(_build(key, figure_name, value, options, seed, name))
    return keep_subset(pieces, options.max_pieces, seed, "hanon")
