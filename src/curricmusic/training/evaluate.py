"""Held-out loss: the token mean over every scored target of a split, per stage, on all processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from curricmusic.curriculum.heldout import HeldOut
from curricmusic.curriculum.windows import IGNORE_INDEX

if TYPE_CHECKING:  # annotations only: accelerate loads when a run starts
    from accelerate import Accelerator

__all__ = ["evaluate"]


def evaluate(model: torch.nn.Module, accelerator: Accelerator, held_out: dict[str, HeldOut], batch_size: int) -> dict[str, float]:
    """Mean loss per stage over every scored target of its held-out windows.

    Processes take every ``world``-th window; each micro-batch is cut to its longest row (rows are
    stored longest first, and causal attention never looks past a row's end), and the sums of the
    losses and target counts are reduced over processes. Always eager (see the comment below).
    """
    was_training = model.training
    model.eval()
    # the module's own forward: eager even when its calls are compiled for training (fixed
    # shapes), since held-out batches vary in width; no DDP wrapper is needed without gradients
    forward = accelerator.unwrap_model(model).forward
    losses: dict[str, float] = {}
    rank, world = accelerator.process_index, accelerator.num_processes
    with torch.inference_mode():
        for stage, windows in held_out.items():
            totals = torch.zeros(2, dtype=torch.float64, device=accelerator.device)
            rows = np.arange(len(windows))[rank::world]
            for lo in range(0, rows.shape[0], batch_size):
                chunk = rows[lo : lo + batch_size]
                width = int(windows.lengths[chunk].max())
                x = torch.from_numpy(windows.inputs[chunk, :width]).to(accelerator.device)  # (b, width)
                y = torch.from_numpy(windows.targets[chunk, :width]).to(accelerator.device)
                count = int((y != IGNORE_INDEX).sum())
                if not count:
                    continue
                with accelerator.autocast():
                    _, loss = forward(x, y)
                totals += torch.tensor([float(loss) * count, count], dtype=torch.float64, device=accelerator.device)
            totals = accelerator.reduce(totals, reduction="sum") if world > 1 else totals
            losses[stage] = float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")
    model.train(was_training)
    return losses
