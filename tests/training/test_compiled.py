"""The compiled training step: it agrees with eager, resumes exactly, and falls back cleanly.

Compiling costs tens of seconds on 2 cores with an empty cache, so every compiled run here has
the same shape and the inductor cache lives in pytest's own cache folder (``compile_cache`` in
tests/conftest.py): the first session compiles, later sessions load the kernels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curricmusic.common.run_folder import read_metrics
from curricmusic.config import load_experiment
from curricmusic.training import compiled
from curricmusic.training.compiled import AUTO_MIN_STEPS, COMPILE_ENV, compile_problem, decide
from curricmusic.training.loop import train_run
from tests.helpers import MINIMAL_EXPERIMENT

# 8 steps of 8 windows x 64 tokens, a 1-layer model without dropout; checkpoints every 4 steps
EXPERIMENT = MINIMAL_EXPERIMENT.replace("[train]", '[model]\nsize = "tiny"\nd_model = 32\nn_layers = 1\nn_heads = 2\ndropout = 0.0\n[train]') + (
    'checkpoint_every = 4\ncompile = COMPILE\n[[arms]]\nname = "random"\npacing = "random"\n'
)
#: compiled and eager losses agree to this (float32 sums in another order; 8 steps)
TOLERANCE = 1e-5


def experiment_with(tmp_path: Path, setting: str):
    path = tmp_path / ("compile-" + setting.strip('"') + ".toml")
    path.write_text(EXPERIMENT.replace("COMPILE", setting))
    return load_experiment(path)


def losses(run_dir: Path) -> list[tuple]:
    return [(r["step"], r["train_loss"], r.get("val_loss")) for r in read_metrics(run_dir)]


@pytest.fixture(scope="module")
def runs(compile_cache, tmp_path_factory):
    """(eager, compiled, compiled killed after 6 steps and resumed) run folders."""
    if compile_problem() is not None:
        pytest.skip(f"this machine cannot compile: {compile_problem()}")
    root = tmp_path_factory.mktemp("compiled")
    eager, on = experiment_with(root, "false"), experiment_with(root, "true")
    train_run(eager, "random", 0, root / "eager", show_progress=False)
    train_run(on, "random", 0, root / "compiled", show_progress=False)
    train_run(on, "random", 0, root / "resumed", show_progress=False, stop_after=6)
    train_run(on, "random", 0, root / "resumed", resume=True, show_progress=False)
    return root / "eager", root / "compiled", root / "resumed"


def test_compiled_losses_agree_with_eager(runs):
    eager, on, _ = runs
    assert json.loads((on / "run.json").read_text())["compile"] == {"setting": "true", "compiled": True, "why": "compile = true"}
    assert json.loads((eager / "run.json").read_text())["compile"]["compiled"] is False
    a, b = losses(eager), losses(on)
    assert [r[0] for r in a] == [r[0] for r in b] and len(a) >= 3
    for (_, eager_loss, eager_val), (_, loss, val) in zip(a, b, strict=True):
        if eager_loss is not None:
            assert loss == pytest.approx(eager_loss, abs=TOLERANCE)
        for stage, value in (eager_val or {}).items():
            assert val[stage] == pytest.approx(value, abs=TOLERANCE)
    assert a[1][1] != a[-1][1]  # the runs did train


def test_compiled_resume_equals_the_uninterrupted_compiled_run(runs):
    _, on, resumed = runs
    assert losses(resumed) == losses(on)  # exactly: the same kernels, the same order


def test_auto_compiles_long_runs_only_and_the_flag_overrides_the_file(compile_cache, monkeypatch):
    assert decide("auto", AUTO_MIN_STEPS - 1).compiled is False
    assert "fewer than" in decide("auto", AUTO_MIN_STEPS - 1).why
    assert decide(False, 10 * AUTO_MIN_STEPS).compiled is False
    assert decide(True, 2).compiled is (compile_problem() is None)
    monkeypatch.setenv(COMPILE_ENV, "0")  # --no-compile
    assert decide(True, 10 * AUTO_MIN_STEPS) == compiled.CompileDecision("false", False, "compile = false")
    monkeypatch.setenv(COMPILE_ENV, "1")  # --compile
    assert decide("auto", 2).setting == "true"


def test_compile_is_left_out_of_the_experiment_hash(tmp_path):
    from curricmusic.config import config_hash

    on, off = experiment_with(tmp_path, "true"), experiment_with(tmp_path, '"auto"')
    assert on.config.train.compile is True and off.config.train.compile == "auto"
    assert config_hash(on.config) == config_hash(off.config)
    assert "compile" not in on.config.model_dump()["train"]


def test_without_a_cxx_compiler_training_is_eager_with_one_line(tmp_path, monkeypatch, capsys):
    import torch._dynamo
    import torch._inductor.config as inductor

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "empty"))  # no compiled kernel to reuse
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    torch._dynamo.reset()  # nor a compiled function in memory
    # inductor's own patch: monkeypatch's undo would delete (hide) the setting for later tests
    with inductor.patch({"cpp.cxx": (None, str(tmp_path / "no-such-c++"))}):
        problem = compile_problem()
        assert problem is not None and "\n" not in problem and "compiler" in problem.lower()
        train_run(experiment_with(tmp_path, "true"), "random", 0, tmp_path / "run", show_progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished" and info["compile"]["compiled"] is False
    assert info["compile"]["why"] == f"cannot compile here: {problem}"
    lines = [line for line in capsys.readouterr().err.splitlines() if "training step" in line]
    assert len(lines) == 1 and "eager" in lines[0]
