"""The adaptation phase of ``curricmusic run``: every model fine-tuned on a new style, few-shot.

After a cell has trained (and sampled), its final model is fine-tuned on each style, shot size
and learning rate of the experiment's ``[adapt]``; after every cell, a from-scratch model of each
seed (the seed's initial weights, the ones every arm of that seed started from) is fine-tuned the
same way. Every run goes through the one training loop
(:func:`~curricmusic.training.loop.train_run` with an
:class:`~curricmusic.training.setup.Adaptation`)::

    OUT/runs/<cell>/adapt/[<style>/]shots-<k>[-lr<lr>]/   a run folder (run.json, metrics.jsonl, checkpoint.pt, model/)
    OUT/runs/scratch-seed<seed>/adapt/...
    OUT/runs/scratch-seed<seed>/cell.json                 done / failed (with the error)
    OUT/runs/shared-seed<seed>/...                        with ``[adapt] init_from``: that model, adapted alike

The style's folder appears when the experiment adapts to more than one style, the learning rate
when ``[adapt] lr`` sweeps several (one style and one rate: ``adapt/shots-<k>/``).

A finished adaptation run (its run.json says ``finished``) is skipped; an unfinished one
continues from its checkpoint, so ``run --resume`` repeats nothing.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from curricmusic.common.atomic import write_json
from curricmusic.common.folders import claim_folder
from curricmusic.common.progress import err_console
from curricmusic.common.readback import read_json
from curricmusic.common.run_folder import CELL_FILE, is_run_folder, read_run
from curricmusic.config import SCRATCH, SHARED, AdaptSection, Experiment

__all__ = [
    "ADAPT_DIR",
    "adapt_dir",
    "adapt_runs",
    "adapt_folder",
    "scratch_dir",
    "model_dir",
    "adapt_model",
    "adapt_scratch",
    "adapt_scratch_seed",
    "adapt_shared",
    "adaptation_finished",
]

ADAPT_DIR = "adapt"


def adapt_dir(run_dir: Path, shots: int, style: str | None = None, lr: float | None = None) -> Path:
    """Where a model's adaptation run on ``shots`` pieces (of ``style``, at ``lr``: each left
    out of the path when None) lives, inside its run folder."""
    folder = Path(run_dir) / ADAPT_DIR / (style or "")
    return folder / (f"shots-{shots}" if lr is None else f"shots-{shots}-lr{lr:g}")


def adapt_runs(adapt: AdaptSection) -> list[tuple[str, int, float]]:
    """Every (style, shot size, learning rate) a model is adapted with, in training order."""
    return [(style.name, k, lr) for style in adapt.styles for k in adapt.shots for lr in adapt.learning_rates]


def adapt_folder(adapt: AdaptSection, run_dir: Path, style: str, shots: int, lr: float) -> Path:
    """The folder of one adaptation run of a model (see the module doc for the layout)."""
    return adapt_dir(
        run_dir, shots, style if len(adapt.styles) > 1 else None, lr if len(adapt.learning_rates) > 1 else None
    )


def scratch_dir(out_dir: Path, seed: int) -> Path:
    """The from-scratch model's folder of ``seed`` (it holds only its adaptation runs)."""
    return model_dir(out_dir, SCRATCH, seed)


def model_dir(out_dir: Path, label: str, seed: int) -> Path:
    """The folder of a model that is not an arm (``scratch``, ``shared``) for ``seed``."""
    return Path(out_dir) / "runs" / f"{label}-seed{seed}"


def adaptation_finished(run_dir: Path) -> bool:
    return is_run_folder(run_dir) and read_run(run_dir).get("status") == "finished"


def adapt_model(
    experiment: Experiment, label: str, seed: int, run_dir: Path, init: Path | None, show_progress: bool = True
) -> None:
    """Fine-tune one model on every shot size of ``[adapt]`` (nothing when the experiment has no
    such section): ``init`` is a ``model/`` folder, or None for the seed's initial weights."""
    from curricmusic.training.loop import train_run
    from curricmusic.training.setup import Adaptation

    adapt = experiment.config.adapt
    if adapt is None:
        return
    for style, shots, lr in adapt_runs(adapt):
        folder = adapt_folder(adapt, run_dir, style, shots, lr)
        if adaptation_finished(folder):
            continue
        train_run(
            experiment, label, seed, folder, resume=True, show_progress=show_progress,
            adapt=Adaptation(shots=shots, init=init, label=label, style=style, lr=lr),
        )  # fmt: skip


def adapt_scratch(experiment: Experiment, out_dir: Path, show_progress: bool = True) -> list[str]:
    """The from-scratch adaptation runs of every seed; returns the seeds' failures as lines (a
    failing seed is recorded in its ``cell.json`` and does not stop the others)."""
    return _adapt_every_seed(experiment, SCRATCH, None, out_dir, show_progress)


def adapt_shared(experiment: Experiment, out_dir: Path, show_progress: bool = True) -> list[str]:
    """With ``[adapt] init_from``: that model adapted like the others, once per seed (each seed
    draws its own shot subsets), in ``OUT/runs/shared-seed<seed>/``; failures as lines."""
    adapt = experiment.config.adapt
    if adapt is None or adapt.init_from is None:
        return []
    return _adapt_every_seed(experiment, SHARED, adapt.init_from, out_dir, show_progress)


def adapt_scratch_seed(experiment_file: str, seed: int, out_dir: str) -> str:
    """One seed's from-scratch adaptation runs, from the experiment's file; returns done or
    failed. Picklable, for ``run --jobs`` (a worker process loads the experiment itself)."""
    from curricmusic.config import load_experiment

    failures = _adapt_every_seed(load_experiment(experiment_file), SCRATCH, None, Path(out_dir), False, [seed])
    return "failed" if failures else "done"


def _adapt_every_seed(
    experiment: Experiment, label: str, init: Path | None, out_dir: Path, show_progress: bool, seeds: list[int] | None = None
) -> list[str]:
    if experiment.config.adapt is None:
        return []
    failures = []
    for seed in experiment.config.seeds if seeds is None else seeds:
        folder = model_dir(out_dir, label, seed)
        status = folder / CELL_FILE
        record = read_json(status, missing_ok=True, hint="`curricmusic run --resume` redoes the runs")
        if record is not None and record.get("status") == "done":
            continue
        try:
            claim_folder(folder, "run")
            adapt_model(experiment, label, seed, folder, init, show_progress)
            write_json(status, {"status": "done"})
        except Exception as exc:  # noqa: BLE001 - one failing seed must not lose the others
            error = f"{type(exc).__name__}: {exc}"
            write_json(status, {"status": "failed", "error": error, "traceback": traceback.format_exc()})
            err_console.print(f"[red]{folder.name} failed:[/] {error}")
            failures.append(f"{folder.name}: {error}")
    return failures
