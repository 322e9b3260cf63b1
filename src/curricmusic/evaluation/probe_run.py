"""The probe of one finished run: key, mode and meter of held-out pieces, trained against untrained.

``probe.json`` in a run folder holds, per task, the cross-validated accuracy of a linear probe on
the run's final model, on the *initial* weights of its seed (rebuilt exactly as training built
them: the control every arm of the seed shares) and on the bag of input tokens (no network at
all), beside the majority-class rate. The pieces are the validation and test splits of every
stage of the experiment's curriculum (never trained on), their first ``seq_len`` tokens.

Tasks: ``key`` (24 classes: a generated piece's key, else the Krumhansl-Schmuckler estimate),
``mode`` (major / minor, the key's), ``meter`` (the time signature). Read them against their
controls: a random network's pooled features are close to a random projection of the bag of
input tokens, and the bag already holds a piece's pitch classes (hence much of its key) and its
time-signature token (hence its meter). What training added is the trained accuracy *above the
initial weights'*; ``mode`` is the transposition-controlled task: over pieces in every key, a
linear reader of pitch-class counts cannot tell major from minor (any rotation of a separating
hyperplane separates too, and their average is blind to pitch class), so a network has to have
built features for it.

For ``key`` and ``mode`` a second reader, ``expectation``, probes what the model *predicts*: its
next-pitch distribution folded to the 12 pitch classes and averaged over the note positions
(:mod:`curricmusic.evaluation.expectation`), for the trained model and the initial weights, beside
``heard``, the same probe on the pitches that actually came next (its ceiling), and ``neighbour``,
the probe on a key-blind predictor that expects the next pitch within a whole step of the last
note. An untrained model expects nothing in particular, so here the control stays close to chance;
a trained model shows it learned which notes a key allows only where it reads the key better
than ``neighbour`` does (in a scale, where the notes go already points to its key). For ``key``,
``scale_mass`` gives each profile's mean share on the labelled key's diatonic pitch classes
(7/12 for a uniform spread).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.atomic import write_json
from curricmusic.common.readback import read_json
from curricmusic.data.prepared import PreparedData
from curricmusic.evaluation.expectation import (
    expected_pitch_classes,
    heard_pitch_classes,
    neighbour_pitch_classes,
    pitch_class_table,
    scale_mass,
)
from curricmusic.evaluation.probe import (
    bag_of_tokens,
    cross_validated_accuracy,
    key_label,
    layer_features,
    meter_label,
)
from curricmusic.music.tokenizers import carries_pitch

__all__ = [
    "PROBE_FILE",
    "PROBE_TASKS",
    "EXPECTATION_TASKS",
    "PROBE_FOLDS",
    "ProbeSet",
    "heldout_probe_set",
    "non_pitch_tokens",
    "probe_features",
    "expectation_profiles",
    "probe_run",
    "probe_boundaries",
    "key_share_by_stage",
    "read_probe",
]

PROBE_FILE = "probe.json"
PROBE_TASKS = ("key", "mode", "meter")
EXPECTATION_TASKS = ("key", "mode")  # the tasks a pitch-class profile can answer
PROBE_FOLDS = 5


@dataclass
class ProbeSet:
    """Held-out pieces ``(N,)`` token arrays, where each comes from, and a label per task."""

    pieces: list[np.ndarray] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    labels: dict[str, list[str | None]] = field(default_factory=lambda: {task: [] for task in PROBE_TASKS})

    def subset(self, keep: Sequence[bool]) -> ProbeSet:
        rows = [i for i, k in enumerate(keep) if k]
        return ProbeSet(
            [self.pieces[i] for i in rows],
            [self.stages[i] for i in rows],
            [self.ids[i] for i in rows],
            {task: [values[i] for i in rows] for task, values in self.labels.items()},
        )


def heldout_probe_set(data: PreparedData, splits: Sequence[str] = ("val", "test"), stages: Sequence[str] | None = None) -> ProbeSet:
    """Every piece of ``splits`` of ``stages`` (default all) with its key, mode and meter."""
    out = ProbeSet()
    for stage in stages or data.stage_names:
        for split in splits:
            pieces = data.pieces(stage, split)
            if not pieces:
                continue
            notes = data.piece_notes(stage, split)
            for index, piece in enumerate(pieces):
                key = key_label(piece, notes[index])
                out.pieces.append(data.piece_tokens(stage, split, index))
                out.stages.append(stage)
                out.ids.append(str(piece.get("id", f"{stage}/{split}/{index}")))
                out.labels["key"].append(key)
                out.labels["mode"].append(None if key is None else key.split()[-1])
                out.labels["meter"].append(meter_label(piece))
    return out


def non_pitch_tokens(data: PreparedData) -> np.ndarray:
    """``(V,)`` bool: the token ids that carry no pitch (for pooling over structure positions)."""
    keep = np.ones(data.vocab_size, dtype=bool)
    for token, index in data.tokenizer.vocab.items():
        if carries_pitch(token):
            keep[index] = False
    return keep


def probe_features(models: dict, probe_set: ProbeSet, seq_len: int, vocab_size: int, layers: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Pooled features per model name (and ``bag_of_tokens``): ``{name: {layer: (N, D)}}``; only
    ``final`` unless ``layers``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, model in models.items():
        features = layer_features(model, probe_set.pieces, seq_len)
        out[name] = features if layers else {"final": features["final"]}
    out["bag_of_tokens"] = {"input": bag_of_tokens(probe_set.pieces, seq_len, vocab_size)}
    return out


def expectation_profiles(models: dict, probe_set: ProbeSet, seq_len: int, pitch_class: np.ndarray) -> dict[str, np.ndarray]:
    """Expected pitch-class profiles ``(N, 12)`` per model name, ``heard`` (the pitches that came
    next: the ceiling) and ``neighbour`` (the key-blind control: within a whole step of the last
    note)."""
    out = {name: expected_pitch_classes(model, probe_set.pieces, seq_len, pitch_class) for name, model in models.items()}
    out["heard"] = heard_pitch_classes(probe_set.pieces, seq_len, pitch_class)
    out["neighbour"] = neighbour_pitch_classes(probe_set.pieces, seq_len, pitch_class)
    return out


def _accuracy(features: np.ndarray, labels: Sequence[str | None], seed: int) -> tuple[float, float, int, int, int]:
    known = np.array([label is not None for label in labels], dtype=bool)
    chosen = [str(label) for label in labels if label is not None]
    accuracy, chance, folds = cross_validated_accuracy(features[known], chosen, PROBE_FOLDS, seed)
    return accuracy, chance, folds, int(known.sum()), len(set(chosen))


def probe_run(run_dir: str | Path, *, layers: bool = False, seed: int = 0) -> dict:
    """Probe a finished run (its ``model/``) and its seed's initial weights; write ``probe.json``.

    ``layers`` adds every layer's accuracy (embedding, each block, final) for both models.
    """
    import torch

    from curricmusic.common.run_folder import MODEL_DIR, read_run
    from curricmusic.model.initial import initial_model
    from curricmusic.model.transformer import load_model

    run_dir = Path(run_dir)
    info = read_run(run_dir)
    data = PreparedData.open(info["eval_prepared"])
    seq_len = int(info["config"]["train"]["seq_len"])
    probe_set = heldout_probe_set(data)
    models = {"trained": load_model(run_dir / MODEL_DIR), "initial": initial_model(info, data.vocab_size)}
    with torch.random.fork_rng():  # the probe draws nothing, but never disturb a caller's stream
        features = probe_features(models, probe_set, seq_len, data.vocab_size, layers)
        profiles = expectation_profiles(
            models, probe_set, seq_len, pitch_class_table(data.tokenizer.vocab, data.vocab_size)
        )
    tasks = {}
    for task in PROBE_TASKS:
        labels = probe_set.labels[task]
        entry: dict = {}
        for name, by_layer in features.items():
            for layer, x in by_layer.items():
                accuracy, chance, folds, n, classes = _accuracy(x, labels, seed)
                entry.update(n_pieces=n, n_classes=classes, chance=chance, folds=folds)
                if layer in ("final", "input"):
                    entry[name] = accuracy
                if layers and name != "bag_of_tokens":
                    entry.setdefault("layers", {}).setdefault(name, {})[layer] = accuracy
        entry["gain"] = entry["trained"] - entry["initial"]
        if task in EXPECTATION_TASKS:
            expected: dict[str, Any] = {name: _accuracy(x, labels, seed)[0] for name, x in profiles.items()}
            expected["gain"] = expected["trained"] - expected["initial"]
            if task == "key":
                expected["scale_mass"] = {
                    name: float(np.nanmean(scale_mass(x, labels))) for name, x in profiles.items()
                }
            entry["expectation"] = expected
        tasks[task] = entry
    key_labels = probe_set.labels["key"]
    by_stage = {name: key_share_by_stage(profiles[name], key_labels, probe_set.stages) for name in ("trained", "initial", "heard")}
    result = {
        "run": info.get("arm", {}).get("name"),
        "seed": info.get("seed"),
        "pieces": {
            "splits": ["val", "test"],
            "n": len(probe_set.pieces),
            "per_stage": {s: probe_set.stages.count(s) for s in dict.fromkeys(probe_set.stages)},
            "seq_len": seq_len,
        },
        "probe": {
            "model": "multinomial logistic regression, L2 1e-3, features standardised per fold",
            "folds": PROBE_FOLDS,
            "pooling": "mean over positions of the final hidden states",
            "expectation": "the same probe on the mean predicted pitch-class distribution over note positions (12 features)",
        },
        "tasks": tasks,
        "key_share_by_stage": by_stage,
        "boundaries": probe_boundaries(run_dir, info, probe_set, seq_len, data, seed),
    }
    write_json(run_dir / PROBE_FILE, result)
    return result


def key_share_by_stage(profiles: np.ndarray, keys: Sequence[str | None], stages: Sequence[str]) -> dict[str, float]:
    """The mean key share (:func:`~curricmusic.evaluation.expectation.scale_mass`) of the pieces
    of each stage that have a key."""
    masses = scale_mass(profiles, keys)
    out = {}
    for stage in dict.fromkeys(stages):
        mine = masses[[s == stage for s in stages]]
        out[stage] = float(np.nanmean(mine)) if np.isfinite(mine).any() else float("nan")
    return out


def probe_boundaries(run_dir: Path, info: dict, probe_set: ProbeSet, seq_len: int, data: PreparedData, seed: int = 0) -> list[dict]:
    """The expectation reader on each model a run saved where the stage being learned changed
    (``[probe] at_boundaries``): per boundary, the stage that ended, the step and tokens, the key
    read from the predicted pitch classes (cross-validated accuracy) and the key share per stage."""
    from curricmusic.model.transformer import load_model

    table = pitch_class_table(data.tokenizer.vocab, data.vocab_size)
    out = []
    for event in info.get("stage_boundaries") or []:
        if not event.get("model") or not (Path(run_dir) / event["model"]).is_dir():
            continue
        model = load_model(Path(run_dir) / event["model"])
        profiles = expected_pitch_classes(model, probe_set.pieces, seq_len, table)
        by_stage = key_share_by_stage(profiles, probe_set.labels["key"], probe_set.stages)
        out.append(
            {
                "stage": event["from"],
                "step": event["step"],
                "tokens_seen": event["tokens_seen"],
                "key_accuracy": _accuracy(profiles, probe_set.labels["key"], seed)[0],
                "key_share": by_stage.get(event["from"], float("nan")),
                "key_share_by_stage": by_stage,
            }
        )
    return out


def read_probe(run_dir: str | Path) -> dict | None:
    hint = "`curricmusic probe --force` writes it again"
    return read_json(Path(run_dir) / PROBE_FILE, {"tasks": dict}, missing_ok=True, hint=hint)
