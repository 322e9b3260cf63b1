"""A trained model loaded for sampling: a run folder, or a shared (exported) model folder.

A run folder (``curricmusic train``) gives the model, its tokenizer, what ran and the prepared
data it trained on. A shared folder (``curricmusic export``'s, or any Hugging Face GPT-NeoX folder
with a MidiTok ``tokenizer.json`` beside it) gives the model and tokenizer, and, when
``curricmusic.json`` describes these very weights, the run's sampling defaults and seed; it
carries no training data, so copy-blocking is not available for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import MODEL_DIR, RUN_FILE, TOKENIZER_FILE, read_run
from curricmusic.data.prepared import PreparedData
from curricmusic.model.hf_folder import is_hf_folder, load_hf_model
from curricmusic.model.transformer import MusicTransformer, load_model, weights_digest
from curricmusic.music.shared_tokenizer import load_folder_tokenizer
from curricmusic.music.tokenizers import Tokenizer, load_tokenizer

__all__ = ["EXPORT_FILE", "EXPORT_FORMAT", "LoadedRun", "load_run", "run_record", "read_export_record", "is_shared_folder"]

EXPORT_FILE = "curricmusic.json"  # an exported folder's provenance (curricmusic.experiment.export)
EXPORT_FORMAT = 1


@dataclass
class LoadedRun:
    run_dir: Path
    model: MusicTransformer
    tokenizer: Tokenizer
    info: dict[str, Any]
    checkpoint_sha256: str
    shared: bool = False  # a shared model folder: no prepared training data beside it
    notes: list[str] = field(default_factory=list)

    def prepared(self) -> PreparedData:
        if self.shared or not self.info.get("prepared"):
            raise UserError(f"{self.run_dir}: a shared model folder carries no training data")
        return PreparedData.open(self.info["prepared"])


def is_shared_folder(directory: str | Path) -> bool:
    """True for a model folder that is not a run folder: an export, or a Hugging Face folder."""
    directory = Path(directory)
    return not (directory / RUN_FILE).is_file() and is_hf_folder(directory)


def read_export_record(directory: str | Path) -> dict[str, Any] | None:
    """``curricmusic.json`` of an exported folder (None when absent or not ours)."""
    path = Path(directory) / EXPORT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: not readable JSON; export the run again") from None
    if not isinstance(record, dict) or record.get("made_by") != "curricmusic":
        return None
    if record.get("format") != EXPORT_FORMAT:
        raise UserError(f"{path}: format {record.get('format')!r} is not supported (expected {EXPORT_FORMAT})")
    return record


def _record_info(record: dict[str, Any] | None) -> dict[str, Any]:
    """A run-like ``info`` from an export record: what sampling reads (experiment, arm, seed and
    the ``[generate]`` section), and no prepared data."""
    if record is None:
        return {}
    run = record.get("run") or {}
    return {
        "experiment": run.get("experiment"),
        "arm": {"name": run.get("arm")},
        "seed": run.get("seed"),
        "config": {"generate": record.get("generate") or {}},
    }


def run_record(directory: str | Path) -> tuple[dict[str, Any], str]:
    """What ran and where it is recorded: ``run.json`` of a run folder, ``curricmusic.json`` of an
    exported one (``{}`` for a foreign model folder: every setting at its default)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such run folder (nor model folder)")
    if is_shared_folder(directory):
        return _record_info(read_export_record(directory)), str(directory / EXPORT_FILE)
    return read_run(directory), str(directory / RUN_FILE)


def _load_shared(directory: Path, device: str) -> LoadedRun:
    model = load_hf_model(directory, device=device)
    tokenizer = load_folder_tokenizer(directory)
    digest = weights_digest(model)
    record = read_export_record(directory)
    notes = []
    if record is not None and record.get("weights_sha256") != digest:
        notes.append(f"{EXPORT_FILE} describes other weights (changed since export?): its sampling defaults are not used")
        record = None
    return LoadedRun(directory, model, tokenizer, _record_info(record), digest, shared=True, notes=notes)


def load_run(run_dir: str | Path, device: str | None = None) -> LoadedRun:
    """The model and tokenizer of a run folder or a shared model folder, with a clear error when
    either is missing. ``device`` defaults to the GPU when there is one."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder")
    if is_shared_folder(run_dir):
        loaded = _load_shared(run_dir, device)
    else:
        info = read_run(run_dir)
        weights = run_dir / MODEL_DIR / "model.safetensors"
        if not weights.is_file():
            raise UserError(f"{run_dir}: no trained model yet ({weights} is missing); train or resume the run first")
        model = load_model(run_dir / MODEL_DIR, device=device).eval()
        tokenizer, _ = load_tokenizer(run_dir / TOKENIZER_FILE)
        # the weights' content hash: the same in every process for the same weights (a file hash is not)
        loaded = LoadedRun(run_dir, model, tokenizer, info, weights_digest(model))
    if len(loaded.tokenizer) != loaded.model.config.vocab_size:
        raise UserError(
            f"{run_dir}: the tokenizer has {len(loaded.tokenizer)} tokens but the model expects "
            f"{loaded.model.config.vocab_size}; the folder is inconsistent"
        )
    return loaded
