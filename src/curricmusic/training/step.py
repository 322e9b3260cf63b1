"""One optimizer step over a global batch of windows, split over processes and micro-batches.

The loss is the mean over every target token of the global batch, whatever the number of
processes: each micro-batch's mean is scaled by its share of the global batch's targets (times
the number of processes, which DDP's gradient averaging divides out), so 1 process and N
processes compute the same update.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING

import torch

from curricmusic.curriculum.windows import IGNORE_INDEX, WindowRefs, WindowSampler

if TYPE_CHECKING:  # annotations only: accelerate loads when a run starts
    from accelerate import Accelerator

__all__ = ["train_step"]


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    sampler: WindowSampler,
    refs: WindowRefs,
    lr: float,
    micro: int,
    grad_clip: float,
) -> float:
    """Train on the global batch ``refs`` at learning rate ``lr``; returns its token-mean loss."""
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
    if grad_clip > 0:
        accelerator.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    total = accelerator.reduce(loss_sum, reduction="sum") if world > 1 else loss_sum
    return float(total) / global_targets
