"""A run's settings for sampling and scoring: the one place its ``[generate]`` and ``[novelty]``
sections are resolved.

A run folder's ``run.json`` records the experiment it ran. ``curricmusic generate RUN_DIR``,
``curricmusic novelty ... --against RUN_DIR`` and the runner all start from the recorded section,
lay the command-line flags over it, and say where each value came from (``flag``,
``experiment`` or ``default``), so the command line reproduces what the runner drew and scored:

- :func:`settings_for_run`: ``[generate]`` (:class:`GenerationSettings`);
- :func:`novelty_settings_for_run`: ``[novelty]`` (:class:`NoveltySection`).

Both go through :func:`layered`; a bad flag is one line naming the flag, a bad recorded value
one line naming ``run.json`` and ``section.key``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import format_validation_error
from curricmusic.common.run_folder import RUN_FILE
from curricmusic.config.experiment import NoveltySection
from curricmusic.config.generation import GenerationSettings

__all__ = [
    "SOURCES",
    "GENERATE_FLAGS",
    "NOVELTY_FLAGS",
    "settings_from",
    "layered",
    "settings_for_run",
    "novelty_settings_for_run",
]

SOURCES = ("flag", "experiment", "default")

# field -> the command-line flag that sets it (errors name the flag, not the field)
GENERATE_FLAGS = {
    "n": "--n", "seed": "--seed", "max_bars": "--max-bars", "max_tokens": "--max-tokens",
    "temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p", "min_p": "--min-p",
    "key": "--key", "rerank": "--rerank", "novelty_weight": "--novelty-weight",
    "max_copy_notes": "--max-copy-notes", "prompt_bars": "--prompt-bars", "batch_size": "--batch-size",
    "min_notes": "--min-notes",
    "grammar": "--grammar/--no-grammar", "copy_blocking": "--copy-blocking/--no-copy-blocking",
    "wav": "--wav/--no-wav", "prompt": "--prompt", "compile": "--compile/--no-compile",
}  # fmt: skip
NOVELTY_FLAGS = {"embedder": "--embedder", "bank_stages": "--bank-stage", "max_seconds": "--max-seconds"}


def settings_from(values: dict[str, Any]) -> GenerationSettings:
    """Validate CLI values; an error names the flag (``--top-p: ...``) rather than the field."""
    try:
        return GenerationSettings.model_validate(values)
    except ValidationError as exc:
        raise UserError(_flag_error(exc, "generate", GENERATE_FLAGS)) from None


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


def _recorded(run_info: dict[str, Any] | None, section: str) -> dict[str, Any]:
    """The experiment section ``section`` as ``run.json`` recorded it (empty when none)."""
    return dict(((run_info or {}).get("config") or {}).get(section) or {})


def settings_for_run(
    run_info: dict[str, Any], flags: dict[str, Any], *, source: str = RUN_FILE
) -> tuple[GenerationSettings, dict[str, str]]:
    """How to sample a run: its experiment's ``[generate]`` section, then ``flags`` over it.

    The seed defaults to the run's own seed (as the runner samples), so ``curricmusic generate
    RUN_DIR`` reproduces the runner's samples. A recorded ``n = 0`` (an experiment that drew no
    samples) falls back to the default count.
    """
    recorded = _recorded(run_info, "generate")
    if recorded.get("n") == 0:
        recorded.pop("n")
    settings, sources = layered(
        GenerationSettings, recorded, flags, source=source, section="generate", flag_names=GENERATE_FLAGS
    )
    if settings.seed is None:
        settings = settings.model_copy(update={"seed": int(run_info.get("seed") or 0)})
    return settings, sources


def novelty_settings_for_run(
    run_info: dict[str, Any] | None, flags: dict[str, Any], *, source: str = RUN_FILE
) -> tuple[NoveltySection, dict[str, str]]:
    """How to score against a run: its experiment's ``[novelty]`` section, then ``flags`` over it
    (``run_info`` None: against a prepared folder, which records none: the defaults).
    ``max_seconds = 0`` means the whole piece.
    """
    whole = flags.get("max_seconds") == 0
    given = {**flags, "max_seconds": None} if whole else flags
    settings, sources = layered(
        NoveltySection, _recorded(run_info, "novelty"), given, source=source, section="novelty",
        flag_names=NOVELTY_FLAGS,
    )  # fmt: skip
    if whole:
        settings = settings.model_copy(update={"max_seconds": None})
        sources["max_seconds"] = "flag"
    return settings, sources
