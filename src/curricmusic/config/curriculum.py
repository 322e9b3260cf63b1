"""Curriculum files: ordered stages of pieces, the shared tokenizer, splits and filters.

Relative paths inside a file are resolved against the file's own directory, so a curriculum can
be run from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import FrozenModel, format_validation_error, load_toml, validate
from curricmusic.config.pedagogy import GENERATOR_OPTIONS
from curricmusic.music.keys import parse_key
from curricmusic.music.tokenizers import TokenizerSettings

__all__ = [
    "TokenizerSettings",
    "SplitSettings",
    "PieceFilters",
    "GeneratedStage",
    "Music21Stage",
    "MidiDirStage",
    "StageConfig",
    "CurriculumConfig",
    "MUSIC21_COLLECTIONS",
    "MUSIC21_PARTS",
    "load_curriculum",
    "check_curriculum",
    "curriculum_from_midi_dir",
]

class SplitSettings(FrozenModel):
    """Fractions held out, by whole tune groups (see ``curricmusic.data.tunes``) or by piece.

    ``by = "tune"`` (default) keeps every piece that shares a melody with another, in any key or
    rhythm (Jaccard of top-line interval 5-grams >= ``tune_threshold``), on one side of the
    split, across stages too; ``by = "content"`` splits piece by piece (exact duplicates only).
    Generated stages split by content unless the stage says ``split_by = "tune"``: their pieces
    are one exercise in many keys, octaves and rhythms, so a tune split would hold out a whole
    exercise type (every major scale) and the held-out pieces would no longer test the unseen
    keys and rhythms of the exercises the stage teaches.
    """

    val: float = Field(0.1, ge=0.0, lt=0.5)
    test: float = Field(0.1, ge=0.0, lt=0.5)
    by: Literal["tune", "content"] = "tune"
    tune_threshold: float = Field(0.3, gt=0.0, le=1.0)


class PieceFilters(FrozenModel):
    """Pieces outside these bounds are skipped with a reason (never a crash)."""

    min_notes: int = Field(8, ge=1)
    max_notes: int = Field(100_000, ge=1)
    max_minutes: float = Field(60.0, gt=0)
    min_seconds: float = Field(1.0, ge=0)


# Names that become file or folder names: ASCII letters, digits, "_", "." and "-", not starting
# with "." or "-" (no "..", no "/", no hidden or option-like names). The same rule as experiment,
# arm and stage names.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class _StageBase(FrozenModel):
    name: str = Field(pattern=NAME_PATTERN)
    limit: int | None = Field(None, ge=1, description="keep at most this many pieces")
    # None: "content" for generated stages, else the curriculum's split.by (see SplitSettings)
    split_by: Literal["tune", "content"] | None = None


class GeneratedStage(_StageBase):
    """A stage of deterministic pedagogy pieces from :mod:`curricmusic.data.pedagogy`."""

    source: Literal["generated"]
    generator: str
    keys: list[str] | None = None  # None: the curriculum's keys
    options: dict[str, Any] = Field(default_factory=dict)


MUSIC21_COLLECTIONS: dict[str, tuple[str, ...]] = {
    # name -> glob patterns inside music21's bundled corpus directory
    "bach_chorales": ("bach/bwv*.mxl", "bach/bwv*.xml"),
    "essen_folksong": ("essenFolksong/*.abc",),
    "ryans_mammoth": ("ryansMammoth/*.abc",),
    "oneills1850": ("oneills1850/*.abc",),
}

# name -> (fewest, most) parts with notes a piece of the collection may have. The bach/bwv* glob
# also matches a Well-Tempered Clavier prelude (bwv846, 2 piano staves) and cantata movements
# whose chorale comes with its instruments (6-15 parts: trumpets, timpani, strings); keeping 4-5
# parts keeps the four-voice chorales, those with one obbligato line or continuo, and the
# five-voice ones (docs/concepts/curricula.md: 381 of the 410 files).
MUSIC21_PARTS: dict[str, tuple[int, int]] = {"bach_chorales": (4, 5)}


class Music21Stage(_StageBase):
    """Pieces from the corpus bundled inside the music21 package (works offline)."""

    source: Literal["music21"]
    collection: str
    sample: Literal["first", "spread"] = Field(
        "first",
        description="with a limit: the first pieces of the collection's files (first), or a seeded sample of "
        "that many drawn from every file (spread: every region of Essen, every book of O'Neill's)",
    )

    @field_validator("collection")
    @classmethod
    def _known_collection(cls, value: str) -> str:
        if value not in MUSIC21_COLLECTIONS:
            raise ValueError(
                f"unknown music21 collection {value!r}; expected one of: {', '.join(sorted(MUSIC21_COLLECTIONS))}"
            )
        return value


class MidiDirStage(_StageBase):
    """Every .mid/.midi file under a folder, searched recursively."""

    source: Literal["midi_dir"]
    path: Path


StageConfig = Annotated[GeneratedStage | Music21Stage | MidiDirStage, Field(discriminator="source")]


class CurriculumConfig(FrozenModel):
    """A staged curriculum: ordered stages from easy to the target music, one tokenizer."""

    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    description: str = ""
    seed: int = 0
    keys: list[str] = Field(default_factory=lambda: ["all"])
    target_stage: str | None = None  # default: the last stage
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    filters: PieceFilters = Field(default_factory=PieceFilters)
    stages: list[StageConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_stages(self) -> CurriculumConfig:
        names = [stage.name for stage in self.stages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(duplicates)}")
        if self.target_stage is not None and self.target_stage not in names:
            raise ValueError(
                f"target_stage {self.target_stage!r} is not a stage; stages are: {', '.join(names)}"
            )
        return self

    @property
    def target(self) -> str:
        """The stage whose validation loss is the experiment's main measure."""
        return self.target_stage or self.stages[-1].name

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]


# --------------------------------------------------------------------------------------------
# Loading

def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make ``stages[*].path`` absolute relative to the TOML file's directory."""
    stages = data.get("stages")
    if isinstance(stages, list):
        for stage in stages:
            if isinstance(stage, dict) and isinstance(stage.get("path"), str):
                stage["path"] = (base / Path(stage["path"]).expanduser()).resolve()
    return data

def load_curriculum(path: str | Path) -> CurriculumConfig:
    """Load and fully validate a curriculum TOML (generators, options, keys and folders included)."""
    path = Path(path)
    data = _resolve_paths(load_toml(path), path.parent)
    config = validate(CurriculumConfig, data, str(path))
    check_curriculum(config, str(path))
    return config

def check_curriculum(config: CurriculumConfig, source: str) -> None:
    """Checks that need other modules: generator names and options, key names, folders."""
    def fail(key: str, message: str) -> None:
        raise UserError(f"{source}: {key}: {message}")

    for index, name in enumerate(config.keys):
        if name != "all":
            try:
                parse_key(name)
            except UserError as exc:
                fail(f"keys.{index}", str(exc))
    for index, stage in enumerate(config.stages):
        if isinstance(stage, GeneratedStage):
            if stage.generator not in GENERATOR_OPTIONS:
                known = ", ".join(sorted(GENERATOR_OPTIONS))
                fail(f"stages.{index}.generator", f"unknown generator {stage.generator!r}; expected one of: {known}")
            options_model = GENERATOR_OPTIONS[stage.generator]
            try:
                options_model.model_validate(stage.options)
            except ValidationError as exc:
                line = format_validation_error(exc, source)
                fail(f"stages.{index}.options", line.split(": ", 1)[1])
            for key_index, name in enumerate(stage.keys or []):
                try:
                    parse_key(name)
                except UserError as exc:
                    fail(f"stages.{index}.keys.{key_index}", str(exc))
        elif isinstance(stage, MidiDirStage) and not stage.path.is_dir():
            fail(f"stages.{index}.path", f"folder {str(stage.path)!r} does not exist (expected a folder of .mid/.midi files)")

def curriculum_from_midi_dir(folder: str | Path) -> CurriculumConfig:
    """A one-stage curriculum of every MIDI file under ``folder`` (``data prepare ~/maestro``)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    # an ASCII name (the folder's own may be "Études" or ".hidden"): it names the cache folder
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in folder.name)
    stage_name = ascii_name.lstrip(".-")[:100] or "midi"
    if not any(c.isalnum() for c in stage_name):
        stage_name = "midi"
    return validate(
        CurriculumConfig,
        {"name": stage_name, "stages": [{"name": stage_name, "source": "midi_dir", "path": folder}]},
        str(folder),
    )
