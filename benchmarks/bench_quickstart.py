"""Wall time of the README's main job: the quickstart experiment from a cold cache.

    python benchmarks/bench_quickstart.py [--warm]

Runs ``curricmusic run experiments/quickstart.toml`` in a subprocess with an empty cache folder
(so it includes converting the music21 chorales, preparing the curriculum, building the copy
index and embedding the novelty bank) and reports the time against the 15-minute goal on this
machine. ``--warm`` reuses the default cache instead (what a second ``make demo`` costs when the
runs themselves are new).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="keep the user's cache (prepared data, conversions)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not args.warm:
            env["CURRICMUSIC_CACHE"] = str(Path(tmp) / "cache")
        command = [sys.executable, "-m", "curricmusic", "run", str(REPO / "experiments" / "quickstart.toml"), "--out", str(Path(tmp) / "out")]
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(done.returncode)
        results = json.loads((Path(tmp) / "out" / "results.json").read_text())
    runs = results["runs"]
    for run in runs:
        if run["status"] != "done":
            print(f"{run['arm']} seed {run['seed']}: {run.get('error')}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "quickstart.wall_time",
        "cache": "warm" if args.warm else "cold",
        "ours_s": round(seconds, 1),
        "peer": "the goal: 15 minutes on 2 CPU cores",
        "peer_s": GOAL_S,
        "ratio": round(GOAL_S / seconds, 3),
        "met": seconds <= GOAL_S and all(r["status"] == "done" for r in runs),
        "runs_done": sum(r["status"] == "done" for r in runs),
        "runs": len(runs),
        "final_val_target": {a: v["summary"]["final_val_target"]["mean"] for a, v in results["arms"].items()},
        "cpus": os.cpu_count(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
