"""Sampling speed against Hugging Face transformers' GPT2LMHeadModel.generate, same shapes.

    python benchmarks/bench_generate.py [--quick] [--threads N] [--repeats N] [--no-meter-tokens] [--no-compile]

Both models have the same width, depth, heads and vocabulary (the quickstart model: d 256, 4
layers, 4 heads, REMI vocabulary with tempos and time signatures; ``--no-meter-tokens`` drops
them, the vocabulary before issue 9), random weights, KV caches on, plain sampling (temperature 1,
no top-k / top-p), and generate exactly ``--new`` tokens after a one-token prompt (EOS banned),
at batch 1 and batch 16, measured in the same run. Ours runs eager and through the compiled
decoding step (``curricmusic.generation.compiled``); the runs are interleaved (eager, compiled,
peer, eager, ...) and each figure is the median of ``--repeats`` (at least 5). The compiled
step's first call, which compiles it (or loads it from the inductor cache), is timed apart.
Two more lines measure what the REMI grammar mask plus copy-blocking (against a 200-piece n-gram
index) cost over unconstrained sampling, eager and compiled. Each line is one JSON object with the
thread count and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

from curricmusic.config import TokenizerSettings
from curricmusic.config.generation import GenerationSettings
from curricmusic.generation.copy_blocking import index_n_for
from curricmusic.generation.generate import sample_tokens
from curricmusic.model.transformer import ModelConfig, MusicTransformer
from curricmusic.music.notes import make_notes
from curricmusic.music.tokenizers import build_tokenizer
from curricmusic.novelty.copy_index import NGramIndex


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def medians(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Median seconds of each function over ``repeats`` interleaved rounds, after one warm-up
    call each; and the warm-up calls' seconds (a compiled step compiles there)."""
    first = {name: seconds(fn) for name, fn in fns.items()}
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(seconds(fn))
    return {name: statistics.median(t) for name, t in times.items()}, first


def load() -> float:
    return round(os.getloadavg()[0], 2)


def corpus(n: int, length: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    pieces = []
    for _ in range(n):
        pitches = 60 + np.cumsum(rng.choice([-4, -3, -2, -1, 1, 2, 3, 4], size=length)) % 24
        durations = rng.choice([0.25, 0.5, 1.0], size=length)
        pieces.append(make_notes(np.concatenate([[0.0], np.cumsum(durations)[:-1]]), durations, pitches))
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--new", type=int, default=None, help="tokens generated per sample")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=None, help="median of this many runs (default 5)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True, help="also the compiled step")
    parser.add_argument("--no-meter-tokens", action="store_true", help="REMI without tempo and time-signature tokens")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    new = args.new or (64 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 5)

    from transformers import GPT2Config, GPT2LMHeadModel

    meter = {"use_tempos": False, "use_time_signatures": False} if args.no_meter_tokens else {}
    tokenizer = build_tokenizer(TokenizerSettings(**meter))
    vocab = len(tokenizer)
    d_model, n_layers, n_heads = 256, 4, 4
    torch.manual_seed(0)
    ours = MusicTransformer(
        ModelConfig(vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_seq_len=1024)
    ).eval()
    peer = GPT2LMHeadModel(
        GPT2Config(vocab_size=vocab, n_embd=d_model, n_layer=n_layers, n_head=n_heads, n_positions=1024,
                   resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    ).eval()  # fmt: skip
    base = GenerationSettings(
        max_tokens=new, min_tokens=new, max_bars=10_000, top_p=1.0, grammar=False, copy_blocking=False
    )
    bos = np.array([tokenizer.vocab["BOS_None"]])
    machine = {"threads": args.threads, "cpus": os.cpu_count(), "torch": torch.__version__, "new_tokens": new,
               "vocab": vocab, "timing": f"median of {repeats} interleaved runs after one warm-up"}  # fmt: skip

    for batch in (1, 16):
        seeds = list(range(batch))
        load_before = load()
        prompt = torch.full((batch, 1), 1, dtype=torch.long)

        def hf(prompt=prompt):
            with torch.no_grad():
                peer.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=new,
                              min_new_tokens=new, top_k=0, top_p=1.0, temperature=1.0, use_cache=True)  # fmt: skip

        runs = {"eager": lambda seeds=seeds: sample_tokens(ours, tokenizer, base, seeds, bos)}
        if args.compile:
            runs["compiled"] = lambda seeds=seeds: sample_tokens(ours, tokenizer, base, seeds, bos, compiled=True)
        runs["peer"] = hf
        median, first = medians(runs, repeats)
        goal = 3.0 if batch == 1 else 2.0
        best = median.get("compiled", median["eager"])
        row = {
            "benchmark": f"generate.batch{batch}",
            "ours_tokens_per_s": round(batch * new / best, 1),
            "ours": "compiled step" if args.compile else "eager",
            "peer": "transformers GPT2LMHeadModel.generate (KV cache, sampling)",
            "peer_tokens_per_s": round(batch * new / median["peer"], 1),
            "ratio": round(median["peer"] / best, 3), "goal_ratio": goal, "met": median["peer"] / best >= goal,
            "eager_tokens_per_s": round(batch * new / median["eager"], 1),
            "eager_ratio": round(median["peer"] / median["eager"], 3),
        }  # fmt: skip
        if args.compile:
            row["compiled_speedup"] = round(median["eager"] / median["compiled"], 3)
            row["compile_s"] = round(first["compiled"] - median["compiled"], 1)
        print(json.dumps({**row, **machine, "loadavg_1min": [load_before, load()]}))

    index = NGramIndex.build(corpus(200), [f"p{i}" for i in range(200)], n=(index_n_for(16),))
    constrained = base.model_copy(update={"grammar": True, "copy_blocking": True, "max_copy_notes": 16})
    for batch in (1, 16):
        seeds = list(range(batch))
        load_before = load()
        runs = {}
        for mode in ("eager", "compiled") if args.compile else ("eager",):
            on = mode == "compiled"
            runs[f"{mode}_plain"] = lambda seeds=seeds, on=on: sample_tokens(ours, tokenizer, base, seeds, bos, compiled=on)
            runs[f"{mode}_guarded"] = lambda seeds=seeds, on=on: sample_tokens(
                ours, tokenizer, constrained, seeds, bos, index, compiled=on
            )
        median, _ = medians(runs, repeats)
        mode = "compiled" if args.compile else "eager"
        plain_s, guarded_s = median[f"{mode}_plain"], median[f"{mode}_guarded"]
        overhead = guarded_s / plain_s - 1.0
        row = {
            "benchmark": f"generate.constraints_overhead.batch{batch}",
            "ours": "compiled step" if args.compile else "eager",
            "ours_tokens_per_s": round(batch * new / guarded_s, 1),
            "peer": "our unconstrained sampling",
            "peer_tokens_per_s": round(batch * new / plain_s, 1),
            "ratio": round(plain_s / guarded_s, 3), "overhead": round(overhead, 3),
            "goal_overhead": 0.15, "met": overhead <= 0.15,
            "eager_overhead": round(median["eager_guarded"] / median["eager_plain"] - 1.0, 3),
            "eager_guarded_tokens_per_s": round(batch * new / median["eager_guarded"], 1),
        }  # fmt: skip
        print(json.dumps({**row, **machine, "loadavg_1min": [load_before, load()]}))


if __name__ == "__main__":
    main()
