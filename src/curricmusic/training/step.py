"""One optimizer step over a global batch of windows, split over processes and micro-batches.

The loss is the mean over every target token of the global batch, whatever the number of
processes: each micro-batch's mean is scaled by its share of the global batch's targets (times
the number of processes, which DDP's gradient averaging divides out), so 1 process and N
processes compute the same update.

A step whose gradients are not finite (a loss that overflowed, a learning rate far too large) is
not applied: the weights stay as they were, and the loop stops the run (see ``StepResult``).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from curricmusic.curriculum.windows import IGNORE_INDEX, WindowRefs, WindowSampler

if TYPE_CHECKING:  # annotations only: accelerate loads when a run starts
    from accelerate import Accelerator

__all__ = ["train_step", "StepResult"]


@dataclass(frozen=True)
class StepResult:
    loss: float  # token-mean loss of the global batch
    grad_norm: float  # of the whole model's gradient, before clipping (the same on every process)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss) and math.isfinite(self.grad_norm)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    sampler: WindowSampler,
    refs: WindowRefs,
    lr: float,
    micro: int,
    grad_clip: float,
) -> StepResult:
    """Train on the global batch ``refs`` at learning rate ``lr``; returns its token-mean loss and
    gradient norm. Non-finite gradients are not applied (the optimizer does not step)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    accumulation = len(refs) // (micro * world)
    global_targets = max(1, len(refs) * refs.length)  # packed windows: every target is a real token
    for group in optimizer.param_groups:
        group["lr"] = lr
    mine = refs.slice(rank * micro * accumulation, (rank + 1) * micro * accumulation)
    loss_sum = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    for m in range(accumulation):
        inputs, targets = sampler.gather(mine.slice(m * micro, (m + 1) * micro))  # (micro, T) each
        count = int((targets != IGNORE_INDEX).sum())
        x = torch.from_numpy(inputs).to(accelerator.device)
        y = torch.from_numpy(targets).to(accelerator.device)
        sync = m == accumulation - 1
        with accelerator.no_sync(model) if not sync else nullcontext(), accelerator.autocast():
            _, loss = model(x, y)
            # token-mean over the global batch; DDP divides by the number of processes
            scaled = loss * (count * world / global_targets) if count else loss * 0.0
            accelerator.backward(scaled)
        if count:
            loss_sum += float(loss.detach()) * count
    grad_norm = _grad_norm(model, accelerator, grad_clip)
    if math.isfinite(grad_norm):
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    total = accelerator.reduce(loss_sum, reduction="sum") if world > 1 else loss_sum
    return StepResult(float(total) / global_targets, grad_norm)


def _grad_norm(model: torch.nn.Module, accelerator: Accelerator, grad_clip: float) -> float:
    """The gradient's total 2-norm before clipping (clipping it to ``grad_clip`` when > 0)."""
    if grad_clip > 0:
        return float(accelerator.clip_grad_norm_(model.parameters(), grad_clip))
    grads = [p.grad.detach().norm(2) for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0
