"""The one training loop. Every arm runs through :func:`train_run`; only the schedule differs.

A step draws one global batch of windows (``train.batch_size``) from the arm's schedule, splits
it over processes and micro-batches, and averages the loss over every counted target token of
the global batch, so 1 process and N processes compute the same update. accelerate places the
model, wraps it for DDP and handles mixed precision; the loop knows nothing about music.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, claim_folder
from curricmusic.common.progress import err_console, progress_bar
from curricmusic.config import Experiment, config_hash
from curricmusic.curriculum.pacing import arm_stage_order, build_schedule
from curricmusic.curriculum.windows import IGNORE_INDEX, WindowSampler, eval_windows
from curricmusic.data.prepared import PreparedData
from curricmusic.model.transformer import ModelConfig, MusicTransformer, save_model
from curricmusic.training.run_files import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_DIR,
    TOKENIZER_FILE,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
    truncate_metrics,
    write_run,
)

__all__ = ["train_run", "lr_at", "TrainResult", "prepared_for"]


def lr_at(step: int, total_steps: int, peak: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to ``peak`` over ``warmup_steps``, then cosine decay to ``peak * min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    final_val: dict[str, float]
    resumed_from: int | None


def prepared_for(experiment: Experiment, arm_name: str | None = None, show_progress: bool = True) -> PreparedData:
    """The prepared data of the experiment's curriculum (or an arm's own), built if needed."""
    from curricmusic.data.prepare import prepare
    from curricmusic.data.summary import default_prepared_dir

    config = experiment.config
    curriculum = experiment.arm_curricula[arm_name] if arm_name else experiment.curriculum
    if curriculum is experiment.curriculum and config.prepared is not None:
        folder = config.prepared
    else:
        folder = default_prepared_dir(curriculum)
    return prepare(curriculum, folder, show_progress=show_progress, source=experiment.source).data


def _build_model(experiment: Experiment, vocab_size: int, seed: int) -> MusicTransformer:
    section = experiment.config.model
    overrides = {k: v for k, v in section.model_dump().items() if k not in ("size", "dropout") and v is not None}
    try:
        config = ModelConfig.from_size(
            section.size, vocab_size, max_seq_len=experiment.config.train.seq_len, dropout=section.dropout, **overrides
        )
    except ValueError as exc:
        raise UserError(f"{experiment.source}: model: {exc}") from None
    torch.manual_seed(seed)  # the same initial weights for every arm of a seed: paired comparisons
    return MusicTransformer(config)


def _optimizer(model: torch.nn.Module, experiment: Experiment) -> torch.optim.Optimizer:
    train = experiment.config.train
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:  # one fused kernel for every parameter: measurably faster on CPU and GPU alike
        return torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=train.lr, betas=(train.beta1, train.beta2))


def _evaluate(model, accelerator, held_out: dict[str, tuple[np.ndarray, np.ndarray]], micro: int) -> dict[str, float]:
    """Token-mean validation loss per stage over the fixed held-out windows (all processes)."""
    model.eval()
    losses = {}
    rank, world = accelerator.process_index, accelerator.num_processes
    with torch.no_grad():
        for stage, (inputs, targets) in held_out.items():
            totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
            rows = np.arange(inputs.shape[0])[rank::world]
            for lo in range(0, rows.shape[0], micro):
                chunk = rows[lo : lo + micro]
                x = torch.from_numpy(inputs[chunk]).to(accelerator.device)
                y = torch.from_numpy(targets[chunk]).to(accelerator.device)
                with accelerator.autocast():
                    _, loss = model(x, y)
                count = int((y != IGNORE_INDEX).sum())
                if count:
                    totals += torch.tensor([float(loss) * count, count], dtype=torch.float64, device=accelerator.device)
            totals = accelerator.reduce(totals, reduction="sum") if world > 1 else totals
            losses[stage] = float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")
    model.train()
    return losses


def _run_info(experiment: Experiment, arm_name: str, seed: int, data: PreparedData, eval_data: PreparedData) -> dict:
    return {
        "experiment": experiment.config.name,
        "experiment_file": experiment.source,
        "experiment_hash": config_hash(experiment.config),
        "config": experiment.config.model_dump(mode="json"),
        "arm": experiment.config.arm(arm_name).model_dump(mode="json"),
        "seed": seed,
        "prepared": str(data.root),
        "prepared_fingerprint": data.fingerprint,
        "eval_prepared": str(eval_data.root),
        "tokenizer_hash": data.tokenizer_hash,
        "target_stage": eval_data.target_stage,
        "status": "running",
    }


def train_run(
    experiment: Experiment,
    arm_name: str,
    seed: int,
    run_dir: str | Path,
    *,
    resume: bool = False,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train one (arm, seed) into ``run_dir``; with ``resume``, continue from its checkpoint.

    ``stop_after`` ends the run after that many steps as if it had been killed there: no
    checkpoint beyond the last regular one (tests of resume).
    """
    from accelerate import Accelerator

    config, train = experiment.config, experiment.config.train
    arm = config.arm(arm_name)
    run_dir = Path(run_dir)
    check_folder(run_dir, kind="run")  # only a new, empty or curricmusic folder: before any work
    accelerator = Accelerator(mixed_precision=train.mixed_precision, cpu=_multi_cpu())
    world, rank = accelerator.num_processes, accelerator.process_index
    micro = train.micro_batch_size or max(1, train.batch_size // world)
    if train.batch_size % (micro * world):
        raise UserError(
            f"{experiment.source}: train.batch_size {train.batch_size} is not divisible by "
            f"micro_batch_size {micro} x {world} processes"
        )
    accumulation = train.batch_size // (micro * world)

    with accelerator.main_process_first():
        eval_data = prepared_for(experiment, show_progress=show_progress and accelerator.is_main_process)
        data = eval_data
        if experiment.arm_curricula[arm_name] is not experiment.curriculum:
            data = prepared_for(experiment, arm_name, show_progress=show_progress and accelerator.is_main_process)
    if data.tokenizer_hash != eval_data.tokenizer_hash:
        raise UserError(f"{data.root}: prepared with another tokenizer than {eval_data.root}")

    info = _run_info(experiment, arm_name, seed, data, eval_data)
    checkpoint = None
    if resume and (run_dir / CHECKPOINT_FILE).is_file():
        checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
        saved = checkpoint["run"]
        for key in ("experiment_hash", "seed", "arm"):
            if saved[key] != info[key]:
                raise UserError(f"{run_dir}: holds a run with another {key.replace('_', ' ')}; use a new --out folder")
        if saved["tokenizer_hash"] != data.tokenizer_hash:
            raise UserError(
                f"{run_dir}: its checkpoint was trained with tokenizer {saved['tokenizer_hash']}, but the prepared "
                f"cache {data.root} was built with tokenizer {data.tokenizer_hash}; prepare the data with the run's curriculum"
            )
    elif not resume and (run_dir / CHECKPOINT_FILE).is_file():
        raise UserError(f"{run_dir}: already holds a run; pass --resume to continue it or choose another --out")

    stage_names = arm_stage_order(arm, data.stage_names, data.target_stage, seed)
    for stage in stage_names:
        if not data.pieces(stage, "train"):
            raise UserError(f"{data.root}: stage {stage!r} has no training pieces; arm {arm_name!r} cannot use it")
    difficulties = [np.array([p["difficulty"] or 0.0 for p in data.pieces(s, "train")]) for s in stage_names]
    token_counts = [np.diff(data.offsets(s, "train")) for s in stage_names]
    schedule = build_schedule(
        arm, stage_names, difficulties, token_counts, data.target_stage, train.total_steps, train.tokens_per_step, seed
    )
    sampler = WindowSampler(data, stage_names, train.seq_len, ranks=schedule.stages.ranks)
    held_out = {s: eval_windows(eval_data, s, train.seq_len, train.eval_windows) for s in eval_data.stage_names}

    model = _build_model(experiment, data.vocab_size, seed)
    optimizer = _optimizer(model, experiment)
    rng = np.random.default_rng([seed, 0x5EED])
    state = schedule.initial_state()
    start_step = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["schedule_state"]
        start_step = int(checkpoint["step"])
        restore_rng_states(checkpoint["rng"], rng)
        if accelerator.is_main_process:
            truncate_metrics(run_dir, start_step)
    else:
        torch.manual_seed(seed + 1)  # dropout stream, independent of the initial weights
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)

    if accelerator.is_main_process:
        claim_folder(run_dir, "run")
        write_run(run_dir, info)
        shutil.copyfile(data.root / "tokenizer.json", run_dir / TOKENIZER_FILE)
    writer = _tensorboard(run_dir) if train.tensorboard and accelerator.is_main_process else None

    warmup = int(round(train.warmup_fraction * train.total_steps))
    last_val: dict[str, float] = {}
    end_step = train.total_steps if stop_after is None else min(train.total_steps, start_step + stop_after)
    started, tokens_timed = time.perf_counter(), 0
    if start_step == 0:  # the untrained model's losses: every curve starts from the same point
        initial = _evaluate(model, accelerator, held_out, micro)
        if accelerator.is_main_process:
            row = _row(0, train, 0.0, stage_names, schedule.mixture(0, state), schedule.current_stage(0, state), None)
            row["val_loss"] = initial
            with open(run_dir / METRICS_FILE, "w") as handle:
                handle.write(json.dumps(row) + "\n")
    with progress_bar(f"{arm_name} seed {seed}", train.total_steps, show_progress and accelerator.is_main_process) as update:
        update(advance=0, completed=start_step)
        for step in range(start_step, end_step):
            lr = lr_at(step, train.total_steps, train.lr, warmup, train.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            mixture = schedule.mixture(step, state)
            refs = sampler.draw(rng, train.batch_size, mixture)
            valid = sampler.valid_targets(refs)
            valid_total = max(1, int(valid.sum()))
            mine = refs.slice(rank * micro * accumulation, (rank + 1) * micro * accumulation)
            loss_sum = torch.zeros((), dtype=torch.float64, device=accelerator.device)
            for m in range(accumulation):
                part = mine.slice(m * micro, (m + 1) * micro)
                inputs, targets = sampler.gather(part)
                count = int((targets != -100).sum())
                x = torch.from_numpy(inputs).to(accelerator.device)
                y = torch.from_numpy(targets).to(accelerator.device)
                sync = m == accumulation - 1
                with accelerator.no_sync(model) if not sync else nullcontext(), accelerator.autocast():
                    _, loss = model(x, y)
                    # token-mean over the global batch; DDP divides by the number of processes
                    scaled = loss * (count * world / valid_total) if count else loss * 0.0
                    accelerator.backward(scaled)
                if count:
                    loss_sum += float(loss.detach()) * count
            if train.grad_clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            train_loss = float(accelerator.reduce(loss_sum, reduction="sum") if world > 1 else loss_sum) / valid_total
            done = step + 1
            evaluate = done % train.eval_every == 0 or done == train.total_steps
            val = _evaluate(model, accelerator, held_out, micro) if evaluate else None
            if val is not None:
                last_val = val
            state = schedule.update(step, state, val)
            tokens_timed += train.tokens_per_step
            if accelerator.is_main_process and (done % train.log_every == 0 or val is not None or done == end_step):
                elapsed = max(1e-9, time.perf_counter() - started)
                row = _row(done, train, lr, stage_names, mixture, schedule.current_stage(step, state), train_loss)
                row["tokens_per_s"] = tokens_timed / elapsed
                if val is not None:
                    row["val_loss"] = val
                with open(run_dir / METRICS_FILE, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                if writer is not None:
                    _log_tensorboard(writer, row)
            update(info=f"loss {train_loss:.3f} | {_weights_text(stage_names, mixture.weights)} | {tokens_timed / max(1e-9, time.perf_counter() - started):,.0f} tok/s")
            if done % train.checkpoint_every == 0 or done == train.total_steps:
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    _save(run_dir, raw_model, optimizer, state, done, rng, info)
    if writer is not None:
        writer.close()
    finished = end_step == train.total_steps
    if accelerator.is_main_process:
        info["status"] = "finished" if finished else "stopped"
        info["steps_done"] = end_step
        info["final_val_loss"] = last_val
        write_run(run_dir, info)
    return TrainResult(run_dir, end_step, last_val, start_step if checkpoint is not None else None)


def _row(step: int, train, lr: float, stage_names, mixture, current: int, train_loss: float | None) -> dict:
    """One line of metrics.jsonl (the caller adds val_loss and timing)."""
    return {
        "step": step,
        "tokens_seen": step * train.tokens_per_step,
        "lr": lr,
        "stage_weights": dict(zip(stage_names, [round(float(w), 6) for w in mixture.weights], strict=True)),
        "current_stage": stage_names[current],
        "train_loss": train_loss,
    }


def _multi_cpu() -> bool:
    """True under torchrun / accelerate launch without CUDA: accelerate then uses gloo on CPUs."""
    import os

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or os.environ.get("LOCAL_RANK") is not None
    return launched and not torch.cuda.is_available()


def _weights_text(names, weights) -> str:
    shown = [f"{n} {w:.0%}" for n, w in zip(names, weights, strict=True) if w >= 0.005]
    return ", ".join(shown)


def _save(run_dir: Path, model, optimizer, state, step: int, rng, info: dict) -> None:
    payload = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule_state": state,
        "rng": rng_states(rng),
        "run": info,
    }
    save_checkpoint(run_dir / CHECKPOINT_FILE, payload)
    save_model(model, run_dir / MODEL_DIR)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        err_console.print("[yellow]tensorboard is not installed; pip install 'curricmusic[tensorboard]'[/]")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _log_tensorboard(writer, row: dict) -> None:
    step = row["step"]
    writer.add_scalar("train/loss", row["train_loss"], step)
    writer.add_scalar("train/lr", row["lr"], step)
    for stage, weight in row["stage_weights"].items():
        writer.add_scalar(f"weights/{stage}", weight, step)
    for stage, loss in row.get("val_loss", {}).items():
        writer.add_scalar(f"val/{stage}", loss, step)
