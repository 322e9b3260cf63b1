"""MkDocs hook: the reference pages' tables, generated from the code at build time.

A page asks for a table with an HTML comment on a line of its own:

- ``<!-- keys ROOT [PATH] [NAME=VALUE] -->``: every key of one section of a curriculum or
  experiment file, read from its pydantic model (type, default, bounds, description). ROOT is
  ``curriculum`` or ``experiment``; PATH is the dotted section (``train``, ``adapt.style``,
  ``stages.options``; none: the file's top level); NAME=VALUE picks one member of a section whose
  keys depend on another key (``source=generated`` for a stage, ``pacing=fixed`` for an arm,
  ``generator=scales`` for a stage's options).
- ``<!-- commands -->``: every command of the command line with its arguments and options, read
  from the typer app.

So the tables cannot drift from the code. :func:`sections` lists every section the models have;
``tests/docs/test_reference.py`` checks that the pages ask for each of them exactly once and that
every TOML example in the handbook uses keys that exist.
"""

from __future__ import annotations

import ast
import functools
import inspect
import io
import re
import textwrap
import tokenize
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

MARKER = re.compile(r"^<!-- (keys|commands)((?: [^ >]+)*) -->$", re.MULTILINE)


# ---- where each section's keys come from ---------------------------------------------------------


def _roots() -> dict[str, type[BaseModel]]:
    from curricmusic.config.curriculum import CurriculumConfig
    from curricmusic.config.experiment import ExperimentConfig

    return {"curriculum": CurriculumConfig, "experiment": ExperimentConfig}


def _keyed_tables() -> dict[tuple[str, str], tuple[str, dict[str, type[BaseModel]]]]:
    """Fields whose keys are another model's, chosen by a sibling key: (owner class, field) ->
    (the choosing key, name -> model). An arm's pacing options sit flat beside its common keys."""
    from curricmusic.config.arms import ARM_OPTIONS
    from curricmusic.config.pedagogy import GENERATOR_OPTIONS

    return {
        ("ArmConfig", "options"): ("pacing", dict(ARM_OPTIONS)),
        ("GeneratedStage", "options"): ("generator", dict(GENERATOR_OPTIONS)),
    }


def _flat(owner: type[BaseModel], name: str) -> bool:
    """An arm's options are written flat beside the arm's own keys, not as a table."""
    return owner.__name__ == "ArmConfig" and name == "options"


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, without None, Annotated and list wrappers."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [alt for arg in get_args(annotation) if arg is not type(None) for alt in _unwrap(arg)]
    if origin is list:
        return _unwrap(get_args(annotation)[0])
    return [annotation]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    return [alt for alt in _unwrap(annotation) if isinstance(alt, type) and issubclass(alt, BaseModel)]


class Section(NamedTuple):
    """One table of keys: ``root``, dotted ``path`` and the ``choice`` (``name=value``) if any."""

    root: str
    path: str
    choice: str | None
    model: type[BaseModel]

    @property
    def marker(self) -> str:
        parts = ["keys", self.root] + ([self.path] if self.path else []) + ([self.choice] if self.choice else [])
        return "<!-- " + " ".join(parts) + " -->"

    @property
    def title(self) -> str:
        """How the section is written in a TOML file: ``[train]``, ``[[arms]]`` ..."""
        return _toml_title(self.root, self.path)

    def documented_keys(self) -> list[str]:
        """The keys this section's table documents (an arm's ``options`` are written flat)."""
        return [name for name in self.model.model_fields if not _flat(self.model, name)]


def _toml_title(root: str, path: str) -> str:
    if not path:
        return f"top level of a {root} file"
    lists = {"stages", "arms"}
    head, *rest = path.split(".")
    title = f"[[{head}]]" if head in lists else f"[{head}]"
    return title + "".join(f" {part}" for part in rest) if rest else title


def sections(root: str | None = None) -> list[Section]:
    """Every section of the curriculum and experiment files (or of one ``root``), in file order."""
    found: list[Section] = []
    for name, model in _roots().items():
        if root in (None, name):
            found += _walk(name, "", None, model)
    return found


def _walk(root: str, path: str, choice: str | None, model: type[BaseModel]) -> list[Section]:
    found = [Section(root, path, choice, model)]
    keyed = _keyed_tables()
    for name, field in model.model_fields.items():
        sub = f"{path}.{name}" if path else name
        if (model.__name__, name) in keyed:
            key, options = keyed[(model.__name__, name)]
            where = path if _flat(model, name) else sub
            for value, option_model in options.items():
                found += _walk(root, where, f"{key}={value}", option_model)
            continue
        alternatives = _models_in(field.annotation)
        if len(alternatives) == 1:
            found += _walk(root, sub, None, alternatives[0])
        else:
            for alt in alternatives:
                tag = _discriminator_value(alt)
                found += _walk(root, sub, f"source={tag}", alt)
    return found


def _discriminator_value(model: type[BaseModel]) -> str:
    annotation = model.model_fields["source"].annotation
    (value,) = get_args(annotation)
    return str(value)


def section_for(words: list[str]) -> Section:
    """The section a marker's words name (``["experiment", "train"]``); ValueError if none."""
    root, rest = words[0], words[1:]
    choice = rest.pop() if rest and "=" in rest[-1] else None
    path = rest[0] if rest else ""
    for section in sections(root):
        if section.path == path and section.choice == choice:
            return section
    known = ", ".join(s.marker for s in sections(root)) if root in _roots() else ", ".join(_roots())
    raise ValueError(f"no section {' '.join(words)!r}; the models have: {known}")


# ---- one table ------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        names = [_type_name(arg) for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is Literal:
        return " \\| ".join(f'`{_toml_value(value)}`' for value in get_args(annotation))
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"table of {_type_name(key)} to {_type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return {"Path": "path", "str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return repr(value)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "its table's defaults"
    return "not set" if value is None else f"`{_toml_value(value)}`"


_BOUNDS = (
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.Lt, "lt", "<"),
)


def _bounds(field: FieldInfo) -> str:
    words, lengths = [], {}
    for item in field.metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                words.append(f"{sign} {getattr(item, attribute)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            lengths["min"] = item.min_length
        if isinstance(item, annotated_types.MaxLen):
            lengths["max"] = item.max_length
        if getattr(item, "pattern", None):
            words.append("a name: letters, digits, `_ . -`")
    unit = "characters" if field.annotation is str else "items"
    if lengths.get("min") is not None and lengths.get("min") == lengths.get("max"):
        words.insert(0, f"exactly {lengths['min']} {unit}")
    else:
        if "min" in lengths:
            words.insert(0, f"at least {lengths['min']} {unit if lengths['min'] > 1 else unit[:-1]}")
        if "max" in lengths:
            words.insert(0, f"at most {lengths['max']} {unit}")
    return ", ".join(words)


@functools.cache
def _comments(model: type[BaseModel]) -> dict[str, str]:
    """Per field of ``model`` (its own class body, not inherited): the comment on its line, else
    the comment lines right above it."""
    try:
        source = textwrap.dedent(inspect.getsource(model))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comment_at: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comment_at[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[str, str] = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        end = node.end_lineno or node.lineno
        trailing = [comment_at[n] for n in range(node.lineno, end + 1) if n in comment_at and not lines[n - 1].lstrip().startswith("#")]
        above: list[str] = []
        line = node.lineno - 1
        while line in comment_at and lines[line - 1].lstrip().startswith("#"):
            above.insert(0, comment_at[line])
            line -= 1
        text = " ".join(trailing) or " ".join(above)
        text = re.sub(r"\btype: ignore\[[^\]]*\].*$", "", text).strip()
        if text:
            found[node.target.id] = text
    return found


KEYS_FILE = Path(__file__).resolve().parents[1] / "reference" / "keys.toml"


@functools.cache
def written_descriptions() -> dict[str, dict[str, str]]:
    """``docs/reference/keys.toml``: class name -> key -> description, for keys whose model
    describes them neither in ``Field(description=...)`` nor in a comment."""
    import tomllib

    with KEYS_FILE.open("rb") as handle:
        return tomllib.load(handle)


def owner(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The class whose body declares the field ``name`` of ``model``."""
    for cls in model.__mro__:
        if isinstance(cls, type) and issubclass(cls, BaseModel) and name in cls.__dict__.get("__annotations__", {}):
            return cls
    return model


def model_description(model: type[BaseModel], name: str) -> str:
    """What the model itself says of a field: ``Field(description=...)``, else its source comment."""
    field = model.model_fields[name]
    return field.description or _comments(owner(model, name)).get(name, "")


def describe(model: type[BaseModel], name: str) -> str:
    """A field's description: the model's own, else ``docs/reference/keys.toml``'s."""
    written = written_descriptions().get(owner(model, name).__name__, {})
    return model_description(model, name) or written.get(name, "")


def _cell(text: str) -> str:
    """Text for one table cell: no line breaks, pipes escaped, no raw HTML."""
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def render_section(section: Section) -> str:
    """The Markdown table of one section, inside a ``div`` that names it (for the tests)."""
    rows = ["| key | type | default | allowed | what it does |", "|---|---|---|---|---|"]
    model = section.model
    for name in section.documented_keys():
        field = model.model_fields[name]
        rows.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {_bounds(field)} | {_cell(describe(model, name))} |"
        )
    label = f"{section.root} {section.path} {section.choice or ''}".strip()
    return f'<div class="toml-keys" data-section="{label}" markdown>\n\n' + "\n".join(rows) + "\n\n</div>"


# ---- the commands -----------------------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, Any]]:
    """(name, function) for every command: the groups' (``data prepare``) first, then the rest
    in the order they were registered. Read from typer's public registry of the app."""
    from curricmusic.cli import app

    for group in app.registered_groups:
        for command in group.typer_instance.registered_commands:
            yield f"{group.name} {command.name or command.callback.__name__}", command
    for command in app.registered_commands:
        yield command.name or command.callback.__name__, command


def command_names() -> list[str]:
    """Every command of the command line (``data prepare``, ``train`` ...)."""
    return [name for name, _ in _commands()]


_MACHINE_DEFAULTS = {"workers": "the number of cores"}  # defaults that depend on the machine


def _parameters(callback: Any) -> list[tuple[str, Any, Any]]:
    """(name, typer ArgumentInfo/OptionInfo, annotation) of each parameter of a command."""
    import typing

    hints = typing.get_type_hints(callback)
    return [(name, p.default, hints.get(name)) for name, p in inspect.signature(callback).parameters.items()]


def _param_kind(annotation: Any) -> str:
    alternatives = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    base = alternatives[0]
    if get_origin(base) is list:
        return _type_name(get_args(base)[0]) + ", repeatable"
    return "flag" if base is bool else _type_name(base)


def _flags(info: Any, name: str) -> list[str]:
    declared = [d for decl in info.param_decls for d in decl.split("/")] if info.param_decls else []
    return declared or [f"--{name.replace('_', '-')}"]


def _param_row(name: str, info: Any, annotation: Any) -> str:
    import typer.models

    argument = isinstance(info, typer.models.ArgumentInfo)
    flag = f"`{name.upper()}`" if argument else " / ".join(f"`{d}`" for d in _flags(info, name))
    value = info.default
    if value is ...:
        default = "**required**"
    elif name in _MACHINE_DEFAULTS:
        default = _MACHINE_DEFAULTS[name]
    elif value is None or value is False and not argument and "/" not in "".join(info.param_decls or ()):
        default = ""
    else:
        default = f"`{_toml_value(str(value) if isinstance(value, Path) else value).strip(chr(34))}`"
    bounds = ", ".join(
        f"{sign} {limit}" for sign, limit in (("≥", getattr(info, "min", None)), ("≤", getattr(info, "max", None))) if limit is not None
    )
    help_text = _cell(info.help or "") + (f" ({bounds})" if bounds else "")
    return f"| {flag} | {_param_kind(annotation)} | {default} | {help_text} |"


def _usage(name: str, parameters: list[tuple[str, Any, Any]]) -> str:
    import typer.models

    words = [f"curricmusic {name}"]
    for param, info, annotation in parameters:
        if isinstance(info, typer.models.ArgumentInfo):
            many = get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation))
            words.append(param.upper() + (" ..." if many else ""))
        elif info.default is ...:
            words.append(f"{_flags(info, param)[0]} {param.upper()}")
    return " ".join(words + ["[OPTIONS]"])


def render_commands() -> str:
    """One section per command: what it does, its usage line, a table of its parameters."""
    blocks = []
    for name, command in _commands():
        parameters = _parameters(command.callback)
        help_text = inspect.cleandoc(command.help or inspect.getdoc(command.callback) or "")
        rows = ["| argument or option | type | default | what it does |", "|---|---|---|---|"]
        rows += [_param_row(*parameter) for parameter in parameters]
        blocks.append(
            f"## `curricmusic {name}`\n\n{help_text}\n\n```\n{_usage(name, parameters)}\n```\n\n"
            f'<div class="cli-options" data-command="{name}" markdown>\n\n' + "\n".join(rows) + "\n\n</div>"
        )
    return "\n\n".join(blocks)


# ---- the hook -------------------------------------------------------------------------------------


def expand(markdown: str) -> str:
    """``markdown`` with every marker replaced by its table (ValueError for an unknown one)."""

    def replace(match: re.Match[str]) -> str:
        words = match.group(2).split()
        if match.group(1) == "commands":
            return render_commands()
        return render_section(section_for(words))

    return MARKER.sub(replace, markdown)


def on_pre_build(config: Any) -> None:
    written_descriptions.cache_clear()  # `mkdocs serve` rebuilds after keys.toml changes


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return expand(markdown)
