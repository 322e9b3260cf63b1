"""Deterministic pedagogy generators: the early stages of a piano student's curriculum, as MIDI.

Each generator turns a list of keys, a seed and its options into :class:`GeneratedPiece` objects
(a stable name, a two-track symusic Score "RH"/"LH" at 480 ticks per quarter with tempo, time and
key signature, and JSON-serialisable ``meta``). The same seed and options give byte-identical
MIDI in any process: randomness comes from ``numpy.random.default_rng`` seeded by the seed and a
SHA-256 of the piece's name, never from Python's ``hash()``.

What each stage teaches the model (and the student):

``scales``
    The vocabulary of a key. Major and natural, harmonic and melodic minor scales over 1-4
    octaves (melodic minor rising melodic, falling natural), the chromatic scale, and arpeggios of
    the tonic triad, the dominant seventh and the diminished seventh on the leading tone; hands
    separately, in parallel octaves and in contrary motion; in quarters, eighths, triplets (12/8)
    and sixteenths. Teaches which pitch classes belong together, stepwise motion, regular pulse
    and meter, and the shape of a line that rises and returns.

``hanon``
    Patterns and sequence. An 8-note five-finger figure repeated one scale degree higher each bar
    for two octaves and mirrored back down, both hands in octaves, ending on a held tonic (the
    shape of Hanon's *The Virtuoso Pianist*, nos. 1-20, with this package's own figures). Teaches
    repetition with transposition along the scale, and long-range structure: a climb, a turn and a
    return home.

``etudes``
    Harmony and form. 8-16 bar Czerny/Beyer-style pieces over functional progressions (I-IV-V-I,
    ii-V-I, vi-ii-V-I and the circle of fifths) in 4-bar phrases with half cadences mid-period and
    an authentic cadence at the end; right-hand scale runs, broken chords or a chord-tone melody
    with passing notes over an Alberti, block-chord or broken-octave left hand. Teaches melody
    over accompaniment, chords lasting a bar, and phrases that breathe and close.

>>> from curricmusic.music.keys import parse_key
>>> pieces = generate("hanon", [parse_key("C")], seed=0, options={"figures_per_key": 1})
>>> pieces[0].score.tracks[0].name, pieces[0].score.tpq
('RH', 480)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from curricmusic.common.errors import UserError
from curricmusic.config.pedagogy import (
    GENERATOR_OPTIONS,
    EtudesOptions,
    HanonOptions,
    ScalesOptions,
)
from curricmusic.data.pedagogy._common import GeneratedPiece
from curricmusic.data.pedagogy.etudes import generate_etudes
from curricmusic.data.pedagogy.hanon import generate_hanon
from curricmusic.data.pedagogy.scales import generate_scales
from curricmusic.music.keys import Key, parse_key

__all__ = [
    "GeneratedPiece",
    "ScalesOptions",
    "HanonOptions",
    "EtudesOptions",
    "GENERATORS",
    "generate",
]

Generator = Callable[[Sequence[Key], int, Any], list[GeneratedPiece]]

# name -> generator function; its options model is GENERATOR_OPTIONS[name] (config.pedagogy)
GENERATORS: dict[str, Generator] = {
    "scales": generate_scales,
    "hanon": generate_hanon,
    "etudes": generate_etudes,
}


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "options"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def generate(
    kind: str,
    keys: Sequence[Key | str],
    seed: int,
    options: Mapping[str, Any] | BaseModel | None = None,
) -> list[GeneratedPiece]:
    """The pieces of generator ``kind`` for ``keys`` (duplicates dropped, order kept).

    ``options`` is the generator's options model, or a mapping validated by it (``None``: the
    defaults). An unknown ``kind`` or invalid options raise :class:`UserError` in one line.
    """
    if kind not in GENERATORS:
        raise UserError(
            f"unknown generator {kind!r}; expected one of: {', '.join(sorted(GENERATORS))}"
        )
    model, function = GENERATOR_OPTIONS[kind], GENERATORS[kind]
    if options is None:
        options = model()
    elif isinstance(options, BaseModel):
        if not isinstance(options, model):
            raise UserError(
                f"generator {kind!r} takes {model.__name__}, got {type(options).__name__}"
            )
    else:
        try:
            options = model.model_validate(dict(options))
        except ValidationError as exc:
            raise UserError(f"invalid options for generator {kind!r}: {_one_line(exc)}") from None
    unique = list(dict.fromkeys(parse_key(k) if isinstance(k, str) else k for k in keys))
    return function(unique, int(seed), options)
