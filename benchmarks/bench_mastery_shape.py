"""Training tokens/s of the mastery study's shape against the learning-order study's, same run.

    python benchmarks/bench_mastery_shape.py            # 100 steps of each, twice, interleaved
    python benchmarks/bench_mastery_shape.py --steps 200 --repeats 3

Both shapes train through the one training loop (``train_run``) on their own experiment's data
and model (experiments/mastery.toml: d 64, 2 layers, 16 x 128-token windows; the peer,
experiments/learning_order.toml: d 128, 3 layers, 16 x 128-token windows), with the evaluations
moved past the measured steps, so the figure is the loop's training throughput: what the study's
budget divides by. The two alternate (ours, peer, ours, peer, ...) so a slow phase of a shared
machine hits both; tokens/s is the best repeat's (contention only ever slows a run down). The
learning-order study's 61.5 minutes were measured at the peer's shape, so the ratio also scales
that study's wall time to this one's. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from curricmusic.config import experiment_from_config, load_experiment
from curricmusic.training.loop import train_run

REPO = Path(__file__).resolve().parents[1]
OURS = REPO / "experiments" / "mastery.toml"
PEER = REPO / "experiments" / "learning_order.toml"


def quiet(path: Path, steps: int):
    """The experiment of ``path`` with its evaluations and checkpoints beyond ``steps``: training only."""
    experiment = load_experiment(path)
    config = experiment.config
    train = config.train.model_copy(update={"eval_every": 10 * steps, "checkpoint_every": 10 * steps, "eval_pieces": 1})
    return experiment_from_config(config.model_copy(update={"train": train, "adapt": None, "claims": []}), str(path))


def tokens_per_second(experiment, arm: str, steps: int, folder: Path) -> float:
    """Real tokens per second of ``steps`` steps of ``arm``, set-up excluded (the loop's own rate)."""
    started = time.perf_counter()
    train_run(experiment, arm, 0, folder, stop_after=steps, show_progress=False)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    rate = rows[-1].get("tokens_per_s")
    return float(rate) if rate else steps * experiment.config.train.tokens_per_step / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ours, peer = quiet(OURS, args.steps), quiet(PEER, args.steps)
    rates: dict[str, list[float]] = {"ours": [], "peer": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for name, experiment, arm in (("ours", ours, "basics-only"), ("peer", peer, "target-only")):  # ours: plain batches, no matched run needed
                rates[name].append(tokens_per_second(experiment, arm, args.steps, Path(scratch) / f"{name}{repeat}"))
    best = {name: max(values) for name, values in rates.items()}
    print(
        json.dumps(
            {
                "benchmark": "mastery_shape_train_tokens_per_s",
                "ours": round(best["ours"]),
                "peer": round(best["peer"]),
                "ratio": round(best["ours"] / best["peer"], 3),
                "ours_shape": "d64 L2, 16 x 128 tokens (experiments/mastery.toml)",
                "peer_shape": "d128 L3, 16 x 128 tokens (experiments/learning_order.toml)",
                "steps": args.steps,
                "repeats": {name: [round(v) for v in values] for name, values in rates.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
