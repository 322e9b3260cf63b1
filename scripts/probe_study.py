"""What does a model trained on scales know about key and mode? The probe, checked on its own case.

Trains a model on generated scales only (every key, three variants per exercise), then probes
held-out scale pieces (validation + test) for their key (24 classes) and mode (major / minor),
at every layer, with mean pooling and with pooling over non-pitch positions, for the trained
model and for its initial weights, beside a linear probe on the bag of input tokens; then the
expectation reader (the predicted pitch classes, with ``heard`` and ``neighbour``). Prints one
JSON line per (model, layer, pooling, task) and writes them all to ``--out``.

    python scripts/probe_study.py --steps 300 --out probe_study.jsonl
    python scripts/probe_study.py --d-model 128 --layers 4 --seq-len 128 --steps 1000 --out probe_study.jsonl
    python scripts/probe_study.py --variants 8 --parts scales --motions separate --steps 2000 --lr 3e-3 --out probe_study.jsonl

The probe's settings (logistic regression, L2 1e-3, 5 stratified folds) are the ones
``curricmusic probe`` uses; nothing here is tuned to the result.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from curricmusic.config import load_experiment
from curricmusic.evaluation.expectation import pitch_class_table, scale_mass
from curricmusic.evaluation.probe import bag_of_tokens, cross_validated_accuracy, layer_features
from curricmusic.evaluation.probe_run import (
    EXPECTATION_TASKS,
    expectation_profiles,
    heldout_probe_set,
    non_pitch_tokens,
)
from curricmusic.model.transformer import load_model
from curricmusic.training.loop import train_run
from curricmusic.training.setup import build_model

CURRICULUM = """
name = "scales_only"
seed = 0
keys = ["all"]
target_stage = "scales"
[split]
val = 0.15
test = 0.15
[[stages]]
name = "scales"
source = "generated"
generator = "scales"
options = {{ variants = {variants}{extra} }}
"""

EXPERIMENT = """
name = "probe_study"
curriculum = "{curriculum}"
seeds = [{seed}]
[model]
size = "tiny"
d_model = {d_model}
n_layers = {layers}
n_heads = {heads}
dropout = 0.0
[train]
tokens = {tokens}
seq_len = {seq_len}
batch_size = {batch}
lr = {lr}
lr_schedule = "wsd"
eval_every = {steps}
log_every = 50
checkpoint_every = {steps}
[[arms]]
name = "scales"
pacing = "random"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="*", default=None, help="probe only generated pieces of these kinds (scale, arpeggio, chromatic)")
    parser.add_argument("--parts", nargs="*", default=None, help="generate only these parts (scales, chromatic, arpeggios)")
    parser.add_argument("--motions", nargs="*", default=None, help="generate only these motions (separate, parallel, contrary)")
    parser.add_argument("--work", type=Path, default=None, help="folder for the curriculum, experiment and run")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="probe_study_"))
    work.mkdir(parents=True, exist_ok=True)
    extra = "".join(
        f", {name} = {json.dumps(values)}"
        for name, values in (("parts", args.parts), ("motions", args.motions))
        if values
    )
    (work / "curriculum.toml").write_text(CURRICULUM.format(variants=args.variants, extra=extra))
    (work / "experiment.toml").write_text(
        EXPERIMENT.format(
            curriculum=work / "curriculum.toml", seed=args.seed, d_model=args.d_model, layers=args.layers,
            heads=args.heads, tokens=args.steps * args.batch * args.seq_len, seq_len=args.seq_len,
            batch=args.batch, lr=args.lr, steps=args.steps,
        )
    )  # fmt: skip
    experiment = load_experiment(work / "experiment.toml")
    run_dir = work / "run"
    started = time.perf_counter()
    train_run(experiment, "scales", args.seed, run_dir, resume=True, show_progress=False)
    train_s = time.perf_counter() - started
    info = json.loads((run_dir / "run.json").read_text())
    from curricmusic.data.prepared import PreparedData

    data = PreparedData.open(info["prepared"])
    probe_set = heldout_probe_set(data)
    if args.kinds:
        kinds = {p["id"]: (p.get("meta") or {}).get("kind") for s in data.stage_names for sp in ("val", "test") for p in data.pieces(s, sp)}
        probe_set = probe_set.subset([kinds.get(i) in args.kinds for i in probe_set.ids])
    models = {
        "trained": load_model(run_dir / "model"),
        "initial": build_model(experiment, data.vocab_size, args.seed),
    }
    keep = {"mean": (None, "mean"), "structure": (non_pitch_tokens(data), "mean"), "last": (None, "last")}
    setting = {k: v for k, v in vars(args).items() if k not in ("out", "work")} | {
        "n_pieces": len(probe_set.pieces), "train_s": round(train_s, 1), "final_val_loss": info["final_val_loss"],
    }  # fmt: skip
    rows = []
    for pooling, (mask, how) in keep.items():
        features = {("bag-of-tokens", "input"): bag_of_tokens(probe_set.pieces, args.seq_len, data.vocab_size, mask)}
        for name, model in models.items():
            for layer, x in layer_features(model, probe_set.pieces, args.seq_len, mask, pooling=how).items():
                features[(name, layer)] = x
        for (name, layer), x in features.items():
            for task, task_labels in probe_set.labels.items():
                known = [i for i, label in enumerate(task_labels) if label is not None]
                accuracy, chance, folds = cross_validated_accuracy(
                    x[known], [task_labels[i] for i in known]
                )
                row = {"model": name, "layer": layer, "pooling": pooling, "task": task,
                       "accuracy": round(accuracy, 4), "chance": round(chance, 4)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    # the expectation reader: key and mode from the predicted pitch classes, beside its ceiling
    # (the pitches heard) and the key-blind neighbour control; and the share on the key's scale
    profiles = expectation_profiles(
        models, probe_set, args.seq_len, pitch_class_table(data.tokenizer.vocab, data.vocab_size)
    )
    for name, x in profiles.items():
        for task in EXPECTATION_TASKS:
            labels = probe_set.labels[task]
            known = [i for i, label in enumerate(labels) if label is not None]
            accuracy, chance, _ = cross_validated_accuracy(x[known], [labels[i] for i in known])
            row = {"model": name, "layer": "prediction", "pooling": "expectation", "task": task,
                   "accuracy": round(accuracy, 4), "chance": round(chance, 4)}  # fmt: skip
            if task == "key":
                row["scale_mass"] = round(float(np.nanmean(scale_mass(x, labels))), 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
    with args.out.open("a") as handle:
        handle.write(json.dumps({"setting": setting, "rows": rows}) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
