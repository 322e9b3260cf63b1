"""Fixtures of the command-line tests: a finished tiny run, and the console script in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from curricmusic.config import load_experiment
from curricmusic.training.loop import train_run
from tests.helpers import run_cli, tiny_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run of the tiny experiment (run.json, checkpoint.pt, model/, tokenizer.json)."""
    root = tmp_path_factory.mktemp("trained")
    experiment = load_experiment(tiny_experiment(root))
    train_run(experiment, "random", 0, root / "run", show_progress=False)
    return root / "run"


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the console script in this process: ``cli(*args) -> (exit status, stderr)``."""

    def run(*args) -> tuple[int, str]:
        status, _, err = run_cli(monkeypatch, capsys, *args)
        return status, err

    return run
