"""``curricmusic run``: every arm x seed trained at the same budget, sampled, scored, aggregated.

Layout of an experiment folder::

    OUT/experiment.json                 the validated experiment (what ran)
    OUT/runs/<arm>-seed<seed>/          a run folder (see curricmusic.common.run_folder), plus
        samples/                        generated MIDI + manifest.json (copy-blocking as configured);
                                        the first few with a WAV and a piano-roll PNG beside them
        novelty/                        novelty.json + novelty.html
        samples-unblocked/              the same seeds with copy-blocking off (when it is on):
        novelty-unblocked/              what the model would copy if nothing stopped it
        probe.json                      linear probe of key, mode, meter: trained vs initial weights
        adapt/shots-<k>/                with [adapt]: the final model fine-tuned on k pieces of a new style
        cell.json                       done / failed (with the error)
    OUT/runs/scratch-seed<seed>/adapt/  with [adapt]: the seed's initial weights fine-tuned alike
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

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from curricmusic.common.atomic import write_json
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, mark_folder, writing_folder
from curricmusic.common.lock import FolderInUse
from curricmusic.common.progress import console, err_console
from curricmusic.common.readback import read_json, readable
from curricmusic.common.run_folder import CELL_FILE
from curricmusic.config import Experiment, config_hash, load_experiment
from curricmusic.config.generation import GenerationSettings

if TYPE_CHECKING:  # annotations only
    from curricmusic.data.prepared import PreparedData

__all__ = ["LAUNCHERS", "Cell", "cells_of", "run_cell", "run_experiment", "finish_cell"]

LAUNCHERS = ("local", "accelerate", "slurm", "slurm-local")
RECORD_SCHEMA = {"hash": str, "config": dict}  # experiment.json, as far as its readers rely on it
SAMPLES_SCHEMA = {"samples": list, "settings": dict, "checkpoint_sha256": str}  # a samples manifest.json


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


CELL_SCHEMA = {"status": str}


def _cell_status(cell: Cell) -> str | None:
    """done / failed, or None when the cell has not run (or its record is damaged: it runs again)."""
    path = cell.run_dir / CELL_FILE
    return read_json(path, CELL_SCHEMA)["status"] if readable(path, CELL_SCHEMA) else None  # type: ignore[index]


def _cell_problem(experiment: Experiment, cell: Cell) -> str | None:
    """Why a cell marked done is not whole (None when it is): ``run --resume`` redoes such a cell.

    Its run.json must read, its weights pass their content hash, and its samples and novelty
    reports (when the experiment draws samples) read back."""
    from curricmusic.common.run_folder import MODEL_DIR, read_run
    from curricmusic.model.transformer import load_model
    from curricmusic.novelty.pipeline import NOVELTY_SCHEMA

    try:
        read_run(cell.run_dir)
        load_model(cell.run_dir / MODEL_DIR)
    except UserError as exc:
        return str(exc)
    if experiment.config.generate.n > 0:
        for file, schema in (("samples/manifest.json", SAMPLES_SCHEMA), ("novelty/novelty.json", NOVELTY_SCHEMA)):
            if not readable(cell.run_dir / file, schema):
                return f"{cell.run_dir / file} is missing or damaged"
    return None


def _train_cell(experiment: Experiment, cell: Cell, show_progress: bool) -> None:
    from curricmusic.training.loop import train_run

    train_run(experiment, cell.arm, cell.seed, cell.run_dir, lr=cell.lr, resume=True, show_progress=show_progress)


def _set_aside_damaged_checkpoint(run_dir: Path) -> None:
    """A checkpoint that fails its hash cannot be resumed from: rename it (``checkpoint.pt.damaged``,
    kept for inspection) so that the cell trains again from the start, and say so."""
    from curricmusic.common.run_folder import CHECKPOINT_FILE
    from curricmusic.training.checkpoint import load_checkpoint

    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return
    try:
        load_checkpoint(path)
    except UserError as exc:
        if "damaged" not in str(exc):
            raise  # refused for another reason (a pickle): never trained over
        os.replace(path, path.with_name(CHECKPOINT_FILE + ".damaged"))
        err_console.print(f"[yellow]{escape(str(exc))}: set aside, the cell trains again from the start[/]", highlight=False)


def _train_with_accelerate(experiment: Experiment, cell: Cell) -> None:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "-m", "curricmusic", "train", experiment.source,
        "--arm", cell.arm, "--seed", str(cell.seed), "--out", str(cell.run_dir), "--resume",
    ] + (["--lr", repr(cell.lr)] if cell.lr is not None else [])  # fmt: skip
    done = subprocess.run(command, env=dict(os.environ), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"accelerate launch failed ({done.returncode}): {done.stderr.strip()[-800:]}")


def check_before_training(experiment: Experiment, out_dir: Path, launcher: str) -> None:
    """Everything a run will need after training, checked before the first step trains: a
    mistake found after hours of training costs the hours."""
    from curricmusic.novelty.embedders import check_spec

    if launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher {launcher!r}; expected one of: {', '.join(LAUNCHERS)}")
    config = experiment.config
    try:
        check_spec(config.novelty.embedder)
    except UserError as exc:
        raise UserError(f"{experiment.source}: novelty.embedder: {exc}") from None
    for stage in config.novelty.bank_stages or []:
        if stage not in experiment.curriculum.stage_names:
            raise UserError(
                f"{experiment.source}: novelty.bank_stages: no stage {stage!r}; stages are: "
                f"{', '.join(experiment.curriculum.stage_names)}"
            )
    check_folder(out_dir, kind="experiment")


def finish_cell(experiment: Experiment, cell: Cell, show_progress: bool = True) -> None:
    """After training: samples, novelty scores, then ``cell.json`` marks the cell done.

    Sampling and scoring take their settings from the run folder exactly as ``curricmusic
    generate RUN_DIR`` and ``curricmusic novelty RUN_DIR/samples --against RUN_DIR`` do with no
    flags (the experiment's ``[generate]`` and ``[novelty]`` sections, the run's seed), so the
    command line reproduces what the report shows.
    """
    from curricmusic.common.run_folder import MODEL_DIR, read_run
    from curricmusic.config.run_settings import novelty_settings_for_run, settings_for_run
    from curricmusic.generation.generate import generate_samples
    from curricmusic.model.transformer import load_model, weights_digest
    from curricmusic.novelty.pipeline import NOVELTY_SCHEMA, score_novelty

    if experiment.config.generate.n > 0:
        run_info = read_run(cell.run_dir)
        settings, sources = settings_for_run(run_info, {})
        novelty, novelty_sources = novelty_settings_for_run(run_info, {})
        sets = [(settings, "samples", "novelty")]
        if settings.copy_blocking:  # what the model would copy: the same seeds without blocking
            unblocked = settings.model_copy(update={"copy_blocking": False})
            sets.append((unblocked, "samples-unblocked", "novelty-unblocked"))
        digest = weights_digest(load_model(cell.run_dir / MODEL_DIR))
        for sample_settings, sample_dir, novelty_dir in sets:
            samples = cell.run_dir / sample_dir
            fresh = not _samples_of(samples, digest)
            if fresh and not _unblocked_twin(cell.run_dir / "samples", samples, sample_settings):
                generate_samples(cell.run_dir, samples, sample_settings, sources=sources, show_progress=show_progress)
            if sample_dir == "samples":
                _listening_files(samples)  # before scoring: novelty.html plays what exists
            if fresh or not readable(cell.run_dir / novelty_dir / "novelty.json", NOVELTY_SCHEMA):
                score_novelty(
                    samples, cell.run_dir, cell.run_dir / novelty_dir, novelty, sources=novelty_sources,
                    show_progress=show_progress,
                )  # fmt: skip
    _probe_cell(experiment, cell)
    _adapt_cell(experiment, cell, show_progress)
    write_json(cell.run_dir / CELL_FILE, {"status": "done"})


def _samples_of(samples: Path, digest: str) -> bool:
    """True when ``samples`` holds a readable manifest of samples drawn from the weights ``digest``
    (a cell trained again from scratch samples again)."""
    if not readable(samples / "manifest.json", SAMPLES_SCHEMA):
        return False
    manifest = read_json(samples / "manifest.json", SAMPLES_SCHEMA)
    return manifest is not None and manifest["checkpoint_sha256"] == digest


def _listening_files(samples: Path) -> None:
    """A WAV and a piano roll beside each of the cell's first samples (for the report's players)."""
    from curricmusic.experiment.listening import render_listening

    render_listening(samples)


def _probe_cell(experiment: Experiment, cell: Cell) -> None:
    """``probe.json``: key, mode and meter of held-out pieces from the final model and from the
    seed's initial weights (see curricmusic.evaluation.probe_run)."""
    from curricmusic.evaluation.probe_run import PROBE_FILE, probe_run

    if experiment.config.probe.enabled and not (cell.run_dir / PROBE_FILE).is_file():
        probe_run(cell.run_dir, layers=experiment.config.probe.layers)


def _adapt_cell(experiment: Experiment, cell: Cell, show_progress: bool) -> None:
    """With ``[adapt]``: the cell's final model fine-tuned on each shot size of the new style."""
    from curricmusic.common.run_folder import MODEL_DIR
    from curricmusic.experiment.adaptation import adapt_model

    adapt_model(experiment, cell.arm, cell.seed, cell.run_dir, cell.run_dir / MODEL_DIR, show_progress)


def _unblocked_twin(blocked: Path, out: Path, settings: GenerationSettings) -> bool:
    """When copy-blocking removed no candidate token from any sample, the same seeds without it
    draw the same samples: copy them (and say so in the manifest) instead of sampling again."""
    import shutil

    manifest_path = blocked / "manifest.json"
    if settings.copy_blocking or out.exists() or not manifest_path.is_file():
        return False
    manifest = read_json(manifest_path, SAMPLES_SCHEMA)
    assert manifest is not None
    if any(row.get("copy_blocked_tokens", 1) for row in manifest["samples"]):
        return False
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(blocked, tmp, ignore=shutil.ignore_patterns("manifest.json"))
    manifest["settings"] = {**manifest["settings"], "copy_blocking": False}
    manifest["same_as_blocked"] = "copy-blocking removed no candidate token, so these are the samples of the same seeds"
    write_json(tmp / "manifest.json", manifest)
    os.replace(tmp, out)
    return True


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
    """Train and finish one cell while holding its run folder's lock (a manual ``train`` into a
    cell of a running experiment is refused); returns done or failed."""
    try:
        with writing_folder(cell.run_dir, "run"):
            _set_aside_damaged_checkpoint(cell.run_dir)
            if launcher == "accelerate":
                _train_with_accelerate(experiment, cell)
            else:
                _train_cell(experiment, cell, show_progress)
            finish_cell(experiment, cell, show_progress)
        return "done"
    except FolderInUse:
        raise  # another process writes this cell: stop, and say so, rather than record a failure there
    except Exception as exc:  # noqa: BLE001 - one failing arm must not lose the others
        cell.run_dir.mkdir(parents=True, exist_ok=True)
        mark_folder(cell.run_dir, "run")  # inside our experiment folder: a retry may train here
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
    executor: Any
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
    waits = {cell.name for cell in cells if _waits_for(experiment, cell) is not None}
    for wave in ([c for c in cells if c.name not in waits], [c for c in cells if c.name in waits]):
        jobs = [
            executor.submit(run_cell, experiment.source, cell.arm, cell.seed, str(cell.run_dir), "local", False, cell.lr)
            for cell in wave
        ]
        for cell, job in zip(wave, jobs, strict=True):
            status = job.result()
            err_console.print(f"{cell.name}: {status} (job {job.job_id})")


def _prepare_data(experiment: Experiment, show_progress: bool) -> PreparedData:
    """Prepare every curriculum once, up front: a data problem stops the run with one clear line
    instead of failing every cell the same way. Returns the experiment curriculum's data."""
    from curricmusic.training.setup import prepared_for

    data = prepared_for(experiment, show_progress=show_progress)
    for arm in experiment.config.arms:
        if experiment.arm_curricula[arm.name] is not experiment.curriculum:
            prepared_for(experiment, arm.name, show_progress=show_progress)
    if experiment.config.adapt is not None:  # the new styles, and enough pieces for every shot size
        from curricmusic.training.setup import style_prepared

        for style in experiment.config.adapt.styles:
            style_prepared(experiment, style.name, show_progress=show_progress)
    _check_init_from(experiment, data)
    return data


def _check_init_from(experiment: Experiment, data: PreparedData) -> None:
    """Every ``init_from`` model fits the experiment (shape, token ids): one line before any
    cell trains, rather than the same failure in every cell."""
    from curricmusic.training.init_from import start_from
    from curricmusic.training.setup import build_model

    config = experiment.config
    folders = [("train.init_from", config.train.init_from), ("adapt.init_from", config.adapt.init_from if config.adapt else None)]
    for key, folder in folders:
        if folder is not None:
            model = build_model(experiment, data.vocab_size, config.seeds[0])
            start_from(model, folder, data.tokenizer, f"{experiment.source}: {key}")


def _adapt_from_scratch(experiment: Experiment, out_dir: Path, show_progress: bool) -> None:
    """With ``[adapt]``: each seed's initial weights fine-tuned like the arms' final models, and
    the ``init_from`` model when the section names one."""
    from curricmusic.experiment.adaptation import adapt_scratch, adapt_shared, scratch_dir

    adapt = experiment.config.adapt
    if adapt is not None:
        seeds = experiment.config.seeds
        if any(_cell_status(Cell("scratch", seed, scratch_dir(out_dir, seed))) != "done" for seed in seeds):
            console.print("[bold]from-scratch adaptation[/]")  # (run --jobs has done them already)
            adapt_scratch(experiment, out_dir, show_progress)
        if adapt.init_from is not None:
            console.print(f"[bold]adaptation of {adapt.init_from.name} (adapt.init_from)[/]")
            adapt_shared(experiment, out_dir, show_progress)


def run_experiment(
    experiment: Experiment,
    out_dir: str | Path,
    *,
    resume: bool = False,
    launcher: str = "local",
    show_progress: bool = True,
    jobs: int = 1,
) -> dict:
    """Run every cell (skipping finished ones on resume), ``jobs`` at a time (local launcher),
    then aggregate and write the reports."""
    from curricmusic.experiment.results import aggregate
    from curricmusic.reporting.report import write_reports

    out_dir = Path(out_dir)
    check_before_training(experiment, out_dir, launcher)
    if jobs < 1 or (jobs > 1 and launcher != "local"):
        raise UserError(f"--jobs {jobs}: must be at least 1, and above 1 only with the local launcher")
    with writing_folder(out_dir, "experiment"):
        _check_record(experiment, out_dir, resume)
        data = _prepare_data(experiment, show_progress)
        if launcher != "slurm":  # slurm jobs run on other machines: their memory is not ours to check
            _check_model_fits(experiment, data.vocab_size, jobs)
        _run_cells(experiment, out_dir, launcher, show_progress, jobs)
        _adapt_from_scratch(experiment, out_dir, show_progress)
        results = aggregate(experiment, out_dir, cells_of(experiment, out_dir))
        write_reports(results, out_dir)
    return results


def _check_record(experiment: Experiment, out_dir: Path, resume: bool) -> None:
    """``experiment.json``: written on a first run; on ``--resume`` it must be this experiment's."""
    record = out_dir / "experiment.json"
    snapshot = {"source": experiment.source, "hash": config_hash(experiment.config), "config": experiment.config.model_dump(mode="json")}
    if record.is_file():
        if not resume:
            raise UserError(f"{out_dir}: already holds an experiment; pass --resume to continue it or choose another --out")
        previous = read_json(record, RECORD_SCHEMA, hint="move the folder aside and run the experiment again")
        assert previous is not None
        if previous["hash"] != snapshot["hash"]:
            raise UserError(f"{out_dir}: holds a run of a different experiment configuration; use another --out or delete the folder")
    write_json(record, snapshot)


def _check_model_fits(experiment: Experiment, vocab_size: int, jobs: int = 1) -> None:
    """The model, trained at the experiment's batch (in ``jobs`` processes at once), must fit in
    this machine's memory: checked once, before the first cell trains (one line, exit 2)."""
    from curricmusic.model.budget import check_training_fits
    from curricmusic.model.initial import model_config_of

    config = experiment.config
    model = model_config_of(config, vocab_size, experiment.source)
    batch = config.train.micro_batch_size or config.train.batch_size
    check_training_fits(model, batch, config.train.seq_len, f"{experiment.source}: model", copies=jobs)


def _run_cells(experiment: Experiment, out_dir: Path, launcher: str, show_progress: bool, jobs: int = 1) -> None:
    """Every cell not yet done (or done but no longer whole: its weights or reports damaged)."""
    cells = cells_of(experiment, out_dir)
    todo = []
    for cell in cells:
        if _cell_status(cell) != "done":
            todo.append(cell)
            continue
        problem = _cell_problem(experiment, cell)
        if problem:
            err_console.print(f"[yellow]{escape(cell.name)}: finished, but {escape(problem)}; it is redone[/]", highlight=False)
            todo.append(cell)
    if len(todo) < len(cells):
        console.print(f"{len(cells) - len(todo)} of {len(cells)} runs already finished; {len(todo)} to go")
    if launcher in ("slurm", "slurm-local"):
        _submit_slurm(experiment, todo, out_dir, launcher == "slurm-local", show_progress)
        return
    if jobs > 1:
        _run_in_parallel(experiment, todo, out_dir, jobs)
        return
    for index, cell in enumerate(todo):
        console.print(f"[bold]({index + 1}/{len(todo)}) {cell.name}[/]")
        if _run_cell(experiment, cell, launcher, show_progress) == "failed":
            _say_failed(cell)


def _say_failed(cell: Cell) -> None:
    record = read_json(cell.run_dir / CELL_FILE, CELL_SCHEMA) or {}
    err_console.print(f"[red]{escape(cell.name)} failed:[/] {escape(str(record.get('error')))}", highlight=False)


def _waits_for(experiment: Experiment, cell: Cell) -> str | None:
    """The cell whose finished run ``cell`` reads (a ``random-matched`` arm matching an adaptive
    arm reads the same seed's run of it), or None."""
    match = experiment.config.arm(cell.arm).match
    return cell_name(match, cell.seed) if match is not None and experiment.config.arm(match).options.adaptive else None


def _run_in_parallel(experiment: Experiment, todo: list[Cell], out_dir: Path, workers: int) -> None:
    """``run --jobs N``: the cells, then each seed's from-scratch adaptation, ``workers`` at a
    time (see curricmusic.experiment.parallel); the from-scratch runs fill the slots that cells
    waiting for their matched run leave free."""
    from curricmusic.experiment.adaptation import adapt_scratch_seed, scratch_dir
    from curricmusic.experiment.parallel import Job, run_jobs, threads_per_job

    names = {cell.name for cell in todo}
    jobs = []
    for cell in todo:
        before = _waits_for(experiment, cell)
        args = (experiment.source, cell.arm, cell.seed, str(cell.run_dir), "local", False, cell.lr)
        jobs.append(Job(cell.name, run_cell, args, frozenset([before]) if before in names else frozenset()))
    if experiment.config.adapt is not None:
        for seed in experiment.config.seeds:
            folder = scratch_dir(out_dir, seed)
            if _cell_status(Cell("scratch", seed, folder)) != "done":
                jobs.append(Job(folder.name, adapt_scratch_seed, (experiment.source, seed, str(out_dir))))
    console.print(f"{len(jobs)} jobs, {workers} at a time, {threads_per_job(workers)} thread(s) each")
    status = run_jobs(jobs, workers)
    for cell in todo:
        if status.get(cell.name) == "failed" and _cell_status(cell) == "failed":
            _say_failed(cell)
