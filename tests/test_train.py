"""The one training loop: resume equals uninterrupted, multi-process equals one process, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curricmusic.common.errors import UserError
from curricmusic.config import load_experiment
from curricmusic.model.transformer import load_model
from curricmusic.training.loop import lr_at, train_run
from curricmusic.training.run_files import read_metrics
from tests.conftest import REPO

DEBUG = REPO / "experiments" / "debug.toml"


def losses(rows):
    """What must be identical between two runs: every logged loss (not timings)."""
    return [(r["step"], r["train_loss"], r.get("val_loss"), r["stage_weights"]) for r in rows]


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(DEBUG)


@pytest.fixture(scope="module")
def uninterrupted(experiment, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full")
    train_run(experiment, "curriculum", 0, run_dir, show_progress=False)
    return run_dir


def test_run_folder_holds_metrics_checkpoint_and_loadable_model(uninterrupted, experiment):
    rows = read_metrics(uninterrupted)
    steps = experiment.config.train.total_steps
    assert rows[-1]["step"] == steps
    assert rows[-1]["tokens_seen"] == steps * experiment.config.train.tokens_per_step
    evals = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in evals] == [0, *range(12, steps + 1, 12)]  # the untrained model first
    assert set(evals[-1]["val_loss"]) == {"scales", "hanon", "etudes", "chorales"}
    # the fixed schedule: scales first, chorales (with 10% replay) at the end
    assert rows[0]["stage_weights"]["scales"] == 1.0
    assert rows[-1]["stage_weights"]["chorales"] == pytest.approx(0.9)
    assert rows[1]["train_loss"] > rows[-1]["train_loss"]  # it learns something
    assert evals[0]["val_loss"]["chorales"] > evals[-1]["val_loss"]["chorales"]
    info = json.loads((uninterrupted / "run.json").read_text())
    assert info["status"] == "finished" and info["seed"] == 0 and info["arm"]["name"] == "curriculum"
    model = load_model(uninterrupted / "model")
    assert model.config.vocab_size > 0 and model.config.max_seq_len == 64


def test_resume_after_a_kill_equals_the_uninterrupted_run(uninterrupted, experiment, tmp_path):
    # killed after step 20: the last checkpoint is at step 12, rows 16 and 20 are logged already
    train_run(experiment, "curriculum", 0, tmp_path, show_progress=False, stop_after=20)
    assert read_metrics(tmp_path)[-1]["step"] == 20
    result = train_run(experiment, "curriculum", 0, tmp_path, resume=True, show_progress=False)
    assert result.resumed_from == 12
    assert losses(read_metrics(tmp_path)) == losses(read_metrics(uninterrupted))


def test_two_processes_compute_the_same_losses_as_one(uninterrupted, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29611",
        "-m", "curricmusic", "train", str(DEBUG), "--arm", "curriculum", "--seed", "0", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = read_metrics(uninterrupted), read_metrics(tmp_path)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two, strict=True):
        if a["train_loss"] is not None:
            assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        for stage, loss in a.get("val_loss", {}).items():
            assert b["val_loss"][stage] == pytest.approx(loss, abs=1e-5)


def test_existing_run_needs_resume_and_resume_checks_the_run(uninterrupted, experiment):
    with pytest.raises(UserError, match="pass --resume"):
        train_run(experiment, "curriculum", 0, uninterrupted, show_progress=False)
    with pytest.raises(UserError, match="another seed"):
        train_run(experiment, "curriculum", 1, uninterrupted, resume=True, show_progress=False)


def test_resume_rejects_a_cache_built_with_another_tokenizer(uninterrupted, experiment, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    curriculum = experiment.curriculum
    other = curriculum.model_copy(update={"tokenizer": curriculum.tokenizer.model_copy(update={"num_velocities": 4})})
    changed = dataclasses.replace(experiment, curriculum=other, arm_curricula={"curriculum": other, "random": other})
    with pytest.raises(UserError, match="trained with tokenizer"):
        train_run(changed, "curriculum", 0, run_dir, resume=True, show_progress=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


BASE = f"""
name = "x"
curriculum = "{REPO / "curricula" / "debug.toml"}"
[train]
tokens = 4096
seq_len = 64
batch_size = 8
eval_every = 4
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[arms]]\nname = "a"\npacing = "fixed"\ncolour = "red"\n', "arms.0.colour: unknown key"),
        ('[[arms]]\nname = "a"\npacing = "sideways"\n', "arms.0.pacing: Input should be"),
        ('seeds = ["one"]\n[[arms]]\nname = "a"\npacing = "random"\n', "seeds.0: Input should be a valid integer"),
        ('[[arms]]\nname = "a"\npacing = "random"\ncurriculum = "missing.toml"\n', "arms.0.curriculum: curriculum file"),
        ('[[arms]]\nname = "a"\npacing = "fixed"\nstages = ["scales", "hanon"]\n', "no arm trains on the target stage"),
        ('[[arms]]\nname = "a"\npacing = "fixed"\nstages = ["scales", "nope"]\n', "no stage 'nope'"),
    ],
)
def test_bad_experiments_fail_with_one_clear_line(tmp_path, extra, message):
    text = BASE.replace("[train]", extra.split("[[arms]]")[0] + "[train]") if extra.startswith("seeds") else BASE
    arms = "[[arms]]" + extra.split("[[arms]]", 1)[1] if "[[arms]]" in extra else ""
    with pytest.raises(UserError) as caught:
        load_experiment(write(tmp_path, text + arms))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(tmp_path / "exp.toml") in str(caught.value)


def test_budget_too_small_for_one_evaluation(tmp_path):
    text = BASE.replace("eval_every = 4", "eval_every = 100") + '[[arms]]\nname = "a"\npacing = "random"\n'
    with pytest.raises(UserError, match="fewer than eval_every"):
        load_experiment(write(tmp_path, text))


def test_cli_reports_user_errors_in_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, BASE + '[[arms]]\nname = "a"\npacing = "sideways"\n')
    done = subprocess.run(
        [sys.executable, "-m", "curricmusic", "train", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "arms.0.pacing" in done.stderr


def test_learning_rate_warms_up_then_decays_to_the_floor():
    assert lr_at(0, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, 10, 0.1) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(100, 100, 1.0, 10, 0.1) == pytest.approx(0.1)
