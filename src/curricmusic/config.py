"""Configuration files: TOML loaded into frozen pydantic models, validated once, never mutated.

Every user mistake becomes one :class:`~curricmusic.errors.UserError` line that names the file,
the key (as a dotted path) and what was expected, e.g.::

    curricula/bad.toml: stages.1.generator: unknown generator 'hannon'; expected one of: etudes, hanon, scales

Relative paths inside a file are resolved against the file's own directory, so a curriculum can
be run from anywhere.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curricmusic.errors import UserError

__all__ = [
    "FrozenModel",
    "TokenizerSettings",
    "SplitSettings",
    "PieceFilters",
    "GeneratedStage",
    "Music21Stage",
    "MidiDirStage",
    "StageConfig",
    "CurriculumConfig",
    "MUSIC21_COLLECTIONS",
    "load_toml",
    "validate",
    "load_curriculum",
    "curriculum_from_midi_dir",
    "config_hash",
    "format_validation_error",
]

ModelT = TypeVar("ModelT", bound=BaseModel)


class FrozenModel(BaseModel):
    """Base for every config section: unknown keys rejected, strict types, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TokenizerSettings(FrozenModel):
    """The MidiTok tokenizer shared by every stage of a curriculum.

    ``beat_res`` maps beat ranges ``"start-end"`` to positions per beat, as MidiTok's ``beat_res``.
    Only single-stream tokenizations are offered: curricmusic models one merged piano stream.
    """

    kind: Literal["REMI", "TSD", "MIDILike", "Structured"] = "REMI"
    pitch_range: list[int] = Field(default_factory=lambda: [21, 109], min_length=2, max_length=2)
    num_velocities: int = Field(8, ge=1, le=127)
    beat_res: dict[str, int] = Field(default_factory=lambda: {"0-4": 24, "4-12": 4})
    use_tempos: bool = False
    use_time_signatures: bool = False
    use_rests: bool = False

    @field_validator("pitch_range")
    @classmethod
    def _check_pitch_range(cls, value: list[int]) -> list[int]:
        low, high = value
        if not 0 <= low < high <= 128:
            raise ValueError(f"expected [low, high] with 0 <= low < high <= 128, got {value}")
        return value

    @field_validator("beat_res")
    @classmethod
    def _check_beat_res(cls, value: dict[str, int]) -> dict[str, int]:
        for span, resolution in value.items():
            parts = span.split("-")
            if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[0]) >= int(parts[1]):
                raise ValueError(f"beat range {span!r} should look like '0-4' (start < end, in beats)")
            if resolution < 1:
                raise ValueError(f"positions per beat for {span!r} must be >= 1")
        return value


class SplitSettings(FrozenModel):
    """Fractions of each stage's pieces held out, assigned from the content hash (stable)."""

    val: float = Field(0.1, ge=0.0, lt=0.5)
    test: float = Field(0.1, ge=0.0, lt=0.5)


class PieceFilters(FrozenModel):
    """Pieces outside these bounds are skipped with a reason (never a crash)."""

    min_notes: int = Field(8, ge=1)
    max_notes: int = Field(100_000, ge=1)
    max_minutes: float = Field(60.0, gt=0)
    min_seconds: float = Field(1.0, ge=0)


class _StageBase(FrozenModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    limit: int | None = Field(None, ge=1, description="keep at most this many pieces")


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


class Music21Stage(_StageBase):
    """Pieces from the corpus bundled inside the music21 package (works offline)."""

    source: Literal["music21"]
    collection: str

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

    name: str
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
# Loading and error formatting


def _dotted(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator value ("generated") in the location of tagged unions
    parts = [str(p) for p in loc if p not in ("generated", "music21", "midi_dir")]
    return ".".join(parts) or "(top level)"


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line: ``source: key.path: what was expected (got value)``, plus a count of the rest."""
    errors = error.errors()
    first = errors[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against the documented keys)"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] not in ("value_error", "assertion_error") and "input" in first:
        shown = repr(first["input"])
        message = f"{message} (got {shown[:60]})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{source}: {_dotted(first['loc'])}: {message}{more}"


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning I/O and syntax errors into one-line UserErrors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected a TOML file)")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text TOML file") from None


def validate(model: type[ModelT], data: Mapping[str, Any], source: str) -> ModelT:
    """Validate ``data`` as ``model``; errors become one UserError line naming ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, source)) from None


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
    from curricmusic.data.keys import parse_key
    from curricmusic.data.pedagogy import GENERATORS

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
            if stage.generator not in GENERATORS:
                known = ", ".join(sorted(GENERATORS))
                fail(f"stages.{index}.generator", f"unknown generator {stage.generator!r}; expected one of: {known}")
            options_model = GENERATORS[stage.generator][0]
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
    name = folder.name or "midi"
    stage_name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name) or "pieces"
    return CurriculumConfig.model_validate(
        {"name": stage_name, "stages": [{"name": stage_name, "source": "midi_dir", "path": folder}]}
    )


def config_hash(model: BaseModel, length: int = 16) -> str:
    """A stable hex digest of a config's JSON form (paths as strings, keys sorted)."""
    payload = json.dumps(model.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]
