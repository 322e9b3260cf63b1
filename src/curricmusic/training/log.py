"""What a run logs: one ``metrics.jsonl`` row per logged step, optionally mirrored to TensorBoard.

A row holds ``step``, ``tokens_seen`` (real tokens trained on so far), ``target_tokens_seen``
(those of the target stage), ``stage_tokens`` (per stage), ``lr``, ``stage_weights`` (the step's
mixture), ``current_stage`` and ``train_loss``; ``window_len`` (the step's window length),
``tokens_per_s`` and, at evaluations, ``val_loss`` per stage are added by the loop. Step 0 is the untrained model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.progress import err_console
from curricmusic.common.run_folder import METRICS_FILE

__all__ = ["metrics_row", "MetricsLog", "weights_text"]


def metrics_row(
    step: int,
    stage_names: Sequence[str],
    stage_tokens: np.ndarray,
    target: str,
    lr: float,
    weights: np.ndarray,
    current: int,
    train_loss: float | None,
) -> dict[str, Any]:
    """One line of metrics.jsonl (the caller adds val_loss and timing)."""
    per_stage = {name: int(n) for name, n in zip(stage_names, stage_tokens, strict=True)}
    return {
        "step": step,
        "tokens_seen": int(np.sum(stage_tokens)),
        "target_tokens_seen": per_stage.get(target, 0),
        "stage_tokens": per_stage,
        "lr": lr,
        "stage_weights": dict(zip(stage_names, [round(float(w), 6) for w in weights], strict=True)),
        "current_stage": stage_names[current],
        "train_loss": train_loss,
    }


class MetricsLog:
    """Appends rows to ``metrics.jsonl`` (and TensorBoard) on the main process; a no-op elsewhere."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self.writer = _tensorboard(Path(run_dir)) if enabled and tensorboard else None

    def start(self, row: dict[str, Any]) -> None:
        """A fresh file holding only ``row`` (the untrained model's evaluation)."""
        if self.enabled:
            self.path.write_text(json.dumps(row) + "\n")

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        if self.writer is not None:
            _log_tensorboard(self.writer, row)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def weights_text(weights: dict[str, float]) -> str:
    """``scales 10%, chorales 90%`` for the progress bar."""
    return ", ".join(f"{name} {w:.0%}" for name, w in weights.items() if w >= 0.005)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        err_console.print("[yellow]tensorboard is not installed; pip install 'curricmusic[tensorboard]'[/]")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _log_tensorboard(writer: Any, row: dict[str, Any]) -> None:
    step = row["step"]
    writer.add_scalar("train/loss", row["train_loss"], step)
    writer.add_scalar("train/lr", row["lr"], step)
    writer.add_scalar("train/target_tokens_seen", row["target_tokens_seen"], step)
    for stage, weight in row["stage_weights"].items():
        writer.add_scalar(f"weights/{stage}", weight, step)
    for stage, loss in row.get("val_loss", {}).items():
        writer.add_scalar(f"val/{stage}", loss, step)
