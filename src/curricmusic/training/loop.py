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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, claim_folder
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.config import Experiment, config_hash
from curricmusic.curriculum.allocation import allocate, step_windows
from curricmusic.model.transformer import load_model, save_model, weights_digest
from curricmusic.training.compiled import (
    CompileDecision,
    compile_for_training,
    decide,
    deterministic_kernels,
)
from curricmusic.training.evaluate import evaluate
from curricmusic.training.log import MetricsLog, metrics_row, weights_text
from curricmusic.training.lr import LRSchedule, lr_schedule
from curricmusic.training.run_files import (
    CHECKPOINT_FILE,
    MODEL_DIR,
    RUN_FILE,
    TOKENIZER_FILE,
    load_checkpoint,
    read_run,
    restore_rng_states,
    rng_states,
    save_checkpoint,
    truncate_metrics,
    write_run,
)
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

__all__ = ["train_run", "TrainResult", "TrainState", "Adaptation", "prepared_for", "peak_lr"]


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

    def to_payload(self) -> dict:
        return {
            "step": self.step,
            "schedule_state": self.schedule,
            "debt": [float(d) for d in self.debt],
            "stage_tokens": [int(n) for n in self.stage_tokens],
            "best_val": dict(self.best_val),
            "last_val": dict(self.last_val),
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
) -> TrainResult:
    """Train one (arm, learning rate, seed) into ``run_dir``; with ``resume``, continue from its
    checkpoint. ``stop_after`` ends the run after that many steps as if it had been killed there:
    no checkpoint beyond the last regular one (tests of resume).

    With ``adapt``, an adaptation run instead: ``adapt.init``'s weights (or the seed's initial
    weights) fine-tuned on ``adapt.shots`` pieces of the ``[adapt]`` style with its budget,
    learning rate and cadence; ``arm_name`` is then only the model's label."""
    from accelerate import Accelerator

    train = experiment.config.train
    run_dir = Path(run_dir)
    check_folder(run_dir, kind="run")  # only a new, empty or curricmusic folder: before any work
    peak = peak_lr(experiment, arm_name, lr) if adapt is None else _adapt_lr(experiment)
    accelerator = Accelerator(mixed_precision=train.mixed_precision, cpu=_multi_cpu())
    if accelerator.num_processes > 1:
        _end_process_group_at_exit()
    _GroupExit.finished = False
    main = accelerator.is_main_process
    micro = _micro_batch(experiment, accelerator.num_processes)
    eval_batch = 2 * micro  # no activations kept for a backward pass: twice the training micro-batch fits
    with accelerator.main_process_first():
        if adapt is None:
            plan = plan_run(experiment, arm_name, seed, show_progress=show_progress and main)
        else:
            plan = plan_adaptation(experiment, seed, adapt.shots, show_progress=show_progress and main)

    model = build_model(experiment, plan.data.vocab_size, seed)
    if adapt is not None and adapt.init is not None:
        _load_initial_weights(model, adapt.init, plan)
    info = _run_info(experiment, arm_name, seed, peak, plan, adapt) | {"init_sha256": weights_digest(model)}
    checkpoint = _checkpoint_to_resume(run_dir, info, resume)
    optimizer = make_optimizer(model, experiment, peak)
    rng = np.random.default_rng([seed, 0x5EED])
    state = _resume(checkpoint, model, optimizer, rng, run_dir, main) if checkpoint else _fresh(plan, seed)
    compiled = _compile_step(model, decide(train.compile, plan.total_steps), checkpoint, main)
    info["compile"] = compiled.to_dict()
    model, optimizer = accelerator.prepare(model, optimizer)
    if main:
        claim_folder(run_dir, "run")
        write_run(run_dir, info)
        shutil.copyfile(plan.data.root / "tokenizer.json", run_dir / TOKENIZER_FILE)
    log = MetricsLog(run_dir, main, train.tensorboard)
    cadence = plan.cadence
    schedule = lr_schedule(
        cadence.lr_schedule, peak, plan.total_steps, cadence.warmup_fraction, cadence.min_lr_ratio, cadence.decay_fraction
    )
    if state.step == 0:  # the untrained model's losses: every curve starts from the same point
        state.record_val(evaluate(model, accelerator, plan.held_out, eval_batch))
        log.start(_row(plan, state, 0, schedule(0), None) | {"val_loss": state.last_val})

    end_step = plan.total_steps if stop_after is None else min(plan.total_steps, state.step + stop_after)
    started, first_step = time.perf_counter(), state.step
    label = f"{arm_name} seed {seed}" if adapt is None else f"adapt {arm_name} seed {seed}, {adapt.shots} pieces"
    with progress_bar(label, plan.total_steps, show_progress and main) as update:
        update(advance=0, completed=state.step)
        while state.step < end_step:
            with deterministic_kernels(compiled.compiled and accelerator.device.type == "cpu"):
                row = _one_step(model, optimizer, accelerator, plan, state, rng, schedule, micro, train.grad_clip)
            done = state.step
            evaluated = done % cadence.eval_every == 0 or done == plan.total_steps
            if evaluated:
                state.record_val(evaluate(model, accelerator, plan.held_out, eval_batch))
                row["val_loss"] = state.last_val
            state.schedule = plan.schedule.update(done - 1, state.schedule, state.last_val if evaluated else None)
            tokens_per_s = (done - first_step) * train.tokens_per_step / max(1e-9, time.perf_counter() - started)
            if done % cadence.log_every == 0 or evaluated or done == end_step:
                log.append(row | {"tokens_per_s": tokens_per_s})
            update(info=f"loss {row['train_loss']:.3f} | {weights_text(row['stage_weights'])} | {tokens_per_s:,.0f} tok/s")
            if done % cadence.checkpoint_every == 0 or done == plan.total_steps:
                accelerator.wait_for_everyone()
                if main:
                    _save(run_dir, accelerator.unwrap_model(model), optimizer, state, rng, info)
    log.close()
    finished = end_step == plan.total_steps
    info.update(_summary(plan, state, end_step, finished))
    if finished:  # the test split, scored once, by the final model
        info["test_loss"] = evaluate(model, accelerator, heldout_sets(experiment, plan.eval_data, "test"), eval_batch)
    if main:
        write_run(run_dir, info)
    _GroupExit.finished = True
    return TrainResult(run_dir, end_step, state.last_val, int(checkpoint["step"]) if checkpoint else None)


def _one_step(
    model, optimizer, accelerator, plan: RunPlan, state: TrainState, rng, schedule: LRSchedule, micro: int, grad_clip: float
) -> dict:
    """Draw and train on one global batch; advance the state; return the step's metrics row."""
    step = state.step
    mixture = plan.schedule.mixture(step, state.schedule)
    context = plan.schedule.context
    # shorter windows (sequence-length warm-up): more of them, the same real tokens per step
    windows, factor = step_windows(mixture.seq_len, context.batch_size, context.seq_len)
    counts, state.debt = allocate(mixture.weights, state.debt, windows)
    refs = plan.sampler.draw(rng, counts, mixture)
    lr = schedule(step)
    loss = train_step(model, optimizer, accelerator, plan.sampler, refs, lr, micro * factor, grad_clip)
    state.stage_tokens = state.stage_tokens + counts * refs.length
    state.step = step + 1
    current = plan.schedule.current_stage(step, state.schedule)
    row = metrics_row(state.step, plan.stage_names, state.stage_tokens, plan.data.target_stage, lr, mixture.weights, current, loss)
    return row | {"window_len": refs.length}


def _compile_step(model, decision: CompileDecision, checkpoint: dict | None, main: bool) -> CompileDecision:
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


def _resume(checkpoint: dict, model, optimizer, rng, run_dir: Path, main: bool) -> TrainState:
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


def _save(run_dir: Path, model, optimizer, state: TrainState, rng, info: dict) -> None:
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


def _adapt_lr(experiment: Experiment) -> float:
    if experiment.config.adapt is None:
        raise UserError(f"{experiment.source}: no [adapt] section: nothing to adapt")
    return experiment.config.adapt.lr


def _load_initial_weights(model, init: Path, plan: RunPlan) -> None:
    """Start from the model saved in ``init`` (a run's ``model/`` folder; its content hash is
    checked), after checking it is this experiment's model over the same tokens."""
    loaded = load_model(init)
    if loaded.config.to_dict() != model.config.to_dict():
        raise UserError(f"{init}: a model of another shape than the experiment's; adapt the experiment's own runs")
    run_file = init.parent / RUN_FILE
    if run_file.is_file() and read_run(init.parent).get("tokenizer_hash") != plan.data.tokenizer_hash:
        raise UserError(f"{init}: trained with another tokenizer than the adaptation style's {plan.data.root}")
    model.load_state_dict(loaded.state_dict())


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
    return {
        "status": "finished" if finished else "stopped",
        "steps_done": end_step,
        "tokens_seen": int(state.stage_tokens.sum()),
        "target_tokens_seen": per_stage.get(plan.data.target_stage, 0),
        "stage_tokens": per_stage,
        "final_val_loss": state.last_val,
        "best_val_loss": state.best_val,
    }


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
