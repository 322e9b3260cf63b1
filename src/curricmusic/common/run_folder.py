"""The run folder's format: the names of its files, and the readers and writers of its records.

A run folder holds::

    RUN_DIR/run.json         what ran: experiment, arm, seed, prepared data, status, summary
    RUN_DIR/metrics.jsonl    one JSON object per logged step
    RUN_DIR/checkpoint.pt    model, optimizer, schedule state, sampler and torch RNG states:
                             tensors and plain Python values only (loaded with
                             ``weights_only=True``, never unpickled) plus their content hash;
                             written and read by :mod:`curricmusic.training.checkpoint`
    RUN_DIR/model/           model.safetensors + config.json (loadable without training code)
    RUN_DIR/tokenizer.json   the tokenizer the model was trained with
    RUN_DIR/cell.json        written by ``curricmusic run`` once the cell is done (or failed)

Every layer that reads a run folder names its files through this module, so the format lives in
one place. Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curricmusic.common.atomic import atomic_path, write_json
from curricmusic.common.errors import UserError
from curricmusic.common.readback import read_json, read_jsonl

__all__ = [
    "RUN_FILE",
    "CHECKPOINT_FILE",
    "METRICS_FILE",
    "MODEL_DIR",
    "TOKENIZER_FILE",
    "CELL_FILE",
    "RUN_SCHEMA",
    "METRICS_SCHEMA",
    "is_run_folder",
    "read_run",
    "write_run",
    "read_metrics",
    "truncate_metrics",
]

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.jsonl"
MODEL_DIR = "model"
TOKENIZER_FILE = "tokenizer.json"
CELL_FILE = "cell.json"

#: What readers of run.json rely on (see curricmusic.common.readback).
RUN_SCHEMA = {"seed": int, "config": dict, "status": str}
#: What readers of metrics.jsonl rely on, per row.
METRICS_SCHEMA = {"step": int}


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` holds a ``run.json`` (a folder ``curricmusic train`` wrote)."""
    return (Path(path) / RUN_FILE).is_file()


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The ``run.json`` of ``run_dir``, validated: one line when there is none, or when it is
    damaged (naming it: ``train --resume`` writes it again)."""
    path = Path(run_dir) / RUN_FILE
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run folder (no {RUN_FILE}); train one with `curricmusic train`")
    info = read_json(path, RUN_SCHEMA, hint="`curricmusic train --resume` (or `run --resume`) writes it again")
    assert info is not None
    return info


def write_run(run_dir: str | Path, info: dict[str, Any]) -> None:
    write_json(Path(run_dir) / RUN_FILE, info)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of ``metrics.jsonl`` (none when there is no file); a torn last line (a killed
    writer) is ignored, any other damage is one line naming the file."""
    return read_jsonl(Path(run_dir) / METRICS_FILE, METRICS_SCHEMA)


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """Keep the rows up to ``last_step``: what a resumed run logs again must not appear twice."""
    kept = [row for row in read_metrics(run_dir) if row["step"] <= last_step]
    text = "".join(json.dumps(row) + "\n" for row in kept)
    with atomic_path(Path(run_dir) / METRICS_FILE) as tmp:
        tmp.write_text(text)
