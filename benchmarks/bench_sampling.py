"""What the novelty measure costs per cell: sampling and scoring N samples, with and without blocking.

    python benchmarks/bench_sampling.py RUN_DIR [--n 32] [--peer-n 4]

On a trained run folder (e.g. ``runs/quickstart/runs/pedagogy-seed0``) with the quickstart's
[generate] and [novelty] settings: draws ``--n`` samples with copy-blocking, the unblocked twin
(copied when blocking removed nothing, drawn again otherwise), and scores both sets, the way
``curricmusic run`` finishes a cell; then the same with ``--peer-n`` samples (the quickstart's
earlier setting). Embeddings of the bank and the calibration sets are warmed first, so the figure
is the per-cell cost that remains once the first cell has paid for them. Prints one JSON line:
wall seconds and process CPU seconds for each, and the ratio. On a shared machine the CPU
seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def finish(run_dir: Path, out: Path, n: int) -> tuple[float, float]:
    """Wall and CPU seconds of sampling + scoring n samples twice (blocked, unblocked)."""
    from curricmusic.config import load_experiment
    from curricmusic.config.generation import GenerationSettings
    from curricmusic.experiment.runner import _unblocked_twin
    from curricmusic.generation.generate import generate_samples
    from curricmusic.novelty.pipeline import score_novelty

    experiment = load_experiment(REPO / "experiments" / "quickstart.toml")
    section = experiment.config.generate
    settings = GenerationSettings(
        n=n, seed=0, max_bars=section.max_bars, max_tokens=section.max_tokens, temperature=section.temperature,
        top_p=section.top_p, copy_blocking=True, max_copy_notes=section.max_copy_notes,
    )  # fmt: skip
    wall, cpu = time.perf_counter(), _cpu()
    generate_samples(run_dir, out / "samples", settings, show_progress=False)
    score_novelty(out / "samples", run_dir, out / "novelty", experiment.config.novelty, show_progress=False)
    unblocked = settings.model_copy(update={"copy_blocking": False})
    if not _unblocked_twin(out / "samples", out / "samples-unblocked", unblocked):
        generate_samples(run_dir, out / "samples-unblocked", unblocked, show_progress=False)
    score_novelty(out / "samples-unblocked", run_dir, out / "novelty-unblocked", experiment.config.novelty, show_progress=False)
    return time.perf_counter() - wall, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--peer-n", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        finish(args.run_dir, Path(tmp) / "warm", 2)  # fills the embedding cache and copy index
        ours = finish(args.run_dir, Path(tmp) / "ours", args.n)
        peer = finish(args.run_dir, Path(tmp) / "peer", args.peer_n)
        twin = (Path(tmp) / "ours" / "samples-unblocked" / "manifest.json").read_text()
        shutil.rmtree(Path(tmp) / "warm", ignore_errors=True)
    print(json.dumps({
        "benchmark": "sampling.per_cell",
        "ours": f"{args.n} samples, blocked + unblocked, both scored",
        "ours_wall_s": round(ours[0], 1), "ours_cpu_s": round(ours[1], 1),
        "peer": f"{args.peer_n} samples, the same",
        "peer_wall_s": round(peer[0], 1), "peer_cpu_s": round(peer[1], 1),
        "ratio_wall": round(ours[0] / peer[0], 2),
        "unblocked_twin_copied": "same_as_blocked" in twin,
        "load_average": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }))  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
