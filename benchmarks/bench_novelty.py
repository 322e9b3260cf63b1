"""Novelty scoring at corpus scale: exact kNN over an embedding bank, and the n-gram copy index.

    python benchmarks/bench_novelty.py                         # every figure at its default size
    python benchmarks/bench_novelty.py --quick                 # smoke sizes
    python benchmarks/bench_novelty.py --only knn,ngram_query  # chosen figures ("ngram": build+query)
    python benchmarks/bench_novelty.py --only ngram --baseline-src /tmp/old/src
                                        # peer: another checkout's copy index (e.g. commit 7e89fee)
    python benchmarks/bench_novelty.py --scale [--baseline-src DIR]   # the index over 100M symbols
    python benchmarks/bench_novelty.py --only sa_build         # suffix-array libraries compared

Figures, one JSON line each, our figure beside a peer's measured in the same run:

novelty.knn
    ``nearest_neighbors`` of 1,000 L2-normalised queries over a 1,000,000 x 512 float32 bank
    (clustered, like CLAP embeddings of similar pieces), called on the plain array, against
    ``faiss.IndexFlatIP.search`` (its ``add`` copy not timed). Also reported: the same call on a
    prepared ``EmbeddingBank`` and the plain float32 path, and agreement with faiss.
    Goal: <= 2 s and <= 1.5x faiss.
novelty.knn_bank
    The same search over the bank saved as an ``EmbeddingBank`` file (a bfloat16 screen read in
    blocks from a memory map, float32 rows read only to rescore candidates), against faiss:
    time, resident memory the search added, and top-1 agreement with faiss and with the float32
    brute force (goal: identical).
novelty.ngram_build
    ``NGramIndex.build`` (4/8/16-gram tables + suffix array) over music-like pieces totalling 10
    million symbols (random-walk melodies made of Zipf-popular motifs, transposed and re-timed, so
    n-grams repeat as in real corpora), in a child process: seconds, and ``bytes_per_symbol``,
    the resident memory the build added at its peak (peak minus before, per symbol). Then the
    index is loaded from its file (``load_s``). Goals: <= 60 s and <= 32 bytes a symbol. Peer
    with ``--baseline-src``: the same build by another checkout in its own child process;
    without it, the naive scan below for the query set (the work an index saves).
novelty.ngram_query
    ``NGramIndex.analyze`` (longest copied span + 4/8/16-gram hit rates) of 1,000 samples of
    1,000 notes (one in ten holds a transposed, re-timed 150-note excerpt of a training piece) on
    the loaded index. Goal: <= 5 s. Peer with ``--baseline-src``: the other checkout's query time
    (and whether every copied span and hit rate equals ours); without it,
    ``longest_common_substring_naive``, a NumPy dynamic-programming scan, timed on a few queries
    against a 1M-symbol subset and extrapolated linearly in queries x corpus symbols.
novelty.ngram_scale (``--scale``)
    The same build, load and queries over 100 million symbols in pieces of 200-5,000 notes:
    goals <= 10 min, <= 8 GB resident at the peak, load < 1 s. Peer: ``--baseline-src``.
novelty.sa_build
    Suffix-array construction alone over the 10M-symbol text, each in a child process: ours
    (libdivsufsort through pydivsufsort on 3-byte words with distinct sentinels) against
    pydivsufsort's own ``divsufsort`` on the 16-bit text and tokengrams' ``MemmapIndex.build``
    (when installed): seconds, added peak bytes a symbol, and whether the order equals ours.

Resident memory is measured inside the child: the kernel's peak (VmHWM) is reset through
/proc/self/clear_refs just before the build and read after it (polling VmRSS every 5 ms where
that reset is not allowed). Each figure is a function ``bench_<name>(args, shared) -> dict``
registered in ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
MB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated figures (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", action="store_true", help="the copy index over 100M symbols")
    parser.add_argument("--scale-symbols", type=int, default=100_000_000, help=argparse.SUPPRESS)
    parser.add_argument(
        "--baseline-src", default="", help="a checkout's src/ whose copy index is the peer"
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
        args.scale_symbols = min(args.scale_symbols, 2_000_000)
    return args


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


# ---------------------------------------------------------------------------------------------
# resident memory


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakMeter:
    """Peak resident memory of this process from :meth:`start` to :meth:`peak`, in bytes."""

    def __init__(self) -> None:
        self._poll: threading.Thread | None = None
        self._stop = threading.Event()
        self._max = 0

    def start(self) -> int:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset VmHWM to the current resident size
            self.method = "VmHWM reset by /proc/self/clear_refs"
        except OSError:
            self.method = "VmRSS polled every 5 ms"
            self._max = _status_bytes("VmRSS")
            self._poll = threading.Thread(target=self._watch, daemon=True)
            self._poll.start()
        self.before = _status_bytes("VmRSS")
        return self.before

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._max = max(self._max, _status_bytes("VmRSS"))

    def peak(self) -> int:
        if self._poll is None:
            return _status_bytes("VmHWM")
        self._stop.set()
        self._poll.join()
        return max(self._max, _status_bytes("VmRSS"))


def _child(task: dict) -> dict:
    """Run ``task`` in a fresh interpreter (``--child``); its last stdout line is the result."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(task, handle)
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", handle.name],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        os.unlink(handle.name)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"failed": f"exit status {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1])


# ---------------------------------------------------------------------------------------------
# kNN


def clustered_unit_vectors(n: int, dim: int, centres: np.ndarray, rng, spread: float = 0.8):
    """``n`` unit vectors around random ``centres`` (float32, built in chunks to spare memory)."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        chunk = rng.standard_normal((stop - start, dim), dtype=np.float32)
        chunk *= spread / np.sqrt(dim)
        chunk += centres[rng.integers(0, centres.shape[0], stop - start)]
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:stop] = chunk
    return out


def _interleaved(contenders: dict[str, Callable[[], object]], repeats: int):
    """Run every contender once per round, ``repeats`` rounds (so all see the same machine
    load); per contender the seconds of each round, and its result."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, results


def _knn_data(args: argparse.Namespace, shared: dict) -> dict:
    """The bank and queries, faiss's index over the bank, and the float32 brute force answer."""
    if "knn" not in shared:
        import faiss
        import torch

        from curricmusic.novelty.score import nearest_neighbors

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
        n_bank, n_query, dim = (20_000, 100, 512) if args.quick else (1_000_000, 1_000, 512)
        rng = np.random.default_rng(args.seed)
        centres = rng.standard_normal((2_000, dim), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        bank = clustered_unit_vectors(n_bank, dim, centres, rng)
        queries = clustered_unit_vectors(n_query, dim, centres, rng)
        index = faiss.IndexFlatIP(dim)
        add_s, _ = _median_time(lambda: index.add(bank), 1)
        index.search(queries[:8], 1)  # warm-up: thread pools, oneDNN kernels
        nearest_neighbors(queries[:8], bank[:65536], 1)
        fp32_s, (idx32, _) = _median_time(
            lambda: nearest_neighbors(queries, bank, 1, precision="fp32"), 1
        )
        shared["knn"] = {
            "bank": bank,
            "queries": queries,
            "faiss": index,
            "faiss_add_s": add_s,
            "fp32_s": fp32_s,
            "fp32_top1": idx32[:, 0],
        }
    return shared["knn"]


def bench_knn(args: argparse.Namespace, shared: dict) -> dict:
    from curricmusic.novelty.score import EmbeddingBank, auto_precision, nearest_neighbors

    data = _knn_data(args, shared)
    bank, queries, index, k = data["bank"], data["queries"], data["faiss"], 1
    (n_bank, dim), n_query = bank.shape, queries.shape[0]
    load_before = os.getloadavg()[0]
    method = auto_precision(n_query, n_bank, dim, k)
    prepared = EmbeddingBank(bank)
    prep_s, _ = _median_time(prepared.prepare, 1)
    times, results = _interleaved(
        {
            "peer": lambda: index.search(queries, k),
            "ours": lambda: nearest_neighbors(queries, bank, k),
            "ours_prepared": lambda: nearest_neighbors(queries, prepared, k),
        },
        args.repeats,
    )
    shared["faiss_times"] = times["peer"]
    peer_cos, peer_idx = results["peer"]
    idx, cos = results["ours"]
    ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["peer"])
    ratios = [o / p for o, p in zip(times["ours"], times["peer"], strict=True)]
    goal_s, goal_ratio = 2.0, 1.5
    ratio = ours_s / peer_s
    return {
        "benchmark": "novelty.knn",
        "ours_s": round(ours_s, 3),
        "peer": "faiss.IndexFlatIP",
        "peer_s": round(peer_s, 3),
        "ratio": round(ratio, 3),
        "goal": f"{n_query} queries over {n_bank} x {dim} in <= {goal_s} s and <= {goal_ratio}x faiss",
        "met": bool(ours_s <= goal_s and ratio <= goal_ratio),
        "queries": n_query,
        "bank": [n_bank, dim],
        "k": k,
        "ours_method": f"nearest_neighbors(precision='auto' -> {method!r}) on the float32 array",
        "ours_runs_s": [round(t, 3) for t in times["ours"]],
        "peer_runs_s": [round(t, 3) for t in times["peer"]],
        "ratio_per_round": [round(r, 3) for r in ratios],
        "ours_prepared_bank_s": round(statistics.median(times["ours_prepared"]), 3),
        "prepare_bank_s": round(prep_s, 3),
        "ours_fp32_s": round(data["fp32_s"], 3),
        "peer_add_s": round(data["faiss_add_s"], 3),
        "same_top1_as_faiss": float(np.mean(idx[:, 0] == peer_idx[:, 0])),
        "max_abs_cosine_diff_vs_faiss": float(np.max(np.abs(cos[:, 0] - peer_cos[:, 0]))),
        "same_top1_fp32_vs_bf16": float(np.mean(data["fp32_top1"] == idx[:, 0])),
        "threads": args.threads,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "timing": f"median of {args.repeats} interleaved rounds",
    }


def bench_knn_bank(args: argparse.Namespace, shared: dict) -> dict:
    from curricmusic.novelty.bank import open_bank, write_bank
    from curricmusic.novelty.score import nearest_neighbors

    data = _knn_data(args, shared)
    bank, queries, index = data["bank"], data["queries"], data["faiss"]
    path = Path(shared["tmp"]) / "knn.bank"
    start = time.perf_counter()
    with write_bank(path, bank.shape[1]) as rows:
        for first in range(0, bank.shape[0], 65536):
            rows.add(bank[first : first + 65536])
    write_s = time.perf_counter() - start
    open_s, (mapped, _) = _median_time(lambda: open_bank(path), 1)
    meter = PeakMeter()
    before = meter.start()
    anon, file_pages = _status_bytes("RssAnon"), _status_bytes("RssFile")
    times, results = _interleaved(
        {
            "peer": lambda: index.search(queries, 1),
            "ours": lambda: nearest_neighbors(queries, mapped, 1),
        },
        args.repeats,
    )
    peak = meter.peak()
    after = _status_bytes("VmRSS")
    anon, file_pages = _status_bytes("RssAnon") - anon, _status_bytes("RssFile") - file_pages
    idx, cos = results["ours"]
    peer_cos, peer_idx = results["peer"]
    ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["peer"])
    n_bank, dim = bank.shape
    return {
        "benchmark": "novelty.knn_bank",
        "ours_s": round(ours_s, 3),
        "peer": "faiss.IndexFlatIP (the bank in memory)",
        "peer_s": round(peer_s, 3),
        "ratio": round(ours_s / peer_s, 3),
        "goal": "top-1 identical to the float32 brute force and to faiss",
        "met": bool(
            np.array_equal(idx[:, 0], data["fp32_top1"])
            and np.array_equal(idx[:, 0], peer_idx[:, 0])
        ),
        "bank": [n_bank, dim],
        "file_mb": round(path.stat().st_size / MB),
        "bf16_screen_mb": round(n_bank * dim * 2 / MB),
        "float32_rows_mb": round(n_bank * dim * 4 / MB),
        "write_s": round(write_s, 2),
        "open_s": round(open_s, 4),
        "search_added_peak_rss_mb": round((peak - before) / MB),
        "search_added_resident_mb": round((after - before) / MB),
        "of_which_anonymous_mb": round(anon / MB),
        "of_which_file_pages_mb": round(file_pages / MB),
        "same_top1_as_fp32": float(np.mean(idx[:, 0] == data["fp32_top1"])),
        "same_top1_as_faiss": float(np.mean(idx[:, 0] == peer_idx[:, 0])),
        "max_abs_cosine_diff_vs_faiss": float(np.max(np.abs(cos[:, 0] - peer_cos[:, 0]))),
        "ours_runs_s": [round(t, 3) for t in times["ours"]],
        "timing": f"median of {args.repeats} interleaved rounds; the file in the page cache",
    }


# ---------------------------------------------------------------------------------------------
# n-gram index: synthetic music


_STEPS = np.array([-12, -7, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 12])
_STEP_P = np.array([0.5, 1, 2, 3, 4, 8, 8, 3, 8, 8, 4, 3, 2, 1, 0.5])
_IOIS = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0])  # 0: a chord note
_IOI_P = np.array([0.08, 0.2, 0.35, 0.25, 0.07, 0.05])


def music_like_pieces(total_notes, rng, piece_len=(200, 2000), n_motifs=2000, motif_seed=0):
    """Random-walk melodies made of motifs: 70% of segments are one of ``n_motifs`` motifs
    (4-12 notes, Zipf popularity, transposed, tempo x0.5/1/2), the rest random walks."""
    from curricmusic.music.notes import NOTE_DTYPE

    mrng = np.random.default_rng(motif_seed)  # the motif vocabulary is shared by all calls
    m_len = mrng.integers(4, 13, n_motifs)
    m_off = np.concatenate(([0], np.cumsum(m_len)))
    step_p, ioi_p = _STEP_P / _STEP_P.sum(), _IOI_P / _IOI_P.sum()
    m_int = mrng.choice(_STEPS, m_off[-1], p=step_p)
    m_ioi = mrng.choice(_IOIS, m_off[-1], p=ioi_p)
    zipf = 1.0 / np.arange(1, n_motifs + 1) ** 1.1
    zipf /= zipf.sum()
    n_seg = total_notes // 4 + 16
    is_motif = rng.random(n_seg) < 0.7
    motif = rng.choice(n_motifs, n_seg, p=zipf)
    seg_len = np.where(is_motif, m_len[motif], rng.integers(2, 9, n_seg))
    scale = rng.choice([0.5, 1.0, 1.0, 2.0], n_seg)
    seg = np.repeat(np.arange(n_seg), seg_len)[:total_notes]
    within = np.arange(seg.size) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)[: seg.size]
    from_motif = is_motif[seg]
    src = np.where(from_motif, m_off[motif[seg]] + within, 0)
    interval = np.where(from_motif, m_int[src], rng.choice(_STEPS, seg.size, p=step_p))
    ioi = np.where(from_motif, m_ioi[src], rng.choice(_IOIS, seg.size, p=ioi_p)) * scale[seg]
    first = within == 0
    interval[first] = rng.choice(_STEPS, first.sum(), p=step_p)
    ioi[first] = rng.choice(_IOIS[1:], first.sum())
    pieces, start = [], 0
    while start < seg.size:
        stop = min(seg.size, start + int(rng.integers(*piece_len)))
        pitch = np.cumsum(interval[start:stop])
        pitch = pitch - int(round(pitch.mean())) + 60
        pitch = 21 + np.abs(np.mod(pitch - 21, 174) - 87)  # fold into the piano range
        notes = np.empty(stop - start, dtype=NOTE_DTYPE)
        notes["onset"] = np.cumsum(ioi[start:stop]) - ioi[start]
        notes["duration"] = np.maximum(ioi[start:stop], 0.25)
        notes["pitch"] = pitch
        notes["velocity"] = 80
        pieces.append(np.sort(notes, order=("onset", "pitch")))
        start = stop
    return pieces


def with_excerpt(query: np.ndarray, source: np.ndarray, at: int, length: int, rng) -> np.ndarray:
    """``query`` with a transposed, re-timed excerpt of ``source`` spliced in after note ``at``."""
    begin = int(rng.integers(0, max(1, source.size - length)))
    chunk = source[begin : begin + length].copy()
    factor = float(rng.choice([0.5, 2.0, 1.5]))
    offset = query["onset"][at] + 1.0
    chunk["onset"] = (chunk["onset"] - chunk["onset"][0]) * factor + offset
    chunk["duration"] *= factor
    chunk["pitch"] += int(rng.integers(-6, 7))
    tail = query[at + 1 :].copy()
    tail["onset"] += chunk["onset"][-1] + chunk["duration"][-1] - offset + 1.0
    return np.sort(np.concatenate([query[: at + 1], chunk, tail]), order=("onset", "pitch"))


def longest_common_substring_naive(query_symbols, training_symbols_list) -> int:
    """Longest run of ``query_symbols`` inside one training sequence: the O(|q| |T|) DP, one
    NumPy pass over the whole training text per query symbol."""
    pieces = [np.asarray(s, dtype=np.int32) for s in training_symbols_list]
    text = np.concatenate([np.append(p, -1) for p in pieces])  # -1 never matches
    prev = np.zeros(text.size + 1, dtype=np.int32)
    cur = np.zeros_like(prev)
    best = 0
    for symbol in np.asarray(query_symbols, dtype=np.int32):
        np.add(prev[:-1], 1, out=cur[1:])
        cur[1:] *= text == symbol
        best = max(best, int(cur.max()))
        prev, cur = cur, prev
    return best


# ---------------------------------------------------------------------------------------------
# n-gram index: data


def _save_pieces(folder: Path, name: str, pieces: list[np.ndarray]) -> None:
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([p.size for p in pieces])
    np.save(folder / f"{name}_notes.npy", np.concatenate(pieces))
    np.save(folder / f"{name}_offsets.npy", offsets)


def _load_pieces(folder: Path, name: str) -> list[np.ndarray]:
    """Pieces saved by :func:`_save_pieces`, read whole (resident before any measurement)."""
    notes = np.load(folder / f"{name}_notes.npy")
    offsets = np.load(folder / f"{name}_offsets.npy")
    return [notes[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def _with_excerpts(queries, train, q_len, rng):
    """One query in ten gets a transposed, re-timed excerpt of a random training piece."""
    excerpt = max(10, q_len * 3 // 20)
    for i in range(0, len(queries), 10):
        source = train[int(rng.integers(len(train)))]
        queries[i] = with_excerpt(queries[i][: q_len - excerpt], source, q_len // 3, excerpt, rng)
    return queries


def _ngram_data(args: argparse.Namespace, shared: dict) -> dict:
    """10M training symbols (200K with --quick) and the query set, kept and saved for children."""
    if "ngram" not in shared:
        total, n_query, q_len = (200_000, 50, 200) if args.quick else (10_000_000, 1_000, 1_000)
        rng = np.random.default_rng(args.seed)
        train = music_like_pieces(total, rng)
        queries = music_like_pieces(
            n_query * q_len, np.random.default_rng(args.seed + 1), piece_len=(q_len, q_len + 1)
        )
        queries = _with_excerpts(queries, train, q_len, rng)
        folder = Path(shared["tmp"]) / "ngram"
        folder.mkdir()
        _save_pieces(folder, "train", train)
        _save_pieces(folder, "queries", queries)
        shared["ngram"] = {"train": train, "queries": queries, "folder": folder}
    return shared["ngram"]


def _scale_data(args: argparse.Namespace, shared: dict) -> Path:
    """``--scale-symbols`` training notes in pieces of 200-5,000 notes, written 10M at a time."""
    from numpy.lib.format import open_memmap

    from curricmusic.music.notes import NOTE_DTYPE

    folder = Path(shared["tmp"]) / "scale"
    folder.mkdir()
    total = args.scale_symbols
    notes = open_memmap(folder / "train_notes.npy", mode="w+", dtype=NOTE_DTYPE, shape=(total,))
    lengths, written, chunk, sources = [], 0, 0, []
    while written < total:
        size = min(10_000_000, total - written)
        rng = np.random.default_rng([args.seed, chunk])
        for piece in music_like_pieces(size, rng, piece_len=(200, 5001)):
            notes[written : written + piece.size] = piece
            written += piece.size
            lengths.append(piece.size)
            if len(sources) < 500:
                sources.append(piece.copy())
        chunk += 1
    notes.flush()
    del notes
    np.save(folder / "train_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))
    n_query, q_len = (50, 200) if args.quick else (1_000, 1_000)
    queries = music_like_pieces(
        n_query * q_len, np.random.default_rng(args.seed + 1), piece_len=(q_len, q_len + 1)
    )
    queries = _with_excerpts(queries, sources, q_len, np.random.default_rng(args.seed + 2))
    _save_pieces(folder, "queries", queries)
    return folder


# ---------------------------------------------------------------------------------------------
# n-gram index: one build, load and query set in a child process


def _time_blocked(index, note_symbols, queries: list[np.ndarray], calls: int = 2000) -> float:
    """Mean microseconds of one copy-blocking check (16-symbol span, 128 candidate pitches)."""
    contexts = [note_symbols(q[i : i + 20]) for q in queries[:20] for i in range(0, 400, 20)]
    candidates = np.arange(128, dtype=np.int64) * 57
    start = time.perf_counter()
    for i in range(calls):
        index.blocked(contexts[i % len(contexts)], candidates, max_span=16)
    return (time.perf_counter() - start) / calls * 1e6


def _build_child(task: dict) -> dict:
    """Build the index of ``task['data']`` with the copy index of ``task['src']`` into
    ``out/index.bin``: seconds and the resident memory the build added."""
    sys.path.insert(0, task["src"])
    import curricmusic
    from curricmusic.novelty.copy_index import NGramIndex

    data, out = Path(task["data"]), Path(task["out"])
    out.mkdir(parents=True, exist_ok=True)
    train = _load_pieces(data, "train")
    ids = [f"piece{i}" for i in range(len(train))]
    path = out / "index.bin"
    meter = PeakMeter()
    before = meter.start()
    start = time.perf_counter()
    save_s = 0.0
    if "path" in inspect.signature(NGramIndex.build).parameters:  # builds into its file
        index = NGramIndex.build(train, ids, path=path)
        build_s = time.perf_counter() - start
        peak = meter.peak()
    else:  # format 1: an in-memory build, then an .npz
        index = NGramIndex.build(train, ids)
        build_s = time.perf_counter() - start
        peak = meter.peak()
        save_s, _ = _median_time(lambda: index.save(path), 1)
    stats = index.stats
    symbols = stats["symbols"]
    return {
        "src": str(Path(curricmusic.__file__).parent),
        "symbols": symbols,
        "pieces": stats["pieces"],
        "distinct_ngrams": dict(zip(stats["ns"], stats["distinct_ngrams"], strict=True)),
        "build_s": round(build_s, 2),
        "save_s": round(save_s, 2),
        "rss_before_build_mb": round(before / MB),
        "peak_rss_mb": round(peak / MB),
        "bytes_per_symbol": round((peak - before) / symbols, 1),
        "memory_method": meter.method,
        "file_mb": round(path.stat().st_size / MB, 1),
        "file_bytes_per_symbol": round(path.stat().st_size / symbols, 1),
    }


def _query_child(task: dict) -> dict:
    """Load ``out/index.bin`` (timed) and answer the query set twice: the first run pays for
    reading the file's pages, the second is warm. With ``spans`` set, the spans and hit rates
    go to ``out/spans.json`` and copy-blocking is timed too."""
    sys.path.insert(0, task["src"])
    from curricmusic.novelty.copy_index import NGramIndex, note_symbols

    out = Path(task["out"])
    queries = _load_pieces(Path(task["data"]), "queries")
    gc.collect()
    before = _status_bytes("VmRSS")
    file_before = _status_bytes("RssFile")
    load_s, index = _median_time(lambda: NGramIndex.load(out / "index.bin"), 1)
    loaded = _status_bytes("VmRSS")
    times = []
    for _ in range(2):
        start = time.perf_counter()
        result = index.analyze(queries)
        times.append(time.perf_counter() - start)
    queried = _status_bytes("VmRSS")
    file_pages = _status_bytes("RssFile") - file_before
    symbols = index.stats["symbols"]
    answer = {
        "load_s": round(load_s, 4),
        "first_s": round(times[0], 3),
        "query_s": round(times[1], 3),
        "resident_after_load_bytes_per_symbol": round((loaded - before) / symbols, 2),
        "resident_after_queries_bytes_per_symbol": round((queried - before) / symbols, 1),
        "of_which_index_pages_bytes_per_symbol": round(file_pages / symbols, 1),
    }
    if task.get("spans"):
        rows = [
            [r.span.notes, r.span.bars, r.span.piece_id, r.span.piece_note_index,
             r.span.query_note_index, [r.hit_rates[n] for n in (4, 8, 16)]]
            for r in result
        ]  # fmt: skip
        text = json.dumps(rows)
        (out / "spans.json").write_text(text)
        spans = np.array([r[0] for r in rows])
        answer.update(
            queries=len(queries),
            spans_sha256=hashlib.sha256(text.encode()).hexdigest()[:16],
            span_notes_median=float(np.median(spans)),
            span_notes_max=int(spans.max()),
            mean_hit_rates={
                n: float(np.nanmean([r[5][i] for r in rows])) for i, n in enumerate((4, 8, 16))
            },
            blocked_us_per_call_128_candidates=round(
                _time_blocked(index, note_symbols, queries), 1
            ),
        )
    return answer


def _index_runs(args: argparse.Namespace, folder: Path) -> dict:
    """Our index and, with ``--baseline-src``, the baseline's, built in child processes on the
    same files; then ``--repeats`` rounds of query children, ours and the peer's alternating
    (so both see the same machine load). Per contender: the build's figures, the medians of
    the rounds, and the first round's spans and resident memory."""
    contenders = {"ours": str(SRC), **({"peer": args.baseline_src} if args.baseline_src else {})}
    runs = {}
    for name, src in contenders.items():
        task = {"src": src, "data": str(folder), "out": str(folder / name)}
        runs[name] = _child({**task, "kind": "build"})
    rounds: dict[str, list[dict]] = {name: [] for name in contenders}
    for r in range(args.repeats):
        for name, src in contenders.items():
            if "failed" in runs[name]:
                continue
            task = {"src": src, "data": str(folder), "out": str(folder / name), "spans": r == 0}
            answer = _child({**task, "kind": "query"})
            if "failed" in answer:
                runs[name] = answer
                continue
            rounds[name].append(answer)
    for name, answers in rounds.items():
        if answers and "failed" not in runs[name]:
            runs[name].update(answers[0])
            for key in ("load_s", "first_s", "query_s"):
                runs[name][key] = round(statistics.median(a[key] for a in answers), 4)
            runs[name]["query_runs_s"] = [a["query_s"] for a in answers]
    if "peer" in runs and "failed" not in runs["peer"] and "failed" not in runs["ours"]:
        ours, peer = (folder / n / "spans.json" for n in ("ours", "peer"))
        runs["same_spans_and_hit_rates"] = ours.read_bytes() == peer.read_bytes()
    return runs


def _naive_peer(args: argparse.Namespace, data: dict, shared: dict) -> dict:
    """Time the naive scan on a subset, extrapolate, and check our exact span agrees there."""
    from curricmusic.novelty.copy_index import NGramIndex, note_symbols

    if "naive" in shared:
        return shared["naive"]
    n_measured, subset_target = (2, 50_000) if args.quick else (2, 1_000_000)
    train_syms = [note_symbols(p) for p in data["train"]]
    subset, size = [], 0
    while size < subset_target and len(subset) < len(train_syms):
        subset.append(train_syms[len(subset)])
        size += subset[-1].size
    query_syms = [note_symbols(q) for q in data["queries"]]
    measured = [query_syms[0], query_syms[1 % len(query_syms)]][:n_measured]  # one holds an excerpt
    start = time.perf_counter()
    naive = [longest_common_substring_naive(q, subset) for q in measured]
    naive_s = time.perf_counter() - start
    index = NGramIndex.from_symbols(subset, [str(i) for i in range(len(subset))])
    ours = [m[0] for m in index.longest_matches(measured, loose_start=False)]
    total_symbols = sum(s.size for s in train_syms)
    scale = (len(query_syms) / len(measured)) * (total_symbols / size)
    shared["naive"] = {
        "peer_s": naive_s * scale,
        "measured": {
            "queries": len(measured),
            "corpus_symbols": size,
            "seconds": round(naive_s, 3),
        },
        "extrapolation": f"linear: x{len(query_syms)}/{len(measured)} queries, "
        f"x{total_symbols}/{size} corpus symbols",
        "agree_on_subset": ours == naive,
        "longest_on_subset": naive,
    }
    return shared["naive"]


def _runs_10m(args: argparse.Namespace, shared: dict) -> dict:
    if "runs" not in shared:
        data = _ngram_data(args, shared)
        shared["runs"] = _index_runs(args, data["folder"])
    return shared["runs"]


def _peer_fields(runs: dict, key: str) -> dict:
    peer = runs.get("peer")
    if peer is None:
        return {}
    if "failed" in peer:
        return {"peer_failed": peer["failed"]}
    fields = ("build_s", "bytes_per_symbol", "peak_rss_mb", "file_bytes_per_symbol", "load_s",
              "first_s", "query_s", "resident_after_queries_bytes_per_symbol",
              "of_which_index_pages_bytes_per_symbol", "src")  # fmt: skip
    return {f"peer_{f}": peer[f] for f in fields if f != key}


def bench_ngram_build(args: argparse.Namespace, shared: dict) -> dict:
    runs = _runs_10m(args, shared)
    ours = runs["ours"]
    if "failed" in ours:
        return {"benchmark": "novelty.ngram_build", "failed": ours["failed"]}
    goal_s, goal_bps = 60.0, 32.0
    out = {"benchmark": "novelty.ngram_build", "ours_s": ours["build_s"]}
    if "peer" in runs and "failed" not in runs["peer"]:
        peer_s = runs["peer"]["build_s"]
        out.update(
            peer=f"the copy index of {args.baseline_src}, built in its own child process",
            peer_s=peer_s,
            ratio=round(ours["build_s"] / peer_s, 3),
        )
    else:
        naive = _naive_peer(args, shared["ngram"], shared)
        out.update(
            peer="longest_common_substring_naive over the query set (no build; extrapolated)",
            peer_s=round(naive["peer_s"], 1),
            ratio=round(ours["build_s"] / naive["peer_s"], 6),
            peer_measured=naive["measured"],
        )
    out.update(
        goal=f"index over {ours['symbols']} symbols built in <= {goal_s:g} s adding <= {goal_bps:g} bytes a symbol",
        met=bool(ours["build_s"] <= goal_s and ours["bytes_per_symbol"] <= goal_bps),
        bytes_per_symbol=ours["bytes_per_symbol"],
        **{k: ours[k] for k in ("symbols", "pieces", "distinct_ngrams", "rss_before_build_mb", "peak_rss_mb",
                                "memory_method", "file_mb", "file_bytes_per_symbol", "load_s",
                                "resident_after_load_bytes_per_symbol")},
        **_peer_fields(runs, "query_s"),
    )  # fmt: skip
    return out


def bench_ngram_query(args: argparse.Namespace, shared: dict) -> dict:
    runs = _runs_10m(args, shared)
    ours = runs["ours"]
    if "failed" in ours:
        return {"benchmark": "novelty.ngram_query", "failed": ours["failed"]}
    goal_s = 5.0
    out = {"benchmark": "novelty.ngram_query", "ours_s": ours["query_s"]}
    if "peer" in runs and "failed" not in runs["peer"]:
        peer_s = runs["peer"]["query_s"]
        out.update(
            peer=f"the copy index of {args.baseline_src} (loaded from its file, same queries)",
            peer_s=peer_s,
            ratio=round(ours["query_s"] / peer_s, 3),
            same_spans_and_hit_rates_as_peer=runs["same_spans_and_hit_rates"],
        )
    else:
        naive = _naive_peer(args, shared["ngram"], shared)
        out.update(
            peer="longest_common_substring_naive (NumPy DP scan; extrapolated)",
            peer_s=round(naive["peer_s"], 1),
            ratio=round(ours["query_s"] / naive["peer_s"], 7),
            peer_measured=naive["measured"],
            peer_extrapolation=naive["extrapolation"],
            agree_on_subset=naive["agree_on_subset"],
        )
    out.update(
        goal=f"{ours['queries']} samples: span + hit rates in <= {goal_s:g} s",
        met=bool(ours["query_s"] <= goal_s),
        **{k: ours[k] for k in ("queries", "symbols", "query_runs_s", "first_s", "spans_sha256", "span_notes_median",
                                "span_notes_max", "mean_hit_rates", "resident_after_queries_bytes_per_symbol",
                                "of_which_index_pages_bytes_per_symbol",
                                "blocked_us_per_call_128_candidates")},
        timing=f"median of {args.repeats} rounds, each a fresh process that loads the index from "
        "its file and runs the queries twice (the second timed; first_s: the first)",
    )  # fmt: skip
    return out


def bench_ngram_scale(args: argparse.Namespace, shared: dict) -> dict:
    start = time.perf_counter()
    folder = _scale_data(args, shared)
    data_s = time.perf_counter() - start
    runs = _index_runs(args, folder)
    ours = runs["ours"]
    if "failed" in ours:
        return {"benchmark": "novelty.ngram_scale", "failed": ours["failed"]}
    goal_s, goal_mb, goal_load = 600.0, 8 * 1024, 1.0
    out = {"benchmark": "novelty.ngram_scale", "ours_s": ours["build_s"]}
    if "peer" in runs and "failed" not in runs["peer"]:
        out.update(
            peer=f"the copy index of {args.baseline_src}",
            peer_s=runs["peer"]["build_s"],
            ratio=round(ours["build_s"] / runs["peer"]["build_s"], 3),
            same_spans_and_hit_rates_as_peer=runs["same_spans_and_hit_rates"],
        )
    out.update(
        goal=f"{ours['symbols']} symbols: build <= {goal_s:g} s and <= {goal_mb} MB resident, load < {goal_load:g} s",
        met=bool(ours["build_s"] <= goal_s and ours["peak_rss_mb"] <= goal_mb and ours["load_s"] < goal_load),
        **{k: v for k, v in ours.items() if k not in ("src",)},
        **_peer_fields(runs, ""),
        data_generation_s=round(data_s, 1),
    )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------
# suffix-array construction alone


def _sa_child(task: dict) -> dict:
    sys.path.insert(0, task["src"])
    vals = np.load(task["text"])  # uint16: symbol + 1, 0xFFFF after each piece
    out = Path(task["out"])
    mode = task["mode"]
    if mode == "tokengrams":
        import tokengrams

        vals.astype("<u2").tofile(out / "tokens.bin")
    elif (
        mode == "baseline"
    ):  # the int32 text (-1 sentinels) that commit 7e89fee's NumPy build takes
        text = np.where(vals == 0xFFFF, -1, vals.astype(np.int32) - 1).astype(np.int32)
    meter = PeakMeter()
    before = meter.start()
    start = time.perf_counter()
    if mode == "ours":
        from curricmusic.novelty._suffixarray import build_suffix_array

        sa = build_suffix_array(vals)
    elif mode == "pydivsufsort":
        from pydivsufsort import divsufsort

        sa = divsufsort(vals)
        sa = sa[vals[sa] != 0xFFFF]
    elif mode == "baseline":
        from curricmusic.novelty import _suffixarray as baseline

        packed, has_sentinel = baseline.pack_windows(text)
        sa = baseline.build_suffix_array(text, packed, has_sentinel)
    else:
        tokengrams.MemmapIndex.build(
            str(out / "tokens.bin"), str(out / "table.bin"), vocab=2**16, verbose=False
        )
        sa = np.memmap(out / "table.bin", dtype="<u8", mode="r")
    seconds = time.perf_counter() - start
    peak = meter.peak()
    positions = sa.dtype.itemsize
    sa = sa[vals[sa] != 0xFFFF] if mode == "tokengrams" else sa
    np.save(out / f"sa_{mode}.npy", np.asarray(sa, dtype=np.int64))
    symbols = int(np.count_nonzero(vals != 0xFFFF))
    return {
        "seconds": round(seconds, 2),
        "bytes_per_symbol": round((peak - before) / symbols, 1),
        "position_bytes": positions,
    }


def bench_sa_build(args: argparse.Namespace, shared: dict) -> dict:
    from curricmusic.novelty import _ngram_store
    from curricmusic.novelty.copy_index import N_SYMBOLS, note_symbols

    data = _ngram_data(args, shared)
    folder = Path(shared["tmp"]) / "sa"
    folder.mkdir()
    vals, _ = _ngram_store.assemble_text(
        (note_symbols(p) for p in data["train"]), N_SYMBOLS, lambda: None
    )
    np.save(folder / "text.npy", vals)
    results = {}
    modes = ("ours", "pydivsufsort", "tokengrams", *(("baseline",) if args.baseline_src else ()))
    for mode in modes:
        if mode == "tokengrams":
            try:
                import tokengrams  # noqa: F401
            except ImportError:
                results[mode] = {"skipped": "tokengrams is not installed"}
                continue
        task = {
            "kind": "sa",
            "mode": mode,
            "src": args.baseline_src if mode == "baseline" else str(SRC),
            "text": str(folder / "text.npy"),
            "out": str(folder),
        }
        results[mode] = _child(task)
    ours_sa = np.load(folder / "sa_ours.npy")
    for mode, result in results.items():
        if mode != "ours" and (folder / f"sa_{mode}.npy").is_file():
            result["same_order_as_ours"] = bool(
                np.array_equal(np.load(folder / f"sa_{mode}.npy"), ours_sa)
            )
    ours, peer = results["ours"], results["pydivsufsort"]
    if "seconds" not in ours or "seconds" not in peer:
        return {"benchmark": "novelty.sa_build", "failed": results}
    return {
        "benchmark": "novelty.sa_build",
        "ours_s": ours["seconds"],
        "peer": "pydivsufsort.divsufsort on the 16-bit text (its own API)",
        "peer_s": peer["seconds"],
        "ratio": round(ours["seconds"] / peer["seconds"], 3),
        "symbols": int(ours_sa.size),
        "results": results,
        "note": "ours breaks ties between suffixes equal up to their piece's end by position, as the "
        "copy index needs; a single shared sentinel (pydivsufsort's API, tokengrams) orders them by "
        "what follows instead",
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------


BENCHMARKS: dict[str, Callable[[argparse.Namespace, dict], dict]] = {
    "knn": bench_knn,
    "knn_bank": bench_knn_bank,
    "ngram_build": bench_ngram_build,
    "ngram_query": bench_ngram_query,
    "ngram_scale": bench_ngram_scale,
    "sa_build": bench_sa_build,
}
GROUPS = {"ngram": ["ngram_build", "ngram_query"]}
DEFAULT = ["knn", "knn_bank", "ngram_build", "ngram_query"]
CHILDREN = {"build": _build_child, "query": _query_child, "sa": _sa_child}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        task = json.loads(Path(args.child).read_text())
        print(json.dumps(CHILDREN[task["kind"]](task)), flush=True)
        return
    sys.path.insert(0, str(SRC))
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    names = names or (["ngram_scale"] if args.scale else DEFAULT)
    names = [m for n in names for m in GROUPS.get(n, [n])]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark {unknown}; choose from {sorted(BENCHMARKS) + sorted(GROUPS)}"
        )
    with tempfile.TemporaryDirectory(prefix="bench-novelty-") as tmp:
        shared: dict = {"tmp": tmp}
        for name in names:
            print(json.dumps(BENCHMARKS[name](args, shared)), flush=True)


if __name__ == "__main__":
    main()
