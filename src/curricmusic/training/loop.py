"""The one training loop. Every arm runs through :func:`train_run`; only the schedule differs.

Adaptation runs (the ``[adapt]`` phase: a model fine-tuned on a few pieces of a new style) run
through the same loop with another plan (:func:`~.setup.plan_adaptation`), initial weights and
cadence. A step asks the arm's schedule for its mixture, turns it into whole windows per stage
(:func:`~curricmusic.curriculum.allocation.allocate`), draws their starts, and trains on the global
batch (:func:`~.step.train_step`). The loop knows nothing about music: set-up is in
:mod:`.setup`, held-out scoring in :mod:`.evaluate`, logging in :mod:`.log`. accelerate places
the model, wraps it for DDP and handles mixed precision.

Everything a step consumes (the schedule state, the allocation debt, the token counters, the
random generators) is in the checkpoint, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.markup import escape

from curricmusic.common.errors import RunFailed, UserError
from curricmusic.common.folders import check_folder, writing_folder
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.common.run_folder import (
    CHECKPOINT_FILE,
    MODEL_DIR,
    TOKENIZER_FILE,
    read_metrics,
    truncate_metrics,
    write_run,
)
from curricmusic.config import Experiment, config_hash
from curricmusic.curriculum.allocation import allocate, step_windows
from curricmusic.curriculum.pacing import KEY_SHARE
from curricmusic.model.transformer import MusicTransformer, load_model, save_model, weights_digest
from curricmusic.training.checkpoint import (
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from curricmusic.training.compiled import (
    CompileDecision,
    compile_for_training,
    decide,
    deterministic_kernels,
)
from curricmusic.training.evaluate import evaluate
from curricmusic.training.init_from import check_shape, start_from
from curricmusic.training.log import MetricsLog, metrics_row, weights_text
from curricmusic.training.lr import LRSchedule, lr_schedule
from curricmusic.training.measures import measure_key_share
from curricmusic.training.setup import (
    Adaptation,
    RunPlan,
    build_model,
    heldout_sets,
    make_optimizer,
    plan_adaptation,
    plan_run,
    prepared_for,
)
from curricmusic.training.step import train_step

if TYPE_CHECKING:  # annotations only: accelerate loads when a run starts
    from accelerate import Accelerator

__all__ = ["train_run", "TrainResult", "TrainState", "Adaptation", "prepared_for", "peak_lr", "BOUNDARIES_DIR"]

#: Where a run keeps its model at each stage boundary (``[probe] at_boundaries``).
BOUNDARIES_DIR = "boundaries"
#: What an evaluation may measure beyond losses, handed to the schedule (``Pacing.measured``).
MEASURES = (KEY_SHARE,)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_val: dict[str, float]
    resumed_from: int | None


@dataclass
class TrainState:
    """What changes from step to step, all of it checkpointed (plain numbers, lists and dicts)."""

    step: int
    schedule: dict
    debt: np.ndarray  # (K,) float64: windows owed to each stage (see allocate)
    stage_tokens: np.ndarray  # (K,) int64: real tokens trained on per stage
    best_val: dict[str, float] = field(default_factory=dict)
    last_val: dict[str, float] = field(default_factory=dict)
    boundaries: list[dict] = field(default_factory=list)  # where the stage being learned changed

    def to_payload(self) -> dict:
        return {
            "step": self.step,
            "schedule_state": self.schedule,
            "debt": [float(d) for d in self.debt],
            "stage_tokens": [int(n) for n in self.stage_tokens],
            "best_val": dict(self.best_val),
            "last_val": dict(self.last_val),
            "boundaries": [dict(b) for b in self.boundaries],
        }

    @classmethod
    def from_payload(cls, payload: dict) -> TrainState:
        return cls(
            step=int(payload["step"]),
            schedule=dict(payload["schedule_state"]),
            debt=np.array(payload["debt"], dtype=np.float64),
            stage_tokens=np.array(payload["stage_tokens"], dtype=np.int64),
            best_val=dict(payload["best_val"]),
            last_val=dict(payload["last_val"]),
            boundaries=[dict(b) for b in payload.get("boundaries", [])],
        )

    def record_val(self, val: dict[str, float]) -> None:
        self.last_val = val
        for stage, loss in val.items():
            if np.isfinite(loss) and (stage not in self.best_val or loss < self.best_val[stage]):
                self.best_val[stage] = loss


def peak_lr(experiment: Experiment, arm_name: str, lr: float | None) -> float:
    """The run's peak learning rate: ``lr`` when given (one of the arm's), else the arm's only one."""
    rates = experiment.config.learning_rates(arm_name)
    if lr is None:
        if len(rates) > 1:
            listed = ", ".join(f"{r:g}" for r in rates)
            raise UserError(f"{experiment.source}: arm {arm_name!r} sweeps learning rates {listed}; pass --lr with one of them")
        return rates[0]
    if not any(np.isclose(lr, r, rtol=1e-9, atol=0) for r in rates):
        listed = ", ".join(f"{r:g}" for r in rates)
        raise UserError(f"--lr {lr:g}: arm {arm_name!r} of {experiment.source} trains with {listed}")
    return float(lr)


def train_run(
    experiment: Experiment,
    arm_name: str,
    seed: int,
    run_dir: str | Path,
    *,
    lr: float | None = None,
    resume: bool = False,
    show_progress: bool = True,
    stop_after: int | None = None,
    adapt: Adaptation | None = None,
    matched_run: str | Path | None = None,
) -> TrainResult:
    """Train one (arm, learning rate, seed) into ``run_dir``; with ``resume``, continue from its
    checkpoint. ``stop_after`` ends the run after that many steps as if it had been killed there:
    no checkpoint beyond the last regular one (tests of resume).

    An arm that matches an adaptive arm reads that arm's per-stage tokens from its finished run of
    the same seed: ``matched_run``, by default the folder ``<match>-seed<seed>`` beside ``run_dir``
    (where ``curricmusic run`` and ``curricmusic train`` put it).

    With ``adapt``, an adaptation run instead: ``adapt.init``'s weights (or the seed's initial
    weights) fine-tuned on ``adapt.shots`` pieces of an ``[adapt]`` style with its budget,
    learning rate and cadence; ``arm_name`` is then only the model's label.

    The main process holds the folder's writer lock throughout (a second writer is refused). A
    loss or gradient that becomes non-finite stops the run (:class:`RunFailed`, naming the step);
    ``checkpoint.pt`` keeps the last finite state."""
    run_dir = Path(run_dir)
    check_folder(run_dir, kind="run")  # only a new, empty or curricmusic folder: before any work
    if adapt is None and experiment.config.train.init_from is not None:  # a wrong shape makes no folder
        check_shape(experiment.config.train.init_from, experiment.config, f"{experiment.source}: train.init_from")
    peak = peak_lr(experiment, arm_name, lr) if adapt is None else _adapt_lr(experiment, adapt)
    args = (experiment, arm_name, seed, run_dir, peak, resume, show_progress, stop_after, adapt, matched_run)
    if int(os.environ.get("RANK", "0")) != 0:  # another process of a multi-process run: rank 0 holds the lock
        return _train(*args)
    with writing_folder(run_dir, "run"):
        return _train(*args)


def _train(
    experiment: Experiment,
    arm_name: str,
    seed: int,
    run_dir: Path,
    peak: float,
    resume: bool,
    show_progress: bool,
    stop_after: int | None,
    adapt: Adaptation | None,
    matched_run: str | Path | None,
) -> TrainResult:
    from accelerate import Accelerator

    train = experiment.config.train
    accelerator = Accelerator(mixed_precision=train.mixed_precision, cpu=_multi_cpu())
    if accelerator.num_processes > 1:
        _end_process_group_at_exit()
    _GroupExit.finished = False
    main = accelerator.is_main_process
    micro = _micro_batch(experiment, accelerator.num_processes)
    eval_batch = 2 * micro  # no activations kept for a backward pass: twice the training micro-batch fits
    with accelerator.main_process_first():
        if adapt is None:
            matched = _matched_run(experiment, arm_name, seed, run_dir, matched_run)
            plan = plan_run(experiment, arm_name, seed, show_progress=show_progress and main, matched_run=matched)
        else:
            plan = plan_adaptation(experiment, seed, adapt.shots, show_progress=show_progress and main, style=adapt.style)

    model = build_model(experiment, plan.data.vocab_size, seed, micro_batch=micro)
    start = _initial_weights(experiment, model, plan, adapt)
    info = _run_info(experiment, arm_name, seed, peak, plan, adapt) | {"init_sha256": weights_digest(model)} | start
    checkpoint = _checkpoint_to_resume(run_dir, info, resume)
    optimizer = make_optimizer(model, experiment, peak)
    rng = np.random.default_rng([seed, 0x5EED])
    state = _resume(checkpoint, model, optimizer, rng, run_dir, main) if checkpoint else _fresh(plan, seed)
    compiled = _compile_step(model, decide(train.compile, plan.total_steps), checkpoint, main)
    info["compile"] = compiled.to_dict()
    model, optimizer = accelerator.prepare(model, optimizer)
    if main:
        write_run(run_dir, info)
        shutil.copyfile(plan.data.root / "tokenizer.json", run_dir / TOKENIZER_FILE)
    log = MetricsLog(run_dir, main, train.tensorboard)
    cadence = plan.cadence
    schedule = lr_schedule(
        cadence.lr_schedule, peak, plan.total_steps, cadence.warmup_fraction, cadence.min_lr_ratio, cadence.decay_fraction
    )
    if state.step == 0:  # the untrained model's losses: every curve starts from the same point
        initial = _evaluation(model, accelerator, plan, eval_batch, final=plan.total_steps == 0)
        state.record_val(initial["val_loss"])
        log.start(_row(plan, state, 0, schedule(0), None) | initial)

    end_step = plan.total_steps if stop_after is None else min(plan.total_steps, state.step + stop_after)
    started, first_step = time.perf_counter(), state.step
    saved = state.step if checkpoint else None  # the step checkpoint.pt holds
    label = f"{arm_name} seed {seed}" if adapt is None else f"adapt {arm_name} seed {seed}, {plan.data.target_stage}, {adapt.shots} pieces"
    with progress_bar(label, plan.total_steps, show_progress and main) as update:
        update(advance=0, completed=state.step)
        while state.step < end_step:
            with deterministic_kernels(compiled.compiled and accelerator.device.type == "cpu"):
                row = _one_step(model, optimizer, accelerator, plan, state, rng, schedule, micro, train.grad_clip)
            done = state.step
            if not row.pop("finite"):
                log.close()
                what = f"the training loss became {row['train_loss']} (gradient norm {row['grad_norm']:.4g})"
                _stop_non_finite(run_dir, info, done, what, saved, cadence.checkpoint_every, main)
            evaluated = done % cadence.eval_every == 0 or done == plan.total_steps
            scores: dict = {}
            if evaluated:
                scores = _evaluation(model, accelerator, plan, eval_batch, final=done == plan.total_steps)
                state.record_val(scores["val_loss"])
                row |= scores
            before = plan.schedule.phase(done - 1, state.schedule)
            measured = {name: scores[name] for name in MEASURES if name in scores} if evaluated else None
            state.schedule = plan.schedule.update(done - 1, state.schedule, state.last_val if evaluated else None, measured)
            _boundary(plan, state, done, before, run_dir, accelerator, model, snapshot=experiment.config.probe.at_boundaries)
            tokens_per_s = (done - first_step) * train.tokens_per_step / max(1e-9, time.perf_counter() - started)
            if done % cadence.log_every == 0 or evaluated or done == end_step:
                log.append(row | {"tokens_per_s": tokens_per_s})
            update(info=f"loss {row['train_loss']:.3f} | {weights_text(row['stage_weights'])} | {tokens_per_s:,.0f} tok/s")
            if done % cadence.checkpoint_every == 0 or done == plan.total_steps:
                if not _finite_weights(model):  # the same on every process: the weights are shared
                    log.close()
                    _stop_non_finite(run_dir, info, done, "the weights became NaN or infinite", saved, cadence.checkpoint_every, main)
                accelerator.wait_for_everyone()
                if main:
                    _save(run_dir, accelerator.unwrap_model(model), optimizer, state, rng, info)
                saved = done
    log.close()
    if checkpoint and main and state.step >= end_step:  # nothing trained: the weights file must still be whole
        _verify_weights(run_dir, accelerator.unwrap_model(model))
    finished = end_step == plan.total_steps
    info.update(_summary(plan, state, end_step, finished))
    if finished:  # the test split, scored once, by the final model
        info["test_loss"] = evaluate(model, accelerator, heldout_sets(experiment, plan.eval_data, "test"), eval_batch)
        for key, name in (("val_loss_all", "final_val_loss"), ("style_loss_all", "final_style_loss"), ("style_loss", "final_style_loss")):
            value = _last_scores(run_dir, key) if main else None  # the last evaluation's: every validation token
            if value is not None and (key.endswith("_all") or name not in info):
                info[name] = value
    if main:
        write_run(run_dir, info)
    _GroupExit.finished = True
    return TrainResult(run_dir, end_step, state.last_val, int(checkpoint["step"]) if checkpoint else None)


def _stop_non_finite(run_dir: Path, info: dict[str, Any], step: int, what: str, saved: int | None, every: int, main: bool) -> None:
    """Record in run.json why the run stopped, then raise :class:`RunFailed` naming the step."""
    kept = (
        f"checkpoint.pt keeps step {saved}, the last finite state"
        if saved is not None
        else f"no checkpoint was written (the first comes at step {every})"
    )
    message = f"{run_dir}: step {step}: {what}; the run stopped and {kept}; lower the learning rate"
    if main:
        write_run(run_dir, info | {"status": "failed", "error": message, "failed_at_step": step})
    raise RunFailed(message)


def _finite_weights(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _verify_weights(run_dir: Path, model: MusicTransformer) -> None:
    """A resumed run that trains no further (it had finished): ``model/`` must hold the
    checkpoint's weights and pass its content hash; if it does not, it is written again from
    the checkpoint (which passed its own hash when it was loaded), and a line says so."""
    try:
        whole = weights_digest(load_model(run_dir / MODEL_DIR)) == weights_digest(model)
        problem = "holds other weights than checkpoint.pt"
    except UserError as exc:
        whole, problem = False, str(exc).split(": ", 1)[-1]
    if not whole:
        save_model(model, run_dir / MODEL_DIR)
        err_console.print(
            f"[yellow]{escape(str(run_dir / MODEL_DIR))}: rebuilt from checkpoint.pt ({escape(problem)})[/]",
            highlight=False,
        )


def _one_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    plan: RunPlan,
    state: TrainState,
    rng: np.random.Generator,
    schedule: LRSchedule,
    micro: int,
    grad_clip: float,
) -> dict[str, Any]:
    """Draw and train on one global batch; advance the state; return the step's metrics row."""
    step = state.step
    mixture = plan.schedule.mixture(step, state.schedule)
    context = plan.schedule.context
    # shorter windows (sequence-length warm-up): more of them, the same real tokens per step
    windows, factor = step_windows(mixture.seq_len, context.batch_size, context.seq_len)
    counts, state.debt = allocate(mixture.weights, state.debt, windows)
    refs = plan.sampler.draw(rng, counts, mixture)
    lr = schedule(step)
    result = train_step(model, optimizer, accelerator, plan.sampler, refs, lr, micro * factor, grad_clip)
    state.stage_tokens = state.stage_tokens + counts * refs.length
    state.step = step + 1
    current = plan.schedule.current_stage(step, state.schedule)
    row = metrics_row(state.step, plan.stage_names, state.stage_tokens, plan.data.target_stage, lr, mixture.weights, current, result.loss)
    if not result.finite:
        return row | {"finite": False, "grad_norm": result.grad_norm}
    return row | {"window_len": refs.length, "finite": True}


def _compile_step(
    model: torch.nn.Module, decision: CompileDecision, checkpoint: dict[str, Any] | None, main: bool
) -> CompileDecision:
    """Compile the model's training step in place when ``decision`` says so; one line on stderr
    when it compiles, when it was asked to and cannot, and when a resumed run changes mode."""
    if decision.compiled:
        compile_for_training(model)
    if main and (decision.compiled or decision.setting == "true"):
        how = "compiled (the first steps pay for it)" if decision.compiled else "eager"
        err_console.print(f"training step: {how}; {decision.why}", highlight=False)
    before = ((checkpoint or {}).get("run") or {}).get("compile") or {}
    if main and "compiled" in before and before["compiled"] != decision.compiled:
        err_console.print(
            f"note: this run trained {'compiled' if before['compiled'] else 'eagerly'} before the resume and "
            f"{'compiled' if decision.compiled else 'eagerly'} from here; losses agree to about 1e-5, not bit for bit",
            highlight=False,
        )
    return decision


def _row(plan: RunPlan, state: TrainState, step: int, lr: float, loss: float | None) -> dict:
    mixture = plan.schedule.mixture(step, state.schedule)
    current = plan.schedule.current_stage(step, state.schedule)
    return metrics_row(step, plan.stage_names, state.stage_tokens, plan.data.target_stage, lr, mixture.weights, current, loss)


def _fresh(plan: RunPlan, seed: int) -> TrainState:
    torch.manual_seed(seed + 1)  # dropout stream, independent of the initial weights
    k = len(plan.stage_names)
    return TrainState(0, plan.schedule.initial_state(), np.zeros(k), np.zeros(k, dtype=np.int64))


def _resume(
    checkpoint: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    run_dir: Path,
    main: bool,
) -> TrainState:
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    restore_rng_states(checkpoint["rng"], rng)
    state = TrainState.from_payload(checkpoint["train_state"])
    if main:
        truncate_metrics(run_dir, state.step)
    return state


def _checkpoint_to_resume(run_dir: Path, info: dict, resume: bool) -> dict | None:
    """The checkpoint to continue from (checked against this run), or None for a fresh run."""
    if not (run_dir / CHECKPOINT_FILE).is_file():
        return None
    if not resume:
        raise UserError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    saved = checkpoint["run"]
    for key in ("experiment_hash", "seed", "arm", "lr"):
        if saved.get(key) != info[key]:
            raise UserError(f"{run_dir}: holds a run with another {key.replace('_', ' ')}; use a new --out folder")
    where = {"init"}  # where the initial weights were read: the folder may have moved (init_sha256 says what)
    mine, theirs = ({k: v for k, v in (d.get("adapt") or {}).items() if k not in where} for d in (info, saved))
    if mine != theirs:
        raise UserError(f"{run_dir}: holds another adaptation run (shots, style or pieces differ); use a new --out folder")
    if saved["tokenizer_hash"] != info["tokenizer_hash"]:
        raise UserError(
            f"{run_dir}: its checkpoint was trained with tokenizer {saved['tokenizer_hash']}, but the prepared "
            f"cache {info['prepared']} was built with tokenizer {info['tokenizer_hash']}; prepare the data with the run's curriculum"
        )
    # checked after the tokenizer: another vocabulary also gives other initial weights
    if "init_sha256" in saved and saved["init_sha256"] != info["init_sha256"]:
        raise UserError(f"{run_dir}: holds a run that started from other weights; use a new --out folder")
    return checkpoint


def _save(
    run_dir: Path,
    model: MusicTransformer,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    rng: np.random.Generator,
    info: dict[str, Any],
) -> None:
    payload = {
        "step": state.step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "train_state": state.to_payload(),
        "rng": rng_states(rng),
        "run": info,
    }
    save_checkpoint(run_dir / CHECKPOINT_FILE, payload)
    save_model(model, run_dir / MODEL_DIR)


def _adapt_lr(experiment: Experiment, adapt: Adaptation) -> float:
    section = experiment.config.adapt
    if section is None:
        raise UserError(f"{experiment.source}: no [adapt] section: nothing to adapt")
    rates = section.learning_rates
    if adapt.lr is None:
        if len(rates) > 1:
            raise UserError(f"{experiment.source}: [adapt] sweeps learning rates {rates}; an adaptation run needs one of them")
        return rates[0]
    if not any(np.isclose(adapt.lr, r, rtol=1e-9, atol=0) for r in rates):
        raise UserError(f"adaptation learning rate {adapt.lr:g} is not one of [adapt] lr {rates}")
    return float(adapt.lr)


def _evaluation(
    model: torch.nn.Module, accelerator: Accelerator, plan: RunPlan, eval_batch: int, final: bool
) -> dict[str, Any]:
    """What one evaluation scores: ``val_loss`` per stage (a subset of pieces in training with
    ``eval_pieces``), ``style_loss`` per [adapt] style when measured, ``key_share`` per stage when
    measured; at the ``final`` evaluation also ``val_loss_all`` / ``style_loss_all`` over every
    validation token when the others score a subset."""
    scores: dict = {"val_loss": evaluate(model, accelerator, plan.held_out, eval_batch)}
    if plan.styles:
        scores["style_loss"] = evaluate(model, accelerator, plan.styles, eval_batch)
    if plan.key_share:
        data = plan.eval_data
        seq_len = plan.schedule.context.seq_len
        scores["key_share"] = measure_key_share(
            accelerator.unwrap_model(model), plan.key_share, data.tokenizer.vocab, data.vocab_size, seq_len
        )
    if final and plan.held_out_all is not None:
        scores["val_loss_all"] = evaluate(model, accelerator, plan.held_out_all, eval_batch)
        if plan.styles_all:
            scores["style_loss_all"] = evaluate(model, accelerator, plan.styles_all, eval_batch)
    return scores


def _boundary(
    plan: RunPlan,
    state: TrainState,
    done: int,
    before: tuple[int, bool],
    run_dir: Path,
    accelerator: Accelerator,
    model: torch.nn.Module,
    snapshot: bool,
) -> None:
    """When the stage being learned changes after step ``done`` (or the run enters an end phase
    that draws several stages: ``to`` is then ``end``), record where (tokens per stage) and, with
    ``snapshot``, save the model there (``boundaries/<n>-<stage>/``, probed by ``curricmusic run``). ``before`` is
    the schedule's phase at the step before (see ``Pacing.phase``)."""
    if done >= plan.total_steps:
        return
    after = plan.schedule.phase(done, state.schedule)
    if after == before:
        return
    names = plan.stage_names
    event = {
        "step": done,
        "from": names[before[0]],
        "to": names[after[0]] if after[0] >= 0 and after[0] != before[0] else "end",
        "tokens_seen": int(state.stage_tokens.sum()),
        "stage_tokens": {n: int(t) for n, t in zip(names, state.stage_tokens, strict=True)},
    }
    state.boundaries.append(event)
    if snapshot and accelerator.is_main_process:
        folder = run_dir / BOUNDARIES_DIR / f"{len(state.boundaries):02d}-{names[before[0]]}"
        save_model(accelerator.unwrap_model(model), folder)
        event["model"] = folder.relative_to(run_dir).as_posix()


def _matched_run(experiment: Experiment, arm_name: str, seed: int, run_dir: Path, given: str | Path | None) -> Path | None:
    """The finished run an arm that matches an adaptive arm reads (None for every other arm)."""
    arm = experiment.config.arm(arm_name)
    if arm.match is None or not experiment.config.arm(arm.match).options.adaptive:
        return None
    return Path(given) if given is not None else run_dir.parent / f"{arm.match}-seed{seed}"


def _last_scores(run_dir: Path, key: str) -> dict | None:
    """The last logged value of ``key`` in the run's metrics (the final evaluation's)."""
    rows = [row for row in read_metrics(run_dir) if key in row]
    return rows[-1][key] if rows else None


def _initial_weights(experiment: Experiment, model: MusicTransformer, plan: RunPlan, adapt: Adaptation | None) -> dict[str, Any]:
    """Load the weights a run starts from into ``model`` (built with the seed's fresh weights):
    ``adapt.init`` for an adaptation run (a run's ``model/`` folder or a shared one), else
    ``[train] init_from`` when set, for every arm alike. Returns what ``run.json`` records of it."""
    if adapt is not None:
        if adapt.init is not None:
            start_from(model, adapt.init, plan.data.tokenizer, f"{experiment.source}: adaptation of {adapt.label!r}")
        return {}  # run.json's adapt.init names the folder
    folder = experiment.config.train.init_from
    if folder is None:
        return {}
    digest = start_from(model, folder, plan.data.tokenizer, f"{experiment.source}: train.init_from")
    return {"init_from": {"path": str(folder), "weights_sha256": digest}}


def _run_info(experiment: Experiment, arm_name: str, seed: int, lr: float, plan: RunPlan, adapt: Adaptation | None) -> dict:
    names = [arm.name for arm in experiment.config.arms]
    arm = experiment.config.arm(arm_name).model_dump(mode="json") if adapt is None or arm_name in names else {"name": arm_name}
    adapted = None
    if adapt is not None:
        adapted = {
            "shots": adapt.shots,
            "style": plan.data.target_stage,
            "init": str(adapt.init) if adapt.init is not None else None,
            "pieces": plan.pieces,
            "train_tokens": plan.train_tokens,
        }
    return {
        "experiment": experiment.config.name,
        "experiment_file": experiment.source,
        "experiment_hash": config_hash(experiment.config),
        "config": experiment.config.model_dump(mode="json"),
        "arm": arm,
        "adapt": adapted,
        "seed": seed,
        "lr": lr,
        "lr_schedule": plan.cadence.lr_schedule,
        "total_steps": plan.total_steps,
        "stages": list(plan.stage_names),
        "prepared": str(plan.data.root),
        "prepared_fingerprint": plan.data.fingerprint,
        "eval_prepared": str(plan.eval_data.root),
        "tokenizer_hash": plan.data.tokenizer_hash,
        "target_stage": plan.eval_data.target_stage,
        "status": "running",
    }


def _summary(plan: RunPlan, state: TrainState, end_step: int, finished: bool) -> dict:
    per_stage = {name: int(n) for name, n in zip(plan.stage_names, state.stage_tokens, strict=True)}
    out = {
        "status": "finished" if finished else "stopped",
        "steps_done": end_step,
        "tokens_seen": int(state.stage_tokens.sum()),
        "target_tokens_seen": per_stage.get(plan.data.target_stage, 0),
        "stage_tokens": per_stage,
        "final_val_loss": state.last_val,
        "best_val_loss": state.best_val,
        "stage_boundaries": [dict(b) for b in state.boundaries],
    }
    record = plan.schedule.record(state.schedule)
    if record is not None:
        out["schedule"] = record
    return out


def _micro_batch(experiment: Experiment, world: int) -> int:
    train = experiment.config.train
    micro = train.micro_batch_size or max(1, train.batch_size // world)
    if train.batch_size % (micro * world):
        raise UserError(
            f"{experiment.source}: train.batch_size {train.batch_size} is not divisible by "
            f"micro_batch_size {micro} x {world} processes"
        )
    return micro


class _GroupExit:
    """Whether this process's last run returned normally: only then does it wait for the others
    at exit."""

    finished = False


@functools.cache
def _end_process_group_at_exit() -> None:
    """Leave the process group when the process exits (registered once per process).

    A two-process CPU run that had finished and written everything still exited -6 about one
    time in ten: the process that left first aborted in its shutdown ("terminate called without
    an active exception"). Destroying the group at exit alone did not cure it (1 in 18); waiting
    for every process and then destroying it did (0 in 50). Not at the end of each run: one
    process may train several runs (``curricmusic run`` under torchrun) with the one group."""
    import atexit

    atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    """Wait for every process (only after a run that returned normally: a process that failed
    mid-run must not wait for peers still inside a collective), then destroy the group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if _GroupExit.finished:
            dist.barrier()
        dist.destroy_process_group()


def _multi_cpu() -> bool:
    """True under torchrun / accelerate launch without CUDA: accelerate then uses gloo on CPUs."""
    import os

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or os.environ.get("LOCAL_RANK") is not None
    return launched and not torch.cuda.is_available()
