"""Shared config machinery: frozen strict models, TOML loading, one-line validation errors.

Every user mistake becomes one :class:`~curricmusic.common.errors.UserError` line that names the file,
the key (as a dotted path) and what was expected, e.g.::

    curricula/bad.toml: stages.1.generator: unknown generator 'hannon'; expected one of: etudes, hanon, scales
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from curricmusic.common.errors import UserError

__all__ = ["FrozenModel", "INT64_MAX", "load_toml", "validate", "format_validation_error", "config_hash"]

ModelT = TypeVar("ModelT", bound=BaseModel)

INT64_MAX = 2**63 - 1  # TOML integers are 64-bit; Python's are not, and NumPy's and torch's overflow


def _int64_problem(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
        return f"{value} does not fit in 64 bits (at most {INT64_MAX})"
    if isinstance(value, list | tuple):
        return next((p for p in map(_int64_problem, value) if p), None)
    if isinstance(value, dict):
        return next((p for p in map(_int64_problem, value.values()) if p), None)
    return None


class FrozenModel(BaseModel):
    """Base for every config section: unknown keys rejected, strict types, immutable, every
    float finite (no ``inf`` or ``nan``, which TOML allows) and every integer within 64 bits."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _fits_int64(cls, value: Any) -> Any:
        problem = _int64_problem(value)
        if problem:
            raise ValueError(problem)
        return value


_UNION_TAG = re.compile(r"^(int|float|str|bool|none|list\[.*\]|dict\[.*\]|function-\w+\[.*\])$")


def _dotted(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator value ("generated") and the member type ("float",
    # "list[float]") in the location of unions
    parts = [str(p) for p in loc if p not in ("generated", "music21", "midi_dir") and not _UNION_TAG.match(str(p))]
    return ".".join(parts) or "(top level)"


def _most_telling(errors: list[Any]) -> tuple[Any, int]:
    """The error to show and how many other fields have problems. When every member of a union
    failed, the member error that says more than "wrong type" (``lr = [3e-4, nan]``: not "a valid
    number" but "a finite number")."""
    first = errors[0]
    field = _dotted(first["loc"])
    same_field = [e for e in errors if _dotted(e["loc"]) == field or _dotted(e["loc"]).startswith(field + ".")]
    telling = [e for e in same_field if not str(e["type"]).endswith("_type")]
    shown = telling[0] if len(same_field) > 1 and telling else first
    others = len(errors) - len(same_field) if len(same_field) > 1 else len(errors) - 1
    return shown, others

def format_validation_error(error: ValidationError, source: str) -> str:
    """One line: ``source: key.path: what was expected (got value)``, plus a count of the rest."""
    errors = error.errors()
    first, others = _most_telling(errors)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against the documented keys)"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] not in ("value_error", "assertion_error") and "input" in first:
        shown = repr(first["input"])
        message = f"{message} (got {shown[:60]})"
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
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
