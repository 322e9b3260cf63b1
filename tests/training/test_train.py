"""The one training loop: resume equals uninterrupted, multi-process equals one process, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import read_metrics
from curricmusic.config import load_experiment
from curricmusic.model.transformer import load_model
from curricmusic.training.loop import train_run
from curricmusic.training.lr import lr_schedule
from tests.conftest import REPO
from tests.helpers import HANG_S, MINIMAL_EXPERIMENT

DEBUG = REPO / "experiments" / "debug.toml"


def losses(rows):
    """What must be identical between two runs: every logged loss, token count and rate (not timings)."""
    return [
        (r["step"], r["train_loss"], r.get("val_loss"), r["stage_weights"], r["stage_tokens"], r["lr"]) for r in rows
    ]


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
    assert rows[-1]["tokens_seen"] == steps * experiment.config.train.tokens_per_step  # real tokens: packed
    assert rows[-1]["target_tokens_seen"] == rows[-1]["stage_tokens"]["chorales"] > 0
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
    # in training, 4 held-out pieces per stage (eval_pieces); the last evaluation also every token
    assert info["final_val_loss"] == evals[-1]["val_loss_all"] and "val_loss_all" not in evals[-2]
    assert info["best_val_loss"]["chorales"] == min(r["val_loss"]["chorales"] for r in evals)
    assert set(info["test_loss"]) == {"scales", "hanon", "etudes", "chorales"}  # scored once, at the end
    assert info["tokens_seen"] == rows[-1]["tokens_seen"] and info["lr"] == experiment.config.train.lr
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
    with socket.socket() as probe:  # a free port: a fixed one fails when another run holds it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
        "-m", "curricmusic", "train", str(DEBUG), "--arm", "curriculum", "--seed", "0", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_S)
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




@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[arms]]\nname = "a"\npacing = "fixed"\ncolour = "red"\n', "arms.0.colour: unknown key"),
        ('[[arms]]\nname = "a"\npacing = "sideways"\n', "arms.0.pacing: Input should be"),
        ('seeds = ["one"]\n[[arms]]\nname = "a"\npacing = "random"\n', "seeds.0: Input should be a valid integer"),
        ('[[arms]]\nname = "a"\npacing = "random"\ncurriculum = "missing.toml"\n', "arms.0.curriculum: curriculum file"),
        ('[[arms]]\nname = "a"\npacing = "fixed"\nstages = ["scales", "hanon"]\n', "no arm trains on the target stage"),
        ('[[arms]]\nname = "a"\npacing = "fixed"\nstages = ["scales", "nope"]\n', "no stage 'nope'"),
        ('[[arms]]\nname = "a"\npacing = "random-matched"\nmatch = "b"\n', "arms.0.match: no arm named 'b'"),
        (
            '[[arms]]\nname = "b"\npacing = "random-matched"\nmatch = "a"\n[[arms]]\nname = "a"\npacing = "plateau"\n',
            "arms.0.match: arm 'a' (plateau) learns its stage boundaries while it trains, so its run must come first",
        ),
        ('[[arms]]\nname = "a"\npacing = "competence"\nreplay = 0.1\n', "arms.0: replay is not an option of pacing 'competence'"),
    ],
)
def test_bad_experiments_fail_with_one_clear_line(tmp_path, extra, message):
    text = MINIMAL_EXPERIMENT.replace("[train]", extra.split("[[arms]]")[0] + "[train]") if extra.startswith("seeds") else MINIMAL_EXPERIMENT
    arms = "[[arms]]" + extra.split("[[arms]]", 1)[1] if "[[arms]]" in extra else ""
    with pytest.raises(UserError) as caught:
        load_experiment(write(tmp_path, text + arms))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(tmp_path / "exp.toml") in str(caught.value)


def test_budget_too_small_for_one_evaluation(tmp_path):
    text = MINIMAL_EXPERIMENT.replace("eval_every = 4", "eval_every = 100") + '[[arms]]\nname = "a"\npacing = "random"\n'
    with pytest.raises(UserError, match="fewer than eval_every"):
        load_experiment(write(tmp_path, text))


def test_cli_reports_user_errors_in_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, MINIMAL_EXPERIMENT + '[[arms]]\nname = "a"\npacing = "sideways"\n')
    done = subprocess.run(
        [sys.executable, "-m", "curricmusic", "train", str(bad)], capture_output=True, text=True, timeout=HANG_S
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "arms.0.pacing" in done.stderr


def test_learning_rate_schedules():
    cosine = lr_schedule("cosine", 1.0, 100, 0.1, 0.1, 0.2)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0) and cosine(10) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.1 + 0.9 * 0.5)
    assert cosine(100) == pytest.approx(0.1)
    constant = lr_schedule("constant", 1.0, 100, 0.1, 0.1, 0.2)
    assert constant(4) == pytest.approx(0.5) and [constant(t) for t in (10, 50, 99)] == [1.0, 1.0, 1.0]
    wsd = lr_schedule("wsd", 1.0, 100, 0.1, 0.1, 0.2)
    assert wsd(4) == pytest.approx(0.5)
    assert [wsd(t) for t in (10, 50, 79)] == [1.0, 1.0, 1.0]  # stable until the last 20%
    assert wsd(80) == 1.0 and wsd(90) == pytest.approx(1.0 - 0.9 * 0.5) and wsd(100) == pytest.approx(0.1)
    assert all(wsd(t) > wsd(t + 1) for t in range(80, 99))


ARMS = """
[[arms]]
name = "curriculum"
pacing = "fixed"
stage_fractions = [0.2, 0.2, 0.2]
replay = 0.1

[[arms]]
name = "anti"
pacing = "fixed"
order = "reverse"
stage_fractions = [0.4, 0.2, 0.2]
replay = 0.1

[[arms]]
name = "competence"
pacing = "competence"
c0 = 0.05
competence_fraction = 0.5

[[arms]]
name = "random"
pacing = "random"

[[arms]]
name = "random-matched"
pacing = "random-matched"
match = "curriculum"

[[arms]]
name = "target-only"
pacing = "target-only"

[[arms]]
name = "target-matched"
pacing = "target-only"
match = "curriculum"
"""


@pytest.fixture(scope="module")
def every_arm(tmp_path_factory):
    """The debug experiment with every kind of arm, each trained once."""
    folder = tmp_path_factory.mktemp("arms")
    text = DEBUG.read_text().split("[[arms]]")[0]
    text = text.replace('curriculum = "../curricula/debug.toml"', f'curriculum = "{REPO / "curricula" / "debug.toml"}"')
    path = folder / "arms.toml"
    path.write_text(text + ARMS)
    experiment = load_experiment(path)
    runs = {}
    for arm in experiment.config.arms:
        train_run(experiment, arm.name, 0, folder / arm.name, show_progress=False)
        runs[arm.name] = read_metrics(folder / arm.name)
    return experiment, runs


def test_every_arm_trains_on_the_same_number_of_real_tokens(every_arm):
    experiment, runs = every_arm
    budget = experiment.config.train.total_steps * experiment.config.train.tokens_per_step
    for name, rows in runs.items():
        if name != "target-matched":
            assert rows[-1]["tokens_seen"] == budget, name
        assert all(r["tokens_seen"] == r["step"] * experiment.config.train.tokens_per_step for r in rows)


def test_random_matched_has_its_curriculums_tokens_of_every_stage(every_arm):
    experiment, runs = every_arm
    window = experiment.config.train.seq_len
    curriculum, matched = runs["curriculum"][-1]["stage_tokens"], runs["random-matched"][-1]["stage_tokens"]
    assert curriculum.keys() == matched.keys()
    for stage in curriculum:
        assert abs(curriculum[stage] - matched[stage]) <= window, stage
    # ... in random order: the same mix at every step, where the curriculum moves through its stages
    assert len({json.dumps(r["stage_weights"]) for r in runs["random-matched"]}) == 1
    assert runs["curriculum"][0]["current_stage"] == "scales" and runs["curriculum"][-1]["current_stage"] == "chorales"


def test_target_only_at_equal_target_tokens(every_arm):
    experiment, runs = every_arm
    batch = experiment.config.train.tokens_per_step
    target = runs["curriculum"][-1]["target_tokens_seen"]
    short = runs["target-matched"][-1]
    assert short["tokens_seen"] == short["target_tokens_seen"]
    assert target <= short["target_tokens_seen"] < target + batch  # rounded up to whole steps
    assert runs["target-only"][-1]["target_tokens_seen"] == runs["target-only"][-1]["tokens_seen"]


def test_wsd_gives_every_arm_the_same_learning_rate_over_its_last_share(every_arm):
    experiment, runs = every_arm
    train = experiment.config.train
    assert train.lr_schedule == "wsd"
    steps = train.total_steps
    decay_start = steps - round(train.decay_fraction * steps)
    curves = {name: {r["step"]: r["lr"] for r in rows} for name, rows in runs.items() if name != "target-matched"}
    reference = curves["curriculum"]
    for name, lrs in curves.items():
        assert lrs == reference, name  # the same rate at every logged step, whatever the order
    # and over the last share every arm decays from the peak to the floor at the same steps
    last = {s: lr for s, lr in reference.items() if s > decay_start}
    assert last and all(lr < train.lr for lr in last.values())
    assert all(lr == train.lr for s, lr in reference.items() if train.warmup_fraction * steps < s <= decay_start)


def test_the_validation_loss_covers_every_validation_token(tmp_path):
    """evaluate() over strided windows equals a brute-force per-token computation on a tiny model."""
    import numpy as np
    import torch
    from accelerate import Accelerator

    from curricmusic.config import curriculum_from_midi_dir
    from curricmusic.curriculum.heldout import heldout_windows
    from curricmusic.data.prepare import prepare
    from curricmusic.model.transformer import ModelConfig, MusicTransformer
    from curricmusic.training.evaluate import evaluate
    from tests.helpers import melody_midi

    folder = tmp_path / "midi"
    folder.mkdir()
    for i, n in enumerate([6, 9, 14, 25, 40]):
        (folder / f"m{i}.mid").write_bytes(melody_midi(i, n_notes=n))
    data = prepare(curriculum_from_midi_dir(folder), tmp_path / "prep", show_progress=False).data
    stage = data.stage_names[0]
    torch.manual_seed(0)
    seq_len, stride = 24, 7
    model = MusicTransformer(ModelConfig(vocab_size=data.vocab_size, d_model=16, n_layers=1, n_heads=2, max_seq_len=seq_len))
    tokens, offsets = np.asarray(data.tokens(stage, "train")).astype(np.int64), data.offsets(stage, "train")
    assert np.diff(offsets).max() > 2 * seq_len  # some pieces need several windows
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for begin, end in zip(offsets[:-1], offsets[1:], strict=True):
            piece = torch.from_numpy(tokens[begin:end])
            last = piece.shape[0] - 1
            for j in range(1, last + 1):  # every target, with the context the windows promise
                stop = last if last <= seq_len else min(last, seq_len + stride * -(-max(0, j - seq_len) // stride))
                first = max(0, stop - seq_len) if last > seq_len else 0
                logits, _ = model(piece[first:j][None])
                total += float(torch.nn.functional.cross_entropy(logits[0, -1:], piece[j : j + 1]))
                count += 1
    held = heldout_windows(data, stage, "train", seq_len, stride)
    assert held.n_targets == count == int((np.diff(offsets) - 1).sum())
    loss = evaluate(model, Accelerator(cpu=True), {stage: held}, batch_size=3)[stage]
    assert loss == pytest.approx(total / count, rel=1e-5)


def test_an_arm_that_sweeps_learning_rates_needs_one_named(tmp_path):
    text = MINIMAL_EXPERIMENT + 'lr = [1e-3, 3e-3]\n[[arms]]\nname = "a"\npacing = "random"\n'
    experiment = load_experiment(write(tmp_path, text))
    assert experiment.config.learning_rates("a") == [1e-3, 3e-3]
    with pytest.raises(UserError, match="sweeps learning rates 0.001, 0.003; pass --lr"):
        train_run(experiment, "a", 0, tmp_path / "run", show_progress=False)
    with pytest.raises(UserError, match="--lr 0.002"):
        train_run(experiment, "a", 0, tmp_path / "run", lr=2e-3, show_progress=False)
