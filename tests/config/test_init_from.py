"""``init_from`` in ``[train]`` and ``[adapt]``: resolved against the experiment file, checked at
load, and the ``shared`` model's name kept free."""

from __future__ import annotations

import pytest

from curricmusic.common.errors import UserError
from curricmusic.config import SHARED, load_experiment
from tests.helpers import MINIMAL_EXPERIMENT

ARMS = '\n[[arms]]\nname = "random"\npacing = "random"\n'


def _model_folder(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "gpt_neox"}')
    return path


def test_init_from_is_resolved_against_the_experiment_file(tmp_path):
    folder = _model_folder(tmp_path / "models" / "shared-model")
    path = tmp_path / "exp.toml"
    path.write_text(MINIMAL_EXPERIMENT.replace("eval_every = 4\n", 'eval_every = 4\ninit_from = "models/shared-model"\n') + ARMS)
    assert load_experiment(path).config.train.init_from == folder.resolve()


def test_a_missing_model_folder_is_one_line_at_load(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(MINIMAL_EXPERIMENT.replace("eval_every = 4\n", 'eval_every = 4\ninit_from = "gone"\n') + ARMS)
    with pytest.raises(UserError) as caught:
        load_experiment(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: train.init_from: '{tmp_path / 'gone'}' is not a model folder (no config.json)")
    assert "\n" not in line


def test_an_arm_may_not_be_called_shared_when_adapt_names_a_model(tmp_path):
    _model_folder(tmp_path / "m")
    style = tmp_path / "style"
    style.mkdir()
    adapt = f'\n[adapt]\nshots = [2]\ntokens = 4096\neval_every = 2\ninit_from = "m"\nstyle = {{ source = "midi_dir", path = "{style}" }}\n'
    path = tmp_path / "exp.toml"
    path.write_text(MINIMAL_EXPERIMENT + ARMS.replace('"random"\npacing', f'"{SHARED}"\npacing') + adapt)
    with pytest.raises(UserError, match=f"arms: '{SHARED}' names the adapt.init_from model of \\[adapt\\]; rename the arm"):
        load_experiment(path)
    path.write_text(MINIMAL_EXPERIMENT + ARMS + adapt)
    assert load_experiment(path).config.adapt.init_from == (tmp_path / "m").resolve()
