"""Shared config machinery: frozen strict models, TOML loading, one-line validation errors.

Every user mistake becomes one :class:`~curricmusic.common.errors.UserError` line that names the file,
the key (as a dotted path) and what was expected, e.g.::

    curricula/bad.toml: stages.1.generator: unknown generator 'hannon'; expected one of: etudes, hanon, scales
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from curricmusic.common.errors import UserError

__all__ = ["FrozenModel", "load_toml", "validate", "format_validation_error", "config_hash"]

ModelT = TypeVar("ModelT", bound=BaseModel)


class FrozenModel(BaseModel):
    """Base for every config section: unknown keys rejected, strict types, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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

def config_hash(model: BaseModel, length: int = 16) -> str:
    """A stable hex digest of a config's JSON form (paths as strings, keys sorted)."""
    payload = json.dumps(model.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]
