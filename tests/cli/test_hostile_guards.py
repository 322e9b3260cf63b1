"""The second sweep of hostile cases (issue 23), continuing ``test_hostile.py``'s numbering:

11. one writer per folder: a second writer is refused at once, a killed one never blocks;
12. memory: shapes and lengths beyond this machine are refused before anything is allocated
    (checked under an ``RLIMIT_AS`` address-space limit, in a subprocess); out of memory is one line;
13. finite numbers: ``inf`` and ``nan`` settings and integers beyond 64 bits are refused; a run
    whose loss becomes NaN stops with one line naming the step and keeps its last checkpoint;
14. every file read back is validated: a damaged one is one line naming it, and ``run --resume``
    redoes what it belongs to;
15. resume verifies what "finished" means: weights that fail their hash are rebuilt from the
    checkpoint, or the cell is retrained when the checkpoint is damaged too;
16. wording: skipped samples, whole messages, signals, and output that survives a pipe.

Processes that must run at the same time are held at a gate (a file they wait for) instead of
being timed, so that no test depends on the speed or load of the machine.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from curricmusic.common.lock import HOLDERS_ENV, LOCK_FILE
from curricmusic.config import load_experiment
from tests.helpers import (
    DEBUG_ENV,
    HANG_S,
    TINY,
    TOOL_CACHES,
    melody_midi,
    one_line_error,
    run_cli,
    tiny_experiment,
)

# TINY without samples or probes: for the tests that only need training to run
TRAIN_ONLY = TINY.replace("[generate]\nn = 1", "[generate]\nn = 0") + "[probe]\nenabled = false\n"
# TINY without probes: the finished experiment folder of section 14 (run again with --resume over it)
FINISHED = TINY + "[probe]\nenabled = false\n"


# Runs the console script with train_step held at a gate: it touches READY on the first step
# (when the command holds its folder's lock) and waits until GO exists.
GATED = """
import pathlib, sys, time
import curricmusic.training.loop as loop
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
real = loop.train_step
def gated(*args, **kwargs):
    ready.touch()
    while not go.exists():
        time.sleep(0.05)
    return real(*args, **kwargs)
loop.train_step = gated
from curricmusic.cli import main
sys.argv = ["curricmusic", *sys.argv[3:]]
main()
"""


def command(*args, **kwargs) -> subprocess.CompletedProcess:
    """``curricmusic ARGS`` in a new process, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "curricmusic", *map(str, args)], capture_output=True, text=True, timeout=HANG_S, **kwargs
    )


class Gated:
    """A command held at its first training step until :meth:`release`."""

    def __init__(self, folder: Path, *args) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.ready, self.go = folder / "ready", folder / "go"
        self.process = subprocess.Popen(
            [sys.executable, "-c", GATED, str(self.ready), str(self.go), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + HANG_S
        while not self.ready.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"the gated command ended first: {self.process.stderr.read()[-3000:]}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the gated command never reached its first step"
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def release(self) -> tuple[int, str, str]:
        self.go.touch()
        out, err = self.process.communicate(timeout=HANG_S)
        return self.process.returncode, out, err

    def signal(self, number: int) -> tuple[int, str]:
        self.process.send_signal(number)
        _, err = self.process.communicate(timeout=HANG_S)
        return self.process.returncode, err


def steps_of(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---- 11. one writer per folder -----------------------------------------------------------


def test_11_a_second_train_into_a_run_folder_is_refused_at_once(tmp_path):
    experiment = tiny_experiment(tmp_path / "exp", TRAIN_ONLY)
    run = tmp_path / "run"
    first = Gated(tmp_path / "gate", "train", experiment, "--out", run)
    try:
        for extra in (["--seed", "1"], []):  # another seed; the very same run again
            second = command("train", experiment, "--out", run, *extra)
            one_line_error(second.returncode, second.stderr, 2, f"{run}: in use by process {first.pid} (started at ")
            assert "wait for it or choose another --out" in second.stderr
    finally:
        status, _, err = first.release()
    assert status == 0, err
    info = json.loads((run / "run.json").read_text())
    assert (info["seed"], info["status"]) == (0, "finished")
    assert steps_of(run) == sorted(set(steps_of(run))) and steps_of(run)[-1] == info["total_steps"]  # no row twice
    assert not (run / LOCK_FILE).exists()


def test_11_run_and_run_resume_at_once_and_a_train_into_a_running_cell_are_refused(tmp_path):
    experiment = tiny_experiment(tmp_path / "exp", TRAIN_ONLY)
    out = tmp_path / "out"
    first = Gated(tmp_path / "gate", "run", experiment, "--out", out)
    try:
        second = command("run", experiment, "--out", out, "--resume")
        one_line_error(second.returncode, second.stderr, 2, f"{out}: in use by process {first.pid}")
        cell = out / "runs" / "random-seed0"
        third = command("train", experiment, "--out", cell, "--resume")
        one_line_error(third.returncode, third.stderr, 2, f"{cell}: in use by process {first.pid}")
    finally:
        status, _, err = first.release()
    assert status == 0, err
    results = json.loads((out / "results.json").read_text())
    steps = results["runs"][0]["curves"]["eval_steps"]
    assert steps == sorted(set(steps)) == [0, 4, 8]  # not [0, 4, 8, 8, ...]: one writer trained


def test_11_the_lock_of_a_killed_writer_never_blocks(tmp_path):
    experiment = tiny_experiment(tmp_path / "exp", TRAIN_ONLY)
    run = tmp_path / "run"
    first = Gated(tmp_path / "gate", "train", experiment, "--out", run)
    status, _ = first.signal(signal.SIGKILL)
    assert status == -signal.SIGKILL and (run / LOCK_FILE).is_file()  # left behind, held by nobody
    done = command("train", experiment, "--out", run)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


LOCKER = """
import os, subprocess, sys, time
from curricmusic.common.lock import folder_lock, FolderInUse
folder = sys.argv[1]
with folder_lock(folder):
    with folder_lock(folder):  # the same process again: re-entrant
        pass
    child = "from curricmusic.common.lock import folder_lock\\nwith folder_lock(%r): print('child wrote')" % folder
    print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True).stdout.strip())
    stranger = dict(os.environ)
    stranger.pop("CURRICMUSIC_LOCK_HOLDERS")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=stranger)
    print("stranger refused" if "in use by process %d" % os.getpid() in done.stderr else done.stderr)
"""


def test_11_a_process_the_holder_launched_inherits_the_lock_and_no_one_else_does(tmp_path):
    assert HOLDERS_ENV == "CURRICMUSIC_LOCK_HOLDERS"
    done = subprocess.run([sys.executable, "-c", LOCKER, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.stdout.split("\n")[:2] == ["child wrote", "stranger refused"], done.stdout + done.stderr
    assert not (tmp_path / LOCK_FILE).exists()


# ---- 12. memory ----------------------------------------------------------------------------

ADDRESS_SPACE = 4 << 30  # the commands below run under this RLIMIT_AS: they cannot take the machine down


def limited(*args, script: str | None = None) -> subprocess.CompletedProcess:
    """``curricmusic ARGS`` (or ``python -c SCRIPT ARGS``) under the address-space limit."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    head = [sys.executable, "-c", script] if script else [sys.executable, "-m", "curricmusic"]
    return subprocess.run([*head, *map(str, args)], capture_output=True, text=True, timeout=HANG_S, preexec_fn=limit)


@pytest.mark.parametrize(
    "shape", ["d_model = 32\nn_layers = 100000\nn_heads = 2", "d_model = 1000000\nn_layers = 1\nn_heads = 2"]
)
def test_12_a_model_beyond_this_machine_is_refused_with_its_estimate(tmp_path, shape):
    text = TRAIN_ONLY.replace("d_model = 32\nn_layers = 1\nn_heads = 2", shape)
    done = limited("train", tiny_experiment(tmp_path / "exp", text), "--out", tmp_path / "run")
    one_line_error(done.returncode, done.stderr, 2, "tiny.toml: model: training this model", "needs about", "this machine has available")
    assert "parameters" in done.stderr and "choose a smaller model" in done.stderr


def rewrite_model_config(run_dir: Path, **changes) -> None:
    path = run_dir / "model" / "config.json"
    meta = json.loads(path.read_text())
    meta["config"].update(changes)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"n_layers": 100000}, ("config.json: this model", "needs about", "available")),
        ({"d_model": 10**6, "n_heads": 2}, ("config.json: this model", "needs about", "available")),
        ({"vocab_size": 10**12}, ("config.json: ModelConfig.vocab_size: expected at most",)),
    ],
)
def test_12_a_run_whose_config_json_describes_a_huge_model_is_refused_before_loading(trained, tmp_path, changes, fragments):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    rewrite_model_config(run_dir, **changes)
    done = limited("generate", run_dir, "--n", "1", "--out", tmp_path / "samples")
    one_line_error(done.returncode, done.stderr, 2, *fragments)
    assert not (tmp_path / "samples" / "manifest.json").exists()


def test_12_max_tokens_is_bounded_and_checked_against_memory(trained, tmp_path):
    done = limited("generate", trained, "--max-tokens", 10**12, "--out", tmp_path / "a")
    one_line_error(done.returncode, done.stderr, 2, "--max-tokens: Input should be less than or equal to 1000000")
    done = limited("generate", trained, "--n", 4096, "--batch-size", 4096, "--max-tokens", 10**6, "--out", tmp_path / "b")
    one_line_error(done.returncode, done.stderr, 2, "generate: sampling 4096 rows of up to 1,000,000 tokens needs about")
    assert "lower --max-tokens or --batch-size" in done.stderr


HOG = """
import sys
import numpy as np, torch
import curricmusic.generation.generate as generate
kind = sys.argv[1]
def hog(*args, **kwargs):
    return np.ones(10**11) if kind == "numpy" else torch.ones(10**11)
generate.load_run = hog
from curricmusic.cli import main
sys.argv = ["curricmusic", "generate", sys.argv[2], "--n", "1", "--out", sys.argv[3]]
main()
"""


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_12_running_out_of_memory_anywhere_is_one_line(trained, tmp_path, kind):
    done = limited(kind, trained, tmp_path / "samples", script=HOG)
    one_line_error(done.returncode, done.stderr, 1, "out of memory; try a smaller")


def test_12_the_error_line_is_printed_even_when_rich_cannot_print(tmp_path, monkeypatch, capfd):
    from curricmusic.cli import main
    from curricmusic.common.progress import err_console

    def broken(*args, **kwargs):
        raise MemoryError

    for variable in (*TOOL_CACHES, DEBUG_ENV):  # main() sets them: restored after the test
        monkeypatch.setenv(variable, os.environ.get(variable, ""))
    monkeypatch.setattr(err_console, "print", broken)
    monkeypatch.setattr(sys, "argv", ["curricmusic", "train", str(tmp_path / "missing.toml")])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capfd.readouterr().err
    assert exited.value.code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "missing.toml: no such file" in err


# ---- 13. finite numbers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("batch_size = 8\n", "batch_size = 8\nlr = inf\n", "train.lr: Input should be a finite number (got inf)"),
        ("batch_size = 8\n", "batch_size = 8\nlr = nan\n", "train.lr: Input should be a finite number (got nan)"),
        ("batch_size = 8\n", "batch_size = 8\nlr = [3e-4, nan]\n", "train.lr.1: Input should be a finite number"),
        ("tokens = 2048", "tokens = 99999999999999999999999", "train.tokens: 99999999999999999999999 does not fit in 64 bits"),
        ("seeds = [0]", "seeds = [18446744073709551616]", "seeds: 18446744073709551616 does not fit in 64 bits"),
        ("max_tokens = 64", "max_tokens = 64\ntemperature = inf", "generate.temperature: Input should be a finite number"),
        ('embedder = "symbolic"', 'embedder = "symbolic"\nmax_seconds = inf', "novelty.max_seconds: Input should be a finite number"),
        ('pacing = "random"', 'pacing = "random"\nlr = -inf', "arms.0.lr: Input should be a finite number"),
    ],
)
def test_13_inf_nan_and_integers_beyond_64_bits_are_one_line(cli, tmp_path, old, new, fragment):
    assert old in TINY
    status, err = cli("train", tiny_experiment(tmp_path, TINY.replace(old, new, 1)), "--out", tmp_path / "run")
    one_line_error(status, err, 2, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [("--temperature", "inf", "--temperature: Input should be a finite number"), ("--top-p", "nan", "--top-p: Input should be a finite number")],
)
def test_13_non_finite_generation_flags_are_one_line(cli, trained, tmp_path, flag, value, fragment):
    status, err = cli("generate", trained, flag, value, "--out", tmp_path / "samples")
    one_line_error(status, err, 2, fragment)


def test_13_sampling_at_any_finite_temperature_keeps_the_mask_and_never_indexes_out():
    from curricmusic.generation.filters import filter_logits, sample_rows

    logits = torch.tensor([[2.0, float("-inf"), 0.5, float("-inf")]])
    hot = filter_logits(logits, temperature=1e308)
    assert torch.isneginf(hot[0, [1, 3]]).all() and torch.isfinite(hot[0, [0, 2]]).all()
    assert set(sample_rows(hot.repeat(64, 1), np.linspace(0, 0.999, 64)).tolist()) == {0, 2}
    cold = filter_logits(logits, temperature=1e-300)  # greedy, not NaN
    assert set(sample_rows(cold.repeat(64, 1), np.linspace(0, 0.999, 64)).tolist()) == {0}
    with pytest.raises(ValueError, match="finite number > 0"):
        filter_logits(logits, temperature=float("inf"))
    nan_rows = torch.full((3, 4), float("nan"))
    assert (sample_rows(nan_rows, np.array([0.0, 0.5, 0.99])) < 4).all()  # once an IndexError


def test_13_a_loss_that_becomes_nan_stops_the_run_naming_the_step_and_keeps_the_last_checkpoint(cli, tmp_path):
    from curricmusic.training.checkpoint import load_checkpoint

    text = TRAIN_ONLY.replace("batch_size = 8\n", "batch_size = 8\nlr = 1e30\nwarmup_fraction = 0.0\n").replace(
        "checkpoint_every = 4", "checkpoint_every = 1"
    )
    run = tmp_path / "run"
    status, err = cli("train", tiny_experiment(tmp_path, text), "--out", run)
    one_line_error(status, err, 1, f"{run}: step ", "the run stopped and checkpoint.pt keeps step", "lower the learning rate")
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and f"step {info['failed_at_step']}:" in err
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    assert checkpoint["step"] == info["failed_at_step"] - 1
    assert all(bool(torch.isfinite(t).all()) for t in checkpoint["model"].values())
    assert all(finite_or_none(row.get("train_loss")) for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()))


def finite_or_none(value) -> bool:
    return value is None or bool(np.isfinite(value))


def test_13_run_reports_a_cell_whose_loss_became_nan_as_failed(cli, tmp_path):
    text = TRAIN_ONLY.replace("batch_size = 8\n", "batch_size = 8\nlr = 1e30\nwarmup_fraction = 0.0\n")
    out = tmp_path / "out"
    status, err = cli("run", tiny_experiment(tmp_path, text), "--out", out)
    assert status == 1 and "Traceback" not in err
    assert "random seed 0: RunFailed: " in err and "the training loss became nan" in err and "1 of 1 runs failed" in err
    assert json.loads((out / "runs" / "random-seed0" / "cell.json").read_text())["status"] == "failed"


# ---- 14. every file read back is validated -------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """``curricmusic run`` of the tiny experiment: one cell, one sample, symbolic novelty."""
    from curricmusic.experiment.runner import run_experiment

    root = tmp_path_factory.mktemp("finished")
    run_experiment(load_experiment(tiny_experiment(root, FINISHED)), root / "out", show_progress=False)
    return root / "out"


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "bad UTF-8": (lambda p: p.write_bytes(b'{"seed": "\xff\xfe"}'), "not UTF-8 text at byte"),
    "not JSON": (lambda p: p.write_text("{nope"), "not JSON: "),
    "truncated": (truncate, "not JSON: "),
    "not an object": (lambda p: p.write_text("[1, 2]"), "not a JSON object but a list"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_14_a_damaged_run_json_read_by_generate_and_report_is_one_line(cli, finished_run, tmp_path, damage):
    out = copy_of(finished_run, tmp_path)
    run = out / "runs" / "random-seed0"
    harm, what = DAMAGE[damage]
    harm(run / "run.json")
    status, err = cli("generate", run, "--n", "1", "--out", tmp_path / "samples")
    one_line_error(status, err, 2, f"{run / 'run.json'}: damaged (", what, "--resume")
    status, err = cli("report", out)
    one_line_error(status, err, 2, f"{run / 'run.json'}: damaged (", what)


@pytest.mark.parametrize(
    ("file", "command", "what"),
    [
        ("runs/random-seed0/novelty/novelty.json", "report", "not JSON"),
        ("runs/random-seed0/metrics.jsonl", "report", "line 2 is not JSON"),
        ("experiment.json", "report", "not JSON"),
        ("experiment.json", "run", "not JSON"),
    ],
)
def test_14_damaged_files_of_an_experiment_folder_are_one_line_naming_them(cli, finished_run, tmp_path, file, command, what):
    out = copy_of(finished_run, tmp_path)
    path = out / file
    if file.endswith(".jsonl"):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text(lines[0] + lines[1][: len(lines[1]) // 2] + "\n" + "".join(lines[2:]))
    else:
        truncate(path)
    args = ("run", tiny_experiment(tmp_path / "exp", FINISHED), "--out", out, "--resume") if command == "run" else ("report", out)
    status, err = cli(*args)
    one_line_error(status, err, 2, f"{path}: damaged (", what)


def test_14_run_resume_redoes_what_a_damaged_file_belongs_to(cli, finished_run, tmp_path):
    out = copy_of(finished_run, tmp_path)
    run = out / "runs" / "random-seed0"
    truncate(run / "novelty" / "novelty.json")
    DAMAGE["bad UTF-8"][0](run / "run.json")
    status, err = cli("run", tiny_experiment(tmp_path / "exp", FINISHED), "--out", out, "--resume")
    assert status == 0, err
    assert "random-seed0: finished, but" in err and "it is redone" in err
    before = json.loads((finished_run / "results.json").read_text())
    after = json.loads((out / "results.json").read_text())
    assert after["runs"][0]["summary"] == before["runs"][0]["summary"]
    assert after["runs"][0]["novelty"]["summary"] == before["runs"][0]["novelty"]["summary"]


def test_14_a_damaged_prepared_manifest_is_one_line(cli, finished_run, tmp_path):
    info = json.loads((finished_run / "runs" / "random-seed0" / "run.json").read_text())
    prepared = tmp_path / "prepared"
    shutil.copytree(info["prepared"], prepared)
    truncate(prepared / "manifest.json")
    status, err = cli("data", "show", prepared)
    one_line_error(status, err, 2, f"{prepared / 'manifest.json'}: damaged (not JSON", "data prepare --force")


# ---- 15. resume verifies what "finished" means ---------------------------------------------


def test_15_train_resume_rebuilds_weights_that_fail_their_hash_from_the_checkpoint(cli, trained, tmp_path):
    from curricmusic.model.transformer import load_model, weights_digest
    from curricmusic.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    truncate(run / "model" / "model.safetensors")
    status, err = cli("train", tiny_experiment(tmp_path / "exp"), "--out", run, "--resume")
    assert status == 0, err
    assert f"{run / 'model'}: rebuilt from checkpoint.pt" in err
    expected = load_checkpoint(run / "checkpoint.pt")["model"]
    model = load_model(run / "model")
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in expected.items())
    assert weights_digest(model) == weights_digest(load_model(trained / "model"))


def test_15_train_resume_refuses_when_weights_and_checkpoint_are_both_damaged(cli, trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    truncate(run / "model" / "model.safetensors")
    truncate(run / "checkpoint.pt")
    status, err = cli("train", tiny_experiment(tmp_path / "exp"), "--out", run, "--resume")
    one_line_error(status, err, 2, f"{run / 'checkpoint.pt'}: damaged (truncated, or not a torch checkpoint file);")
    assert err.rstrip().endswith("start the run again in a new --out")  # the whole sentence, not cut


@pytest.mark.parametrize("checkpoint_too", [False, True])
def test_15_run_resume_over_cut_weights_rebuilds_or_retrains_the_cell(cli, finished_run, tmp_path, checkpoint_too):
    out = copy_of(finished_run, tmp_path)
    run = out / "runs" / "random-seed0"
    truncate(run / "model" / "model.safetensors")
    if checkpoint_too:
        truncate(run / "checkpoint.pt")
    status, err = cli("run", tiny_experiment(tmp_path / "exp", FINISHED), "--out", out, "--resume")
    assert status == 0, err
    assert "already finished" not in err and "model.safetensors: damaged" in err and "it is redone" in err
    assert (run / "checkpoint.pt.damaged").is_file() == checkpoint_too
    before = json.loads((finished_run / "results.json").read_text())["runs"][0]
    after = json.loads((out / "results.json").read_text())["runs"][0]
    assert after["status"] == "done" and after["summary"]["final_val_target"] == pytest.approx(before["summary"]["final_val_target"])


# ---- 16. wording, signals and pipes --------------------------------------------------------


def test_16_the_novelty_summary_says_how_many_samples_were_skipped(trained, tmp_path, monkeypatch, capsys):
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "good.mid").write_bytes(melody_midi(2))
    (samples / "broken.mid").write_bytes(b"MThd\x00\x00")
    status, out, err = run_cli(monkeypatch, capsys, "novelty", samples, "--against", trained, "--out", tmp_path / "novelty")
    assert status == 0, err
    assert "1 samples scored, 1 skipped (unreadable; reasons in novelty.json)" in out


def test_16_a_read_only_file_system_is_said_once():
    from curricmusic.common.errors import error_line

    status, line = error_line(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/run"))
    assert status == 1 and line.lower().count("read-only") == 1
    assert line.startswith("/mnt/ro/run: Read-only file system; choose a folder on a writable file system")


@pytest.mark.parametrize(("number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_16_an_interrupted_train_says_so_in_one_line_and_resume_continues(tmp_path, number, status):
    experiment = tiny_experiment(tmp_path / "exp", TRAIN_ONLY)
    run = tmp_path / "run"
    gated = Gated(tmp_path / "gate", "train", experiment, "--out", run)
    code, err = gated.signal(number)
    assert code == status, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["interrupted; `--resume` continues"], err
    assert not (run / LOCK_FILE).exists()  # released on the way out
    done = command("train", experiment, "--out", run, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]


def test_16_output_to_a_pipe_is_never_broken_inside_a_line(finished_run, tmp_path):
    deep = tmp_path.joinpath(*(["a-rather-long-folder-name-to-pass-eighty-columns"] * 4))
    out = deep / "experiment"
    shutil.copytree(finished_run, out)
    done = command("report", out)  # stdout is a pipe here
    assert done.returncode == 0, done.stderr[-3000:]
    expected = f"{out / 'report.html'} (also results.json, report.md): 1 of 1 runs finished"
    assert len(expected) > 250 and expected in done.stdout.splitlines()
    paragraph = [line for line in done.stdout.splitlines() if line.startswith("In short:")]
    assert paragraph and all(len(line) > 0 for line in paragraph)
