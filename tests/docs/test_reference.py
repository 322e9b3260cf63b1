"""The reference pages cover the configuration models exactly, and every TOML example uses real keys.

The tables of keys are written at build time from the models (docs/hooks/reference.py); these
tests fail when a section of the models has no table on the pages (or a table names a section
that does not exist), when a key has no description anywhere, when docs/reference/keys.toml
describes a key that does not exist, and when a TOML example in the README or the handbook uses a
key that the models do not have.
"""

from __future__ import annotations

import inspect
import re
import tomllib

import pytest
from pydantic import BaseModel

import curricmusic.config as config_package
from curricmusic.common.frozen import FrozenModel
from curricmusic.config.arms import ARM_OPTIONS
from curricmusic.config.pedagogy import GeneratorOptions
from tests.docs.handbook import DOCS, REPO, load, pages

reference = load("hooks/reference.py")
REFERENCE_PAGES = {"curriculum": DOCS / "reference" / "curriculum.md", "experiment": DOCS / "reference" / "experiment.md"}
TABLE = re.compile(r'<div class="toml-keys" data-section="([^"]*)" markdown>\n\n(.*?)\n\n</div>', re.DOTALL)


def _markers(text: str) -> list[str]:
    return [m.group(0) for m in reference.MARKER.finditer(text) if m.group(1) == "keys"]


def _tables(text: str) -> dict[str, list[str]]:
    """section label -> the keys of its table, from a page with its markers expanded."""
    expanded = reference.expand(text)
    return {label: re.findall(r"^\| `([^`]+)` \|", body, re.MULTILINE) for label, body in TABLE.findall(expanded)}


@pytest.mark.parametrize("root", REFERENCE_PAGES)
def test_every_section_of_the_models_has_one_table_on_its_page(root):
    asked = _markers(REFERENCE_PAGES[root].read_text(encoding="utf-8"))
    expected = [section.marker for section in reference.sections(root)]
    assert sorted(set(expected) - set(asked)) == [], "sections of the models without a table on the page"
    assert sorted(set(asked) - set(expected)) == [], "tables of sections the models do not have"
    assert len(asked) == len(set(asked)), "a section asked for twice"


@pytest.mark.parametrize("root", REFERENCE_PAGES)
def test_each_table_lists_exactly_the_keys_of_its_model(root):
    tables = _tables(REFERENCE_PAGES[root].read_text(encoding="utf-8"))
    for section in reference.sections(root):
        label = f"{section.root} {section.path} {section.choice or ''}".strip()
        fields = [name for name in section.model.model_fields if not (section.path == "arms" and name == "options")]
        assert tables[label] == fields, label


def _config_models() -> set[type[BaseModel]]:
    """Every pydantic model defined in curricmusic.config (whatever the walk of the files finds)."""
    found: set[type[BaseModel]] = set()
    for module in (config_package.arms, config_package.curriculum, config_package.experiment, config_package.generation, config_package.pedagogy):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, FrozenModel | GeneratorOptions) and value.__module__.startswith("curricmusic.config"):
                found.add(value)
    return found


def test_every_key_of_every_config_model_is_in_a_table():
    documented: set[str] = set()
    for page in REFERENCE_PAGES.values():
        for keys in _tables(page.read_text(encoding="utf-8")).values():
            documented.update(keys)
    missing = {
        f"{model.__name__}.{name}"
        for model in _config_models()
        for name in model.model_fields
        if name not in documented and not (model.__name__ == "ArmConfig" and name == "options")
    }
    assert missing == set()


def test_every_key_has_a_description():
    undescribed = [
        f"{section.marker} {key}"
        for section in reference.sections()
        for key in section.documented_keys()
        if not reference.describe(section.model, key)
    ]
    assert undescribed == [], "describe them in the model (Field(description=...)) or in docs/reference/keys.toml"


def test_keys_toml_describes_only_keys_that_exist_and_lack_a_description():
    owners = {}
    for section in reference.sections():
        for key in section.documented_keys():
            owners.setdefault(reference.owner(section.model, key).__name__, {})[key] = section.model
    problems = []
    for class_name, keys in reference.written_descriptions().items():
        if class_name not in owners:
            problems.append(f"[{class_name}]: no model of that name declares keys")
            continue
        for key in keys:
            if key not in owners[class_name]:
                problems.append(f"[{class_name}] {key}: no such key")
            elif reference.model_description(owners[class_name][key], key):
                problems.append(f"[{class_name}] {key}: the model describes it already")
    assert problems == []


# ---- TOML examples -------------------------------------------------------------------------------


def _toml_blocks(text: str) -> list[str]:
    return re.findall(r"^```toml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


#: Keys a model accepts as a shorthand for one of its fields (a ``mode="before"`` validator).
ALIASES = {("adapt", "style"): "styles"}


def _unknown_keys(data: dict, root: str) -> list[str]:
    """Keys of ``data`` that no section of the ``root`` file's models has."""
    by_path: dict[str, set[str]] = {}
    for section in reference.sections(root):
        by_path.setdefault(section.path, set()).update(section.documented_keys())

    def walk(table: dict, path: str) -> list[str]:
        unknown = []
        for key, value in table.items():
            if (path, key) in ALIASES:  # a shorthand the model accepts: `style = {...}` is `styles = [{...}]`
                key, value = ALIASES[(path, key)], [value]
            if key not in by_path.get(path, set()):
                unknown.append(f"{path + '.' if path else ''}{key}")
                continue
            sub = f"{path}.{key}" if path else key
            if sub in ("stages", "arms", "adapt.styles"):
                for item in value:
                    unknown += walk(item, sub)
            elif sub in by_path and isinstance(value, dict):
                unknown += walk(value, sub)
            elif key == "options" and isinstance(value, dict):
                unknown += walk(value, f"{path}.options")
        return unknown

    return walk(data, "")


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in [REPO / "README.md", *pages()]:
        for block in _toml_blocks(page.read_text(encoding="utf-8")):
            found.append((str(page.relative_to(REPO)), block))
    return found


def test_the_handbook_has_toml_examples_to_check():
    assert len(_examples()) >= 8


@pytest.mark.parametrize("where, block", _examples(), ids=lambda value: value if value.endswith(".md") else "")
def test_every_toml_example_uses_real_keys(where, block, monkeypatch):
    if where.endswith("add-a-pacing.md"):  # the worked example's arm: its pacing registered as the page says
        monkeypatch.setitem(ARM_OPTIONS, "blend", load("examples/add_a_pacing.py").BlendOptions)
    data = tomllib.loads(block)
    root = "curriculum" if {"stages", "tokenizer", "split", "filters", "keys"} & set(data) else "experiment"
    assert _unknown_keys(data, root) == []


def test_the_check_of_toml_examples_can_fail():
    assert _unknown_keys({"train": {"tokens": 1, "lr_shedule": "wsd"}}, "experiment") == ["train.lr_shedule"]
    assert _unknown_keys({"arms": [{"name": "a", "pacing": "fixed", "replay": 0.1, "patiense": 3}]}, "experiment") == ["arms.patiense"]
    assert _unknown_keys({"stages": [{"name": "s", "options": {"octave": [1]}}]}, "curriculum") == ["stages.options.octave"]


# ---- the commands ----------------------------------------------------------------------------------


def test_the_command_reference_lists_every_command():
    import typer

    from curricmusic.cli import app

    group = typer.main.get_command(app)
    expected = set()
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        expected |= {f"{name} {sub}" for sub in command.commands} if hasattr(command, "commands") else {name}
    assert set(reference.command_names()) == expected
    page = reference.expand((DOCS / "reference" / "commands.md").read_text(encoding="utf-8"))
    for name in expected:
        assert f"## `curricmusic {name}`" in page
    assert "`--no-copy-blocking`" in page and "`--against`" in page


# ---- the API reference -------------------------------------------------------------------------------


def test_every_public_module_has_a_place_in_the_api_reference():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: (curricmusic[\w.]*)$", page.read_text(encoding="utf-8"), re.MULTILINE))
    package = REPO / "src" / "curricmusic"
    expected = set()
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1 and parts[1] not in ("cli", "__main__") and not any(p.startswith("_") for p in parts):
            expected.add(".".join(parts))
    assert sorted(expected - documented) == [], "add the module to its layer's page in docs/api/"
    assert sorted(documented - expected) == [], "the API reference names modules that do not exist"


def _complete_examples() -> list[tuple[str, str]]:
    """TOML examples that are whole files: a name and stages (a curriculum) or arms (an experiment)."""
    return [(where, block) for where, block in _examples() if {"name"} <= set(tomllib.loads(block)) and {"stages", "arms"} & set(tomllib.loads(block))]


def test_there_are_complete_examples():
    assert len(_complete_examples()) >= 3


@pytest.mark.parametrize("where, block", _complete_examples(), ids=lambda value: value if value.endswith(".md") else "")
def test_every_complete_toml_example_validates(where, block):
    import json

    from curricmusic.config import CurriculumConfig, ExperimentConfig
    from curricmusic.config.pedagogy import GENERATOR_OPTIONS

    data = tomllib.loads(block)
    model = CurriculumConfig if "stages" in data else ExperimentConfig
    config = model.model_validate_json(json.dumps(data))  # JSON mode: paths from strings, as the loaders give them
    for stage in getattr(config, "stages", []):
        if getattr(stage, "generator", None):
            GENERATOR_OPTIONS[stage.generator].model_validate(stage.options)
