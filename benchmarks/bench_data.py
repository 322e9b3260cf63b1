"""Data preparation throughput against plain MidiTok tokenization of the same files.

    python benchmarks/bench_data.py [--quick] [--files N]

Builds a folder of real MIDI files (Bach chorales from the music21 corpus and generated etudes and
Hanon exercises), then times, in the same run:
  - peer: plain MidiTok, one process: ``tokenizer.encode(Score(path))`` for every file;
  - ours: ``curricmusic data prepare FOLDER`` end to end (parse, checks, dedup, splits, difficulty,
    tokens, caches, manifest) with 1 and with 2 worker processes;
  - reading a training batch from the token cache against re-tokenizing the files it came from.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from curricmusic.config import Music21Stage, TokenizerSettings, curriculum_from_midi_dir
from curricmusic.curriculum.pacing import Mixture
from curricmusic.curriculum.windows import WindowSampler
from curricmusic.data.pedagogy import generate
from curricmusic.data.prepare import prepare
from curricmusic.data.sources import music21_items
from curricmusic.music.tokenizers import build_tokenizer


def build_folder(root: Path, n_files: int) -> list[Path]:
    """Write ``n_files`` MIDI files: chorales first, then generated etudes and Hanon."""
    chorales = music21_items(Music21Stage(name="c", source="music21", collection="bach_chorales", limit=n_files))
    blobs = [(f"chorale_{i:04d}.mid", item.midi) for i, item in enumerate(chorales)]
    for kind in ("etudes", "hanon"):
        for piece in generate(kind, ["C", "G", "D", "F", "a", "e", "d", "g"], seed=1):
            blobs.append((f"{piece.name.replace('/', '_')}.mid", piece.score.dumps_midi()))
    paths = []
    for name, data in blobs[:n_files]:
        path = root / name
        path.write_bytes(data)
        paths.append(path)
    return paths


def time_best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller smoke run")
    parser.add_argument("--files", type=int, default=None)
    args = parser.parse_args()
    n_files = args.files or (60 if args.quick else 400)
    repeats = 1 if args.quick else 3

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "midi"
        folder.mkdir()
        paths = build_folder(folder, n_files)
        settings = TokenizerSettings()
        tokenizer = build_tokenizer(settings)
        from symusic import Score

        def plain_miditok() -> None:
            for path in paths:
                tokenizer.encode(Score(str(path)))

        config = curriculum_from_midi_dir(folder)

        def ours(workers: int):
            return lambda: prepare(config, tmp / f"prep{workers}", workers=workers, show_progress=False, force=True)

        plain_miditok()  # warm the page cache and MidiTok's lazy imports
        peer_s = time_best(plain_miditok, repeats)
        ours_1 = time_best(ours(1), repeats)
        ours_2 = time_best(ours(2), repeats)
        machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
        for workers, seconds, goal in ((1, ours_1, 0.9), (2, ours_2, 1.6)):
            ratio = peer_s / seconds
            print(
                json.dumps(
                    {
                        "benchmark": f"data.prepare.workers{workers}",
                        "files": len(paths),
                        "ours_files_per_s": round(len(paths) / seconds, 1),
                        "peer": "miditok REMI encode(Score(path)), 1 process",
                        "peer_files_per_s": round(len(paths) / peer_s, 1),
                        "ratio": round(ratio, 3),
                        "goal_ratio": goal,
                        "met": ratio >= goal,
                        **machine,
                    }
                )
            )

        # Reading a batch from the cache against re-tokenizing the pieces it came from.
        data = prepare(config, tmp / "prep1", workers=1, show_progress=False).data
        stage = data.stage_names[0]
        sampler = WindowSampler(data, [stage], seq_len=256)
        rng = np.random.default_rng(0)
        mixture = Mixture(np.array([1.0]))
        batch = 16
        counts = np.array([batch])
        refs = sampler.draw(rng, counts, mixture)
        pieces = data.pieces(stage, "train")
        first = np.searchsorted(data.offsets(stage, "train"), refs.start, side="right") - 1  # the piece each window starts in
        sources = [data.piece_path(pieces[int(i)]) for i in first]

        def read_batch() -> None:
            sampler.gather(sampler.draw(rng, counts, mixture))

        def retokenize_batch() -> None:
            for path in sources:
                tokenizer.encode(Score(str(path)))

        read_s = time_best(lambda: [read_batch() for _ in range(100)], repeats) / 100
        retok_s = time_best(retokenize_batch, repeats)
        ratio = retok_s / read_s
        print(
            json.dumps(
                {
                    "benchmark": "data.cache_batch",
                    "batch": f"{batch} x 256 tokens",
                    "ours_ms": round(read_s * 1e3, 4),
                    "peer": "re-tokenizing the batch's source files with MidiTok",
                    "peer_ms": round(retok_s * 1e3, 3),
                    "ratio": round(ratio, 1),
                    "goal_ratio": 100,
                    "met": ratio >= 100,
                    **machine,
                }
            )
        )


if __name__ == "__main__":
    main()
