"""``curricmusic run``: every arm x seed trained at the same budget, sampled, scored, aggregated.

Layout of an experiment folder::

    OUT/experiment.json                 the validated experiment (what ran)
    OUT/runs/<arm>-seed<seed>/          a run folder (see curricmusic.training.run_files), plus
        samples/                        generated MIDI + manifest.json
        novelty/                        novelty.json + novelty.html
        cell.json                       done / failed (with the error)
    OUT/results.json, report.md, report.html

A cell is one (arm, seed), or one (arm, learning rate, seed) when the arm sweeps learning rates
(``lr = [3e-4, 1e-3]``: folders ``<arm>-lr0.0003-seed<seed>``). Finished cells are skipped on ``--resume``, a half-trained cell
continues from its checkpoint, and a failing cell is recorded and does not stop the others.
Launchers run the training of each cell: ``local`` (in this process, one after another),
``accelerate`` (``accelerate launch -m curricmusic train``: multi-GPU), ``slurm`` (one submitit
job per cell; ``slurm-local`` uses submitit's local executor). Sampling, scoring and aggregation
read the run folders wherever the training ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from curricmusic.common.atomic import write_json
from curricmusic.common.errors import UserError
from curricmusic.common.progress import console, err_console
from curricmusic.config import Experiment, config_hash, load_experiment

__all__ = ["LAUNCHERS", "Cell", "cells_of", "run_cell", "run_experiment", "finish_cell"]

LAUNCHERS = ("local", "accelerate", "slurm", "slurm-local")
CELL_FILE = "cell.json"


@dataclass(frozen=True)
class Cell:
    arm: str
    seed: int
    run_dir: Path
    lr: float | None = None  # set when the arm sweeps learning rates

    @property
    def name(self) -> str:
        return cell_name(self.arm, self.seed, self.lr)


def cell_name(arm: str, seed: int, lr: float | None = None) -> str:
    """``pedagogy-seed0``, or ``pedagogy-lr0.001-seed0`` for a cell of a learning-rate sweep."""
    return f"{arm}-seed{seed}" if lr is None else f"{arm}-lr{lr:g}-seed{seed}"


def cells_of(experiment: Experiment, out_dir: Path) -> list[Cell]:
    """Every (arm, learning rate, seed) of the experiment, seeds outermost so early results cover
    all arms."""
    cells = []
    for seed in experiment.config.seeds:
        for arm in experiment.config.arms:
            rates = experiment.config.learning_rates(arm.name)
            for lr in rates if len(rates) > 1 else [None]:
                cells.append(Cell(arm.name, seed, out_dir / "runs" / cell_name(arm.name, seed, lr), lr))
    return cells


def _cell_status(cell: Cell) -> str | None:
    path = cell.run_dir / CELL_FILE
    return json.loads(path.read_text()).get("status") if path.is_file() else None


def _train_cell(experiment: Experiment, cell: Cell, show_progress: bool) -> None:
    from curricmusic.training.loop import train_run

    train_run(experiment, cell.arm, cell.seed, cell.run_dir, lr=cell.lr, resume=True, show_progress=show_progress)


def _train_with_accelerate(experiment: Experiment, cell: Cell) -> None:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "-m", "curricmusic", "train", experiment.source,
        "--arm", cell.arm, "--seed", str(cell.seed), "--out", str(cell.run_dir), "--resume",
    ] + (["--lr", repr(cell.lr)] if cell.lr is not None else [])  # fmt: skip
    done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"accelerate launch failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def finish_cell(experiment: Experiment, cell: Cell, show_progress: bool = True) -> None:
    """After training: samples, novelty scores, then ``cell.json`` marks the cell done."""
    from curricmusic.config.generation import GenerationSettings
    from curricmusic.generation.generate import generate_samples
    from curricmusic.novelty.pipeline import score_novelty

    config = experiment.config
    section = config.generate
    if section.n > 0:
        settings = GenerationSettings(
            n=section.n, seed=cell.seed, max_bars=section.max_bars, max_tokens=section.max_tokens,
            temperature=section.temperature, top_k=section.top_k, top_p=section.top_p, min_p=section.min_p,
            copy_blocking=section.copy_blocking, max_copy_notes=section.max_copy_notes,
            rerank=section.rerank, novelty_weight=section.novelty_weight,
        )  # fmt: skip
        samples = cell.run_dir / "samples"
        if not (samples / "manifest.json").is_file():
            generate_samples(cell.run_dir, samples, settings, show_progress=show_progress)
        if not (cell.run_dir / "novelty" / "novelty.json").is_file():
            score_novelty(samples, cell.run_dir, cell.run_dir / "novelty", config.novelty, show_progress=show_progress)
    write_json(cell.run_dir / CELL_FILE, {"status": "done"})


def run_cell(
    experiment_file: str,
    arm: str,
    seed: int,
    run_dir: str,
    launcher: str = "local",
    show_progress: bool = True,
    lr: float | None = None,
) -> str:
    """Train and finish one cell from the experiment's file; returns its status. Picklable, for
    submitit jobs (which run in another process and load the experiment themselves)."""
    return _run_cell(load_experiment(experiment_file), Cell(arm, seed, Path(run_dir), lr), launcher, show_progress)


def _run_cell(experiment: Experiment, cell: Cell, launcher: str, show_progress: bool) -> str:
    try:
        if launcher == "accelerate":
            _train_with_accelerate(experiment, cell)
        else:
            _train_cell(experiment, cell, show_progress)
        finish_cell(experiment, cell, show_progress)
        return "done"
    except Exception as exc:  # noqa: BLE001 - one failing arm must not lose the others
        cell.run_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            cell.run_dir / CELL_FILE,
            {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()},
        )
        return "failed"


def _submit_slurm(experiment: Experiment, cells: list[Cell], out_dir: Path, local: bool, show_progress: bool) -> None:
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install 'curricmusic[slurm]'") from None
    folder = out_dir / "submitit"
    slurm = experiment.config.slurm
    if local:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=slurm.timeout_min)
    else:
        executor = submitit.AutoExecutor(folder=folder)
        executor.update_parameters(
            timeout_min=slurm.timeout_min,
            slurm_partition=slurm.partition,
            gpus_per_node=slurm.gpus_per_node,
            cpus_per_task=slurm.cpus_per_task,
            mem_gb=slurm.mem_gb,
            name=f"curricmusic-{experiment.config.name}",
        )
    jobs = [
        executor.submit(run_cell, experiment.source, cell.arm, cell.seed, str(cell.run_dir), "local", False, cell.lr)
        for cell in cells
    ]
    for cell, job in zip(cells, jobs, strict=True):
        status = job.result()
        err_console.print(f"{cell.name}: {status} (job {job.job_id})")


def _prepare_data(experiment: Experiment, show_progress: bool) -> None:
    """Prepare every curriculum once, up front: a data problem stops the run with one clear line
    instead of failing every cell the same way."""
    from curricmusic.training.setup import prepared_for

    prepared_for(experiment, show_progress=show_progress)
    for arm in experiment.config.arms:
        if experiment.arm_curricula[arm.name] is not experiment.curriculum:
            prepared_for(experiment, arm.name, show_progress=show_progress)


def run_experiment(
    experiment: Experiment,
    out_dir: str | Path,
    *,
    resume: bool = False,
    launcher: str = "local",
    show_progress: bool = True,
) -> dict:
    """Run every cell (skipping finished ones on resume), then aggregate and write the reports."""
    from curricmusic.experiment.results import aggregate
    from curricmusic.reporting.report import write_reports

    if launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher {launcher!r}; expected one of: {', '.join(LAUNCHERS)}")
    out_dir = Path(out_dir)
    record = out_dir / "experiment.json"
    snapshot = {"source": experiment.source, "hash": config_hash(experiment.config), "config": experiment.config.model_dump(mode="json")}
    if record.is_file():
        previous = json.loads(record.read_text())
        if not resume:
            raise UserError(f"{out_dir}: already holds an experiment; pass --resume to continue it or choose another --out")
        if previous["hash"] != snapshot["hash"]:
            raise UserError(f"{out_dir}: holds a run of a different experiment configuration; use another --out or delete the folder")
    write_json(record, snapshot)
    _prepare_data(experiment, show_progress)
    cells = cells_of(experiment, out_dir)
    todo = [cell for cell in cells if _cell_status(cell) != "done"]
    if len(todo) < len(cells):
        console.print(f"{len(cells) - len(todo)} of {len(cells)} runs already finished; {len(todo)} to go")
    if launcher in ("slurm", "slurm-local"):
        _submit_slurm(experiment, todo, out_dir, launcher == "slurm-local", show_progress)
    else:
        for index, cell in enumerate(todo):
            console.print(f"[bold]({index + 1}/{len(todo)}) {cell.name}[/]")
            status = _run_cell(experiment, cell, launcher, show_progress)
            if status == "failed":
                error = json.loads((cell.run_dir / CELL_FILE).read_text())["error"]
                err_console.print(f"[red]{cell.name} failed:[/] {error}")
    results = aggregate(experiment, out_dir, cells)
    write_reports(results, out_dir)
    return results
