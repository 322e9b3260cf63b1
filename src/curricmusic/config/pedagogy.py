"""Typed options of the pedagogy generators, validated when a curriculum loads.

The generators themselves live in :mod:`curricmusic.data.pedagogy`; a curriculum's
``[[stages]] options = {...}`` table is checked against the model registered here for its
``generator`` name (one line per mistake, naming the key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from curricmusic.music.keys import ScaleForm

__all__ = [
    "GENERATOR_OPTIONS",
    "GeneratorOptions",
    "NonEmptyUnique",
    "ScalesOptions",
    "HanonOptions",
    "EtudesOptions",
    "FIGURE_NAMES",
    "CIRCLE",
]

T = TypeVar("T")


def _unique(values: list[T]) -> list[T]:
    if len(set(values)) != len(values):
        raise ValueError(f"values must not repeat, got {values}")
    return values


# A list option: at least one value, no value twice.
NonEmptyUnique = Annotated[list[T], Field(min_length=1), AfterValidator(_unique)]


class GeneratorOptions(BaseModel):
    """Base of each generator's options: strict types, unknown keys rejected, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    max_pieces: int | None = Field(
        None, ge=1, description="keep at most this many pieces: a seeded subset, in order"
    )


# ---- scales ----------------------------------------------------------------------------------
Rhythm = Literal["quarters", "eighths", "triplets", "sixteenths"]
Motion = Literal["separate", "parallel", "contrary"]
Arpeggio = Literal["tonic", "dominant7", "diminished7"]
Part = Literal["scales", "chromatic", "arpeggios"]
NoteValue = Literal["sixteenths", "eighths"]
BarCount = Literal[8, 12, 16]
Meter = Literal["4/4", "3/4"]


def _every(choices: Any) -> Callable[[], list[Any]]:
    """A default factory: every value of a ``Literal``, in its order."""
    return lambda: list(get_args(choices))
_Octaves = NonEmptyUnique[Annotated[int, Field(ge=1, le=4)]]


class ScalesOptions(GeneratorOptions):
    """Options of the ``scales`` generator (defaults: ~400 pieces over the 24 keys)."""

    parts: NonEmptyUnique[Part] = Field(default_factory=_every(Part))
    octaves: _Octaves = Field(
        default_factory=lambda: [1, 2, 3, 4],
        description="spans to choose from (1..4); contrary motion plays at most 2",
    )
    minor_forms: NonEmptyUnique[ScaleForm] = Field(default_factory=_every(ScaleForm))
    motions: NonEmptyUnique[Motion] = Field(default_factory=_every(Motion))
    rhythms: NonEmptyUnique[Rhythm] = Field(default_factory=_every(Rhythm))
    arpeggios: NonEmptyUnique[Arpeggio] = Field(default_factory=_every(Arpeggio))
    variants: int = Field(1, ge=1, le=16, description="(octaves, note value) pieces per exercise")


# ---- hanon -----------------------------------------------------------------------------------
# the figures of :data:`curricmusic.data.pedagogy.hanon.FIGURES`, in order
FIGURE_NAMES = (
    "rise-and-fall",
    "leap-and-turn",
    "climbing-thirds",
    "broken-thirds",
    "upper-pedal",
    "neighbour-climb",
    "arch",
    "fifth-fall",
    "thumb-pivot",
    "trill-and-run",
)


class HanonOptions(GeneratorOptions):
    """Options of the ``hanon`` generator (defaults: 6 of the 10 figures per key, 144 pieces)."""

    figures: NonEmptyUnique[str] = Field(default_factory=lambda: list(FIGURE_NAMES))
    figures_per_key: int | None = Field(
        6, ge=1, description="a seeded choice of this many figures per key; None: all of them"
    )
    note_values: NonEmptyUnique[NoteValue] = Field(default_factory=_every(NoteValue))
    octaves: int = Field(2, ge=1, le=3, description="how far the figure climbs before turning")
    minor_form: ScaleForm = "harmonic"

    @field_validator("figures")
    @classmethod
    def _known_figures(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in FIGURE_NAMES]
        if unknown:
            raise ValueError(f"unknown figures {unknown}; expected some of: {', '.join(FIGURE_NAMES)}")
        return value


# ---- etudes ----------------------------------------------------------------------------------
Progression = Literal["I-IV-V-I", "ii-V-I", "vi-ii-V-I", "I-IV-vii-iii-vi-ii-V-I"]
Figuration = Literal["scale-runs", "broken-chords", "melody"]
Accompaniment = Literal["alberti", "block", "broken-octaves"]
CIRCLE = "I-IV-vii-iii-vi-ii-V-I"


class EtudesOptions(GeneratorOptions):
    """Options of the ``etudes`` generator (defaults: 6 pieces per key, 144 over the 24 keys)."""

    pieces_per_key: int = Field(6, ge=1, le=500)
    bars: NonEmptyUnique[BarCount] = Field(default_factory=_every(BarCount))
    meters: NonEmptyUnique[Meter] = Field(default_factory=_every(Meter))
    progressions: NonEmptyUnique[Progression] = Field(default_factory=_every(Progression))
    figurations: NonEmptyUnique[Figuration] = Field(default_factory=_every(Figuration))
    accompaniments: NonEmptyUnique[Accompaniment] = Field(default_factory=_every(Accompaniment))

    @model_validator(mode="after")
    def _circle_needs_room(self) -> EtudesOptions:
        if self.progressions == [CIRCLE] and self.bars == [8]:
            raise ValueError(f"progression {CIRCLE!r} needs 12 or 16 bars (bars = [8] given)")
        return self


# generator name -> its options model (the generators register their functions in data.pedagogy)
GENERATOR_OPTIONS: dict[str, type[GeneratorOptions]] = {
    "scales": ScalesOptions,
    "hanon": HanonOptions,
    "etudes": EtudesOptions,
}
