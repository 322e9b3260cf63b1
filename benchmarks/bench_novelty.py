"""Novelty scoring speed: exact kNN over an embedding bank, and the n-gram copy index.

    python benchmarks/bench_novelty.py                         # every figure, full size
    python benchmarks/bench_novelty.py --quick                 # smoke sizes
    python benchmarks/bench_novelty.py --only knn,ngram_query  # chosen figures ("ngram": both)

Figures, one JSON line each, our time beside a peer's measured in the same run:

novelty.knn
    ``nearest_neighbors`` of 1,000 L2-normalised queries over a 1,000,000 x 512 float32 bank
    (clustered, like CLAP embeddings of similar pieces), called on the plain array, against
    ``faiss.IndexFlatIP.search`` (its ``add`` copy not timed). Also reported: the same call on a
    prepared ``EmbeddingBank`` and the plain float32 path, and agreement with faiss.
    Goal: <= 2 s and <= 1.5x faiss.
novelty.ngram_build
    ``NGramIndex.build`` over music-like pieces totalling 10 million symbols (random-walk melodies
    made of Zipf-popular motifs, transposed and re-timed, so n-grams repeat as in real corpora),
    plus save/load of the cache. Goal: <= 60 s. Peer: the naive scan below for the query set
    (the work an index saves; the naive scan needs no build).
novelty.ngram_query
    ``NGramIndex.analyze`` (longest copied span + 4/8/16-gram hit rates) of 1,000 samples of
    1,000 notes (one in ten holds a transposed, re-timed 150-note excerpt of a training piece).
    Goal: <= 5 s. Peer: ``longest_common_substring_naive``, a NumPy dynamic-programming scan,
    timed on a few queries against a 1M-symbol subset and extrapolated linearly in
    queries x corpus symbols (the full scan would take hours); on that subset our exact span
    must equal the naive one.

Each figure is a function ``bench_<name>(args, shared) -> dict`` registered in ``BENCHMARKS``;
``--only`` runs a subset by name.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from curricmusic.music.notes import NOTE_DTYPE  # noqa: E402
from curricmusic.novelty.copy_index import NGramIndex, note_symbols  # noqa: E402
from curricmusic.novelty.score import (  # noqa: E402
    EmbeddingBank,
    auto_precision,
    nearest_neighbors,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated figures (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    return args


def _median_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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
    load); per contender the median seconds, the per-round ratios to the first, and its result."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)
    return times, results


def bench_knn(args: argparse.Namespace, shared: dict) -> dict:
    import faiss

    n_bank, n_query, dim, k = (20_000, 100, 512, 1) if args.quick else (1_000_000, 1_000, 512, 1)
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((2_000, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bank = clustered_unit_vectors(n_bank, dim, centres, rng)
    queries = clustered_unit_vectors(n_query, dim, centres, rng)
    load_before = os.getloadavg()[0]
    method = auto_precision(n_query, n_bank, dim, k)

    faiss.omp_set_num_threads(args.threads)
    index = faiss.IndexFlatIP(dim)
    add_s, _ = _median_time(lambda: index.add(bank), 1)
    prepared = EmbeddingBank(bank)
    prep_s, _ = _median_time(prepared.prepare, 1)
    index.search(queries[:8], k)  # warm-up: thread pools, oneDNN kernels
    nearest_neighbors(queries[:8], bank[:65536], k)
    times, results = _interleaved(
        {
            "peer": lambda: index.search(queries, k),
            "ours": lambda: nearest_neighbors(queries, bank, k),
            "ours_prepared": lambda: nearest_neighbors(queries, prepared, k),
        },
        args.repeats,
    )
    fp32_s, (idx32, _) = _median_time(
        lambda: nearest_neighbors(queries, bank, k, precision="fp32"), 1
    )
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
        "ours_fp32_s": round(fp32_s, 3),
        "peer_add_s": round(add_s, 3),
        "same_top1_as_faiss": float(np.mean(idx[:, 0] == peer_idx[:, 0])),
        "max_abs_cosine_diff_vs_faiss": float(np.max(np.abs(cos[:, 0] - peer_cos[:, 0]))),
        "same_top1_fp32_vs_bf16": float(np.mean(idx32 == idx)),
        "threads": args.threads,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "timing": f"median of {args.repeats} interleaved rounds",
    }


# ---------------------------------------------------------------------------------------------
# n-gram index


_STEPS = np.array([-12, -7, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 12])
_STEP_P = np.array([0.5, 1, 2, 3, 4, 8, 8, 3, 8, 8, 4, 3, 2, 1, 0.5])
_IOIS = np.array([0.0, 0.25, 0.5, 1.0, 1.5, 2.0])  # 0: a chord note
_IOI_P = np.array([0.08, 0.2, 0.35, 0.25, 0.07, 0.05])


def music_like_pieces(total_notes, rng, piece_len=(200, 2000), n_motifs=2000, motif_seed=0):
    """Random-walk melodies made of motifs: 70% of segments are one of ``n_motifs`` motifs
    (4-12 notes, Zipf popularity, transposed, tempo x0.5/1/2), the rest random walks."""
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


def _ngram_data(args: argparse.Namespace, shared: dict) -> dict:
    if "ngram" not in shared:
        total, n_query, q_len = (200_000, 50, 200) if args.quick else (10_000_000, 1_000, 1_000)
        rng = np.random.default_rng(args.seed)
        train = music_like_pieces(total, rng)
        queries = music_like_pieces(
            n_query * q_len, np.random.default_rng(args.seed + 1), piece_len=(q_len, q_len + 1)
        )
        excerpt = max(10, q_len * 3 // 20)
        for i in range(0, len(queries), 10):
            source = train[int(rng.integers(len(train)))]
            queries[i] = with_excerpt(
                queries[i][: q_len - excerpt], source, q_len // 3, excerpt, rng
            )
        shared["ngram"] = {
            "train": train,
            "queries": queries,
            "ids": [f"piece{i}" for i in range(len(train))],
        }
    return shared["ngram"]


def _naive_peer(args: argparse.Namespace, data: dict, shared: dict) -> dict:
    """Time the naive scan on a subset, extrapolate, and check our exact span agrees there."""
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
    ours = [
        m[0]
        for m in NGramIndex.from_symbols(
            subset, [str(i) for i in range(len(subset))]
        ).longest_matches(measured, loose_start=False)
    ]
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


def bench_ngram_build(args: argparse.Namespace, shared: dict) -> dict:
    data = _ngram_data(args, shared)
    build_s, index = _median_time(lambda: NGramIndex.build(data["train"], data["ids"]), 1)
    shared["index"] = index
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.npz"
        save_s, _ = _median_time(lambda: index.save(path), 1)
        load_s, loaded = _median_time(lambda: NGramIndex.load(path), 1)
        file_mb = path.stat().st_size / 2**20
        del loaded
    naive = _naive_peer(args, data, shared)
    goal_s = 60.0
    stats = index.stats
    return {
        "benchmark": "novelty.ngram_build",
        "ours_s": round(build_s, 3),
        "peer": "longest_common_substring_naive over the query set (no build; extrapolated)",
        "peer_s": round(naive["peer_s"], 1),
        "ratio": round(build_s / naive["peer_s"], 6),
        "goal": f"index over {stats['symbols']} symbols built in <= {goal_s:g} s",
        "met": bool(build_s <= goal_s),
        "symbols": stats["symbols"],
        "pieces": stats["pieces"],
        "distinct_ngrams": dict(zip(stats["ns"], stats["distinct_ngrams"], strict=True)),
        "save_s": round(save_s, 3),
        "load_s": round(load_s, 3),
        "cache_mb": round(file_mb, 1),
        "peer_measured": naive["measured"],
        "peer_extrapolation": naive["extrapolation"],
        "peak_rss_mb": round(_peak_rss_mb()),
    }


def _time_blocked(index: NGramIndex, queries: list[np.ndarray], calls: int = 2000) -> float:
    """Mean microseconds of one copy-blocking check (16-symbol span, 128 candidate pitches)."""
    contexts = [note_symbols(q[i : i + 20]) for q in queries[:20] for i in range(0, 400, 20)]
    candidates = np.arange(128, dtype=np.int64) * 57
    start = time.perf_counter()
    for i in range(calls):
        index.blocked(contexts[i % len(contexts)], candidates, max_span=16)
    return (time.perf_counter() - start) / calls * 1e6


def bench_ngram_query(args: argparse.Namespace, shared: dict) -> dict:
    data = _ngram_data(args, shared)
    index = shared.get("index") or NGramIndex.build(data["train"], data["ids"])
    shared["index"] = index
    queries = data["queries"]
    ours_s, result = _median_time(lambda: index.analyze(queries), args.repeats)
    naive = _naive_peer(args, data, shared)
    blocked_us = _time_blocked(index, queries)
    spans = np.array([r.span.notes for r in result])
    rates = {n: float(np.nanmean([r.hit_rates[n] for r in result])) for n in (4, 8, 16)}
    goal_s = 5.0
    return {
        "benchmark": "novelty.ngram_query",
        "ours_s": round(ours_s, 3),
        "peer": "longest_common_substring_naive (NumPy DP scan; extrapolated)",
        "peer_s": round(naive["peer_s"], 1),
        "ratio": round(ours_s / naive["peer_s"], 7),
        "goal": f"{len(queries)} samples of ~{queries[1].size} notes: span + hit rates in <= {goal_s:g} s",
        "met": bool(ours_s <= goal_s),
        "queries": len(queries),
        "corpus_symbols": index.stats["symbols"],
        "span_notes_median": float(np.median(spans)),
        "span_notes_max": int(spans.max()),
        "mean_hit_rates": rates,
        "peer_measured": naive["measured"],
        "peer_extrapolation": naive["extrapolation"],
        "agree_on_subset": naive["agree_on_subset"],
        "blocked_us_per_call_128_candidates": round(blocked_us, 1),
        "timing": f"median of {args.repeats}",
    }


BENCHMARKS: dict[str, Callable[[argparse.Namespace, dict], dict]] = {
    "knn": bench_knn,
    "ngram_build": bench_ngram_build,
    "ngram_query": bench_ngram_query,
}
GROUPS = {"ngram": ["ngram_build", "ngram_query"]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    names = [m for n in names for m in GROUPS.get(n, [n])]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark {unknown}; choose from {sorted(BENCHMARKS) + sorted(GROUPS)}"
        )
    shared: dict = {}
    for name in names:
        print(json.dumps(BENCHMARKS[name](args, shared)), flush=True)


if __name__ == "__main__":
    main()
