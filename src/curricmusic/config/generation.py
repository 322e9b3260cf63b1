"""Generation settings: the one model behind ``curricmusic generate``, an experiment's ``[generate]``
section and the runner, validated once (an impossible setting is one clear line).

A run remembers how it was meant to be sampled: ``run.json`` records the experiment, and
:func:`settings_for_run` starts from its ``[generate]`` section, lays the command-line flags over
it, and says where each value came from (``flag``, ``experiment`` or ``default``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import FrozenModel, format_validation_error
from curricmusic.music.keys import parse_key

__all__ = ["GenerationSettings", "GenerateSection", "settings_from", "settings_for_run", "layered", "SOURCES"]

SOURCES = ("flag", "experiment", "default")


class GenerationSettings(FrozenModel):
    """Everything that decides a set of samples; recorded in the output manifest."""

    n: int = Field(4, ge=1)
    seed: int | None = Field(None, description="None: the seed of the run being sampled")
    batch_size: int = Field(8, ge=1)
    max_bars: int = Field(16, ge=1)
    max_tokens: int = Field(2048, ge=8)
    min_tokens: int = Field(0, ge=0, description="no EOS before this many tokens")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    min_p: float = Field(0.0, ge=0, lt=1)
    grammar: bool = True
    key: str | None = None
    chromatic_allowance: float = Field(0.05, ge=0, le=1, description="probability factor of out-of-key pitches")
    pitch_range: list[int] = Field(default_factory=lambda: [21, 108], min_length=2, max_length=2)
    copy_blocking: bool = True
    max_copy_notes: int = Field(16, ge=3, description="longest span copied from training data")
    copy_penalty: float | None = Field(None, gt=0, description="subtract from logits instead of blocking")
    prompt: Path | None = None
    prompt_bars: int = Field(4, ge=1)
    rerank: int = Field(1, ge=1)
    novelty_weight: float = Field(1.0, ge=0)
    wav: bool = False
    # how the samples are drawn, not what they are meant to be: left out of the recorded settings
    # and the experiment's hash (the manifest's notes say when the step was compiled)
    compile: Literal["auto"] | bool = Field("auto", exclude=True, description="compile the decoding step: true, false or auto")

    @field_validator("key")
    @classmethod
    def _known_key(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_key(value)
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_range(self) -> GenerationSettings:
        low, high = self.pitch_range
        if not 0 <= low <= high <= 127:
            raise ValueError(f"pitch_range must be [low, high] with 0 <= low <= high <= 127, got {self.pitch_range}")
        return self


class GenerateSection(GenerationSettings):
    """An experiment's ``[generate]`` section: the samples the runner draws from each trained run.

    It is a :class:`GenerationSettings` (the same keys and bounds) except that ``n`` may be 0: an
    experiment that only trains. ``seed`` defaults to each run's own seed.
    """

    n: int = Field(4, ge=0, description="samples per run (0: none)")


_FLAGS = {
    "n": "--n", "seed": "--seed", "max_bars": "--max-bars", "max_tokens": "--max-tokens",
    "temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
    "key": "--key", "rerank": "--rerank", "novelty_weight": "--novelty-weight",
    "max_copy_notes": "--max-copy-notes", "prompt_bars": "--prompt-bars", "batch_size": "--batch-size",
    "grammar": "--grammar/--no-grammar", "copy_blocking": "--copy-blocking/--no-copy-blocking",
    "wav": "--wav/--no-wav", "prompt": "--prompt", "compile": "--compile/--no-compile",
}  # fmt: skip


def settings_from(values: dict[str, Any]) -> GenerationSettings:
    """Validate CLI values; an error names the flag (``--top-p: ...``) rather than the field."""
    try:
        return GenerationSettings.model_validate(values)
    except ValidationError as exc:
        raise UserError(_flag_error(exc, "generate", _FLAGS)) from None


def _flag_error(exc: ValidationError, source: str, flags: dict[str, str]) -> str:
    line = format_validation_error(exc, source)
    location = exc.errors()[0]["loc"]
    field = str(location[0]) if location else ""
    flag = flags.get(field)
    if flag:
        line = line.replace(f"{source}: {field}:", f"{flag}:", 1)
    return line


ModelT = TypeVar("ModelT", bound=BaseModel)


def layered(
    model: type[ModelT],
    recorded: dict[str, Any] | None,
    flags: dict[str, Any],
    *,
    source: str,
    section: str,
    flag_names: dict[str, str],
) -> tuple[ModelT, dict[str, str]]:
    """``model`` from a recorded experiment section with ``flags`` laid over it.

    ``recorded`` is the section as ``run.json`` holds it (JSON values); ``flags`` are the values
    given on the command line (None: not given). Returns the settings and, per field, where its
    value came from: ``flag``; ``experiment`` when the recorded section holds a value other than
    the default; ``default`` otherwise. A bad flag is one line naming the flag; a bad recorded
    value is one line naming ``source`` (the run's ``run.json``) and ``section.key``.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        model.model_validate(given)
    except ValidationError as exc:
        raise UserError(_flag_error(exc, "flags", flag_names)) from None
    kept = {k: v for k, v in (recorded or {}).items() if k in model.model_fields}
    try:
        base = model.model_validate_json(json.dumps(kept))  # JSON mode: paths from strings
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, f"{source}: {section}").replace(f"{section}: ", f"{section}.", 1)) from None
    settings = model.model_validate({**base.model_dump(), **given})
    defaults = model().model_dump(mode="json")
    recorded_json = base.model_dump(mode="json")
    sources = {
        name: "flag" if name in given else "experiment" if name in kept and recorded_json[name] != defaults[name] else "default"
        for name in model.model_fields
    }
    return settings, sources


def settings_for_run(run_info: dict[str, Any], flags: dict[str, Any], *, source: str = "run.json") -> tuple[GenerationSettings, dict[str, str]]:
    """How to sample a run: its experiment's ``[generate]`` section, then ``flags`` over it.

    The seed defaults to the run's own seed (as the runner samples), so ``curricmusic generate
    RUN_DIR`` reproduces the runner's samples. A recorded ``n = 0`` (an experiment that drew no
    samples) falls back to the default count.
    """
    recorded = dict((run_info.get("config") or {}).get("generate") or {})
    if recorded.get("n") == 0:
        recorded.pop("n")
    settings, sources = layered(GenerationSettings, recorded, flags, source=source, section="generate", flag_names=_FLAGS)
    if settings.seed is None:
        settings = settings.model_copy(update={"seed": int(run_info.get("seed") or 0)})
    return settings, sources
