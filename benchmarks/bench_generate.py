"""Sampling speed against Hugging Face transformers' GPT2LMHeadModel.generate, same shapes.

    python benchmarks/bench_generate.py [--quick] [--threads N] [--repeats N] [--no-meter-tokens]

Both models have the same width, depth, heads and vocabulary (the quickstart model: d 256, 4
layers, 4 heads, REMI vocabulary with tempos and time signatures; ``--no-meter-tokens`` drops
them, the vocabulary before issue 9), random weights, KV caches on, plain sampling (temperature 1,
no top-k / top-p), and generate exactly ``--new`` tokens after a one-token prompt (EOS banned),
at batch 1 and batch 16, measured in the same run. A third line measures what the REMI grammar
mask plus copy-blocking (against a 200-piece n-gram index) cost over unconstrained sampling.
"""

from __future__ import annotations

import argparse
import json
import os
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


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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
    parser.add_argument("--repeats", type=int, default=None, help="best of this many runs (default 3)")
    parser.add_argument("--no-meter-tokens", action="store_true", help="REMI without tempo and time-signature tokens")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    new = args.new or (64 if args.quick else 256)
    repeats = args.repeats or (1 if args.quick else 3)

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
               "vocab": vocab, "load": round(os.getloadavg()[0], 1)}  # fmt: skip

    for batch in (1, 16):
        seeds = list(range(batch))
        ours_s = best_of(lambda seeds=seeds: sample_tokens(ours, tokenizer, base, seeds, bos), repeats)
        prompt = torch.full((batch, 1), 1, dtype=torch.long)

        def hf(prompt=prompt):
            with torch.no_grad():
                peer.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, max_new_tokens=new,
                              min_new_tokens=new, top_k=0, top_p=1.0, temperature=1.0, use_cache=True)  # fmt: skip

        peer_s = best_of(hf, repeats)
        ratio = peer_s / ours_s
        goal = 3.0 if batch == 1 else 2.0
        print(json.dumps({
            "benchmark": f"generate.batch{batch}",
            "ours_tokens_per_s": round(batch * new / ours_s, 1),
            "peer": "transformers GPT2LMHeadModel.generate (KV cache, sampling)",
            "peer_tokens_per_s": round(batch * new / peer_s, 1),
            "ratio": round(ratio, 3), "goal_ratio": goal, "met": ratio >= goal, **machine,
        }))  # fmt: skip

    index = NGramIndex.build(corpus(200), [f"p{i}" for i in range(200)], n=(index_n_for(16),))
    constrained = base.model_copy(update={"grammar": True, "copy_blocking": True, "max_copy_notes": 16})
    for batch in (1, 16):
        seeds = list(range(batch))
        plain_s = best_of(lambda seeds=seeds: sample_tokens(ours, tokenizer, base, seeds, bos), repeats)
        guarded_s = best_of(lambda seeds=seeds: sample_tokens(ours, tokenizer, constrained, seeds, bos, index), repeats)
        overhead = guarded_s / plain_s - 1.0
        print(json.dumps({
            "benchmark": f"generate.constraints_overhead.batch{batch}",
            "ours_tokens_per_s": round(batch * new / guarded_s, 1),
            "peer": "our unconstrained sampling",
            "peer_tokens_per_s": round(batch * new / plain_s, 1),
            "ratio": round(plain_s / guarded_s, 3), "overhead": round(overhead, 3),
            "goal_overhead": 0.15, "met": overhead <= 0.15, **machine,
        }))  # fmt: skip


if __name__ == "__main__":
    main()
