"""Every shipped config loads and validates; every kind of mistake is one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from curricmusic.common.errors import UserError
from curricmusic.config import load_curriculum, load_experiment
from tests.conftest import REPO


@pytest.mark.parametrize("path", sorted((REPO / "curricula").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_curricula_validate(path):
    config = load_curriculum(path)
    assert config.stages and config.target in config.stage_names
    header = path.read_text().splitlines()[0:4]
    assert any("curricmusic" in line for line in header), "the header should say the command that runs it"


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_experiments_validate(path):
    experiment = load_experiment(path)
    assert experiment.config.arms
    header = path.read_text().splitlines()[0:6]
    assert any("curricmusic" in line for line in header), "the header should say the command that runs it"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "curriculum.toml"
    path.write_text(text)
    return path


STAGE = '[[stages]]\nname = "s"\nsource = "generated"\ngenerator = "scales"\n'


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name = "x"\ncolour = 1\n' + STAGE, "colour: unknown key"),
        ('name = "x"\nseed = "1"\n' + STAGE, "seed: Input should be a valid integer"),
        ('name = "x"\n', "stages: required key is missing"),
        ('name = "x"\n[[stages]]\nname = "s"\nsource = "generated"\ngenerator = "hannon"\n', "stages.0.generator: unknown generator 'hannon'"),
        ('name = "x"\n' + STAGE + 'options = { octaves = [9] }\n', "stages.0.options: octaves.0"),
        ('name = "x"\nkeys = ["H"]\n' + STAGE, "keys.0: unknown key 'H'"),
        ('name = "x"\n[[stages]]\nname = "m"\nsource = "midi_dir"\npath = "nowhere"\n', "stages.0.path: folder"),
        ('name = "x"\n[[stages]]\nname = "m"\nsource = "music21"\ncollection = "beatles"\n', "unknown music21 collection 'beatles'"),
        ('name = "x"\ntarget_stage = "t"\n' + STAGE, "target_stage 't' is not a stage"),
        ('name = "x"\n' + STAGE + STAGE, "stage names must be unique"),
        ('name = "x"\n[tokenizer]\nkind = "CPWord"\n' + STAGE, "tokenizer.kind"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_curriculum_mistakes_are_one_line_naming_file_and_key(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_curriculum(path)
    message = str(caught.value)
    assert fragment in message, message
    assert message.startswith(str(path)) and "\n" not in message


def test_cli_data_prepare_bad_curriculum_is_one_line(tmp_path):
    path = write(tmp_path, 'name = "x"\ncolour = 1\n' + STAGE)
    done = subprocess.run([sys.executable, "-m", "curricmusic", "data", "prepare", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "colour: unknown key" in done.stderr and "Traceback" not in done.stderr


def test_cli_help_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "curricmusic", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for command in ("data", "train", "generate"):
        assert command in done.stdout


def test_an_impossible_generate_setting_is_refused_at_load_before_anything_trains(tmp_path):
    text = (REPO / "experiments" / "debug.toml").read_text()
    text = text.replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
    path = tmp_path / "experiment.toml"
    path.write_text(text.replace("[generate]\n", "[generate]\nmax_copy_notes = 2\n"))
    with pytest.raises(UserError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert message == f"{path}: generate.max_copy_notes: Input should be greater than or equal to 3 (got 2)"
    path.write_text(text.replace("[generate]\nn = 2\n", "[generate]\nn = 0\n"))
    assert load_experiment(path).config.generate.n == 0  # an experiment may draw no samples
    path.write_text(text.replace("[generate]\n", '[generate]\nprompt = "waltz.mid"\n'))
    with pytest.raises(UserError, match=r"generate.prompt: MIDI file '.*waltz.mid' does not exist$"):
        load_experiment(path)
    (tmp_path / "waltz.mid").write_bytes(b"MThd")
    assert load_experiment(path).config.generate.prompt == tmp_path / "waltz.mid"  # relative to the file


def test_the_experiments_generate_section_is_the_generation_settings():
    from curricmusic.config.generation import GenerateSection, GenerationSettings

    assert issubclass(GenerateSection, GenerationSettings)
    shared = set(GenerationSettings.model_fields) - {"n"}
    for name in shared:
        assert repr(GenerateSection.model_fields[name]) == repr(GenerationSettings.model_fields[name]), name


def test_run_settings_come_from_flags_then_the_experiment_then_defaults():
    from curricmusic.config.run_settings import settings_for_run

    info = {"seed": 7, "config": {"generate": {"n": 0, "max_bars": 4, "top_p": 0.95, "prompt": None, "extra": 1}}}
    settings, sources = settings_for_run(info, {"top_k": 5, "n": None})
    assert (settings.n, settings.seed, settings.max_bars, settings.top_k, settings.top_p) == (4, 7, 4, 5, 0.95)
    assert (sources["n"], sources["seed"], sources["max_bars"], sources["top_k"], sources["top_p"]) == (
        "default", "default", "experiment", "flag", "default",
    )
    with pytest.raises(UserError, match="^--top-p: Input should be less than or equal to 1"):
        settings_for_run(info, {"top_p": 2.0})
    bad = {"seed": 0, "config": {"generate": {"max_copy_notes": 2}}}
    with pytest.raises(UserError, match=r"^run.json: generate.max_copy_notes: Input should be greater"):
        settings_for_run(bad, {})


def test_config_does_not_import_torch():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, curricmusic.config, curricmusic.config.generation; print('torch' in sys.modules)"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr
