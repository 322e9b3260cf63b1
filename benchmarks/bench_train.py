"""Training throughput of MusicTransformer against Hugging Face GPT2LMHeadModel, same shape.

    python benchmarks/bench_train.py                 # CPU, fp32, the bench shape (d 384, 6 layers, 256 tokens)
    python benchmarks/bench_train.py --shape study   # the study's shape (d 128, 3 layers, 128 tokens, batch 16)
    python benchmarks/bench_train.py --shape mastery # the mastery study's (d 64, 2 layers, 128 tokens, batch 16)
    python benchmarks/bench_train.py --bf16          # also both models under bf16 autocast
    python benchmarks/bench_train.py --no-compile    # without our compiled training step
    python benchmarks/bench_train.py --device cuda   # GPU: fp32 and bf16 autocast, MFU

Our model runs eager and compiled (the training loop's own compiled step:
``curricmusic.training.compiled``, inductor at a fixed shape, deterministic kernels), beside the
peer. Compiling is timed apart from the steps, in two fresh child processes that share a new,
empty inductor cache: the first pays the whole compilation (cold cache), the second what a later
run of a study pays for the same shape (warm cache: tracing again, loading the kernels).

Both models get the same width, depth, heads, vocabulary, sequence length and batch, dropout 0,
the same data and the same optimizer (fused AdamW); a timed step is forward + loss + backward +
optimizer step. GPT2 runs with ``attn_implementation="sdpa"`` (its default in transformers 5;
``--peer-attn eager`` for the other). After warm-up the models' steps are interleaved (ours, peer,
ours, peer, ...) so that a slow phase of a shared machine hits both; tokens/s comes from the
median step of ``--steps`` (at least 5) and the best step is reported beside it (contention only
ever slows a step down). The load average and thread count are printed with the figures.

In the same run the script measures the machine's fp32 matmul throughput (best of repeated
large ``torch.mm``) and turns our tokens/s into achieved FLOP/s with
``MusicTransformer.flops_per_token`` (6 N + 12 L T C; the same count serves GPT2, whose matmuls
are the same). Peak memory is the growth of the peak resident set (``VmHWM``) in a fresh child
process per model over model build and three training steps.

glibc returns large freed blocks to the kernel, so every step page-faults its activations in
again; on a busy virtual machine that was seen to cost more than the arithmetic (on a quiet one it
makes no measurable difference). The script therefore raises glibc's mmap and trim thresholds
(``mallopt``) for every measurement, ours and peer alike; ``--system-malloc`` keeps the defaults.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

GOAL_RATIO = 2.5
GOAL_FLOPS_FRACTION = 0.7
# issue 19: compiled over eager at the study's shape, or this fraction of the matmul peak; and
# compiled over the peer at the bench shape
GOAL_COMPILED_SPEEDUP = 1.5
GOAL_COMPILED_FLOPS_FRACTION = 0.75
GOAL_COMPILED_RATIO = 1.3
#: (d_model, n_layers, n_heads, seq_len, batch) of each ``--shape``
SHAPES = {
    "bench": (384, 6, 6, 256, 16),
    "study": (128, 3, 4, 128, 16),
    "mastery": (64, 2, 2, 128, 16),
}
PEER = "transformers.GPT2LMHeadModel"
# Dense bf16 tensor-core peak FLOP/s from the data sheets, for MFU; the first name found in
# torch.cuda.get_device_name() wins (None for an unlisted GPU).
GPU_PEAK_BF16 = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}
# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="bench", help="preset of the five numbers below")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--n-layers", type=int, default=None)
    parser.add_argument("--n-heads", type=int, default=None)
    parser.add_argument("--vocab", type=int, default=300)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per model (at least 5)")
    parser.add_argument("--threads", type=int, default=_usable_cores())
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--bf16", action="store_true", help="also time bf16 autocast (always on GPU)"
    )
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=True, help="also time our compiled training step"
    )
    parser.add_argument("--peer-attn", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults")
    parser.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in zip(("d_model", "n_layers", "n_heads", "seq_len", "batch"), SHAPES[args.shape], strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.steps < 5:
        parser.error("--steps: at least 5 (the figures are medians)")
    return args


def tune_glibc_malloc() -> bool:
    """Keep freed blocks up to 32 MiB in the heap and never trim it: no page faults per step."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
            and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        )
    except (OSError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------
# Models and their training steps


def build(args: argparse.Namespace, which: str, device: torch.device):
    """(model, train_step) for ``which`` in ours, ours_compiled, peer (+ "_bf16")."""
    torch.manual_seed(0)
    if which.startswith("ours"):
        from curricmusic.model.transformer import ModelConfig, MusicTransformer

        config = ModelConfig(
            vocab_size=args.vocab,
            d_model=args.d_model,
            n_layers=args.n_layers,
            n_heads=args.n_heads,
            max_seq_len=args.seq_len,
            dropout=0.0,
        )
        model = MusicTransformer(config).to(device)
        if "compiled" in which:  # the training loop's own compiled step
            from curricmusic.training.compiled import compile_for_training

            compile_for_training(model)

        def loss_of(x, y):
            return model(x, y)[1]

    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=args.vocab,
            n_positions=args.seq_len,
            n_embd=args.d_model,
            n_layer=args.n_layers,
            n_head=args.n_heads,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=0,
            eos_token_id=0,
            attn_implementation=args.peer_attn,
        )
        model = GPT2LMHeadModel(config).to(device)
        if model.config._attn_implementation != args.peer_attn:
            raise SystemExit(f"GPT2 runs {model.config._attn_implementation}, not {args.peer_attn}")

        def loss_of(x, y):
            return model(input_ids=x, labels=x).loss  # GPT2 shifts the labels itself

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, fused=True)
    bf16 = which.endswith("_bf16")
    from curricmusic.training.compiled import deterministic_kernels

    deterministic = "compiled" in which and device.type == "cpu"

    def train_step(x, y) -> torch.Tensor:
        with deterministic_kernels(deterministic):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = loss_of(x, y)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return model, train_step


def batch(args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=gen).to(device)
    return idx[:, :-1].contiguous(), idx[:, 1:].contiguous()  # (B, T) inputs, targets


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(args: argparse.Namespace, variants: list[str], device: torch.device) -> dict:
    """Per variant: step times of ``args.steps`` steps, taken in turn with the other variants."""
    x, y = batch(args, device)
    steps, models = {}, {}
    for which in variants:
        models[which], steps[which] = build(args, which, device)
        for _ in range(args.warmup):
            steps[which](x, y)
        sync(device)
    times: dict[str, list[float]] = {which: [] for which in variants}
    for _ in range(args.steps):
        for which in variants:
            start = time.perf_counter()
            steps[which](x, y)
            sync(device)
            times[which].append(time.perf_counter() - start)
    tokens = args.batch * args.seq_len
    return {
        which: {
            "best_tokens_per_s": tokens / min(t),
            "median_tokens_per_s": tokens / statistics.median(t),
            "params": sum(p.numel() for p in models[which].parameters()),
        }
        for which, t in times.items()
    }


def _rss_peak_kib(reset: bool = False) -> int:
    """Peak resident set of this process (VmHWM), optionally reset to the current RSS first.

    ``ru_maxrss`` cannot serve: a child inherits its parent's high-water mark across exec.
    """
    if reset:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM (Linux >= 4.0)
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise OSError("no VmHWM in /proc/self/status")


def memory_worker(args: argparse.Namespace) -> dict:
    """Growth of the peak resident set over model build and a few training steps (own process)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y = batch(args, device)
    before = _rss_peak_kib(reset=True)
    _, train_step = build(args, args.memory_worker, device)
    for _ in range(3):
        train_step(x, y)
    sync(device)
    out = {"peak_rss_mb": (_rss_peak_kib() - before) / 1024}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def compile_worker(args: argparse.Namespace) -> dict:
    """Seconds to build our compiled model and take its first training step, then one more
    step's (own process: nothing compiled before it but what the inductor cache holds)."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x, y = batch(args, device)
    start = time.perf_counter()
    _, train_step = build(args, "ours_compiled", device)
    train_step(x, y)
    sync(device)
    first = time.perf_counter() - start
    start = time.perf_counter()
    train_step(x, y)
    sync(device)
    return {"first_step_s": first, "step_s": time.perf_counter() - start}


def compile_seconds(args: argparse.Namespace) -> dict:
    """Compile time with a cold inductor cache, then a warm one (two processes, one new cache)."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--compile-worker"]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            if proc.returncode:
                raise SystemExit(f"compile worker failed:\n{proc.stderr[-4000:]}")
            timing = json.loads(proc.stdout.strip().splitlines()[-1])
            out[f"compile_s_{label}_cache"] = round(timing["first_step_s"] - timing["step_s"], 1)
    return out


def memory_of(args: argparse.Namespace, which: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--memory-worker", which]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"memory worker {which} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, reps: int = 12) -> float:
    """FLOP/s of an n x n x n matmul into a preallocated output, best of ``reps``."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)
    best = float("inf")
    for i in range(reps + 2):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        if i >= 2:  # warm-up
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# ---------------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    malloc_tuned = not args.system_malloc and tune_glibc_malloc()
    if args.memory_worker:
        print(json.dumps(memory_worker(args)))
        return
    if args.compile_worker:
        print(json.dumps(compile_worker(args)))
        return
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    n = 8192 if on_gpu else 2048

    variants = ["ours", "peer"]
    if args.compile:
        variants.append("ours_compiled")
    if args.bf16 or on_gpu:
        variants += ["ours_bf16", "peer_bf16"]
    load_before = os.getloadavg()[0]
    peak_fp32 = matmul_flops(device, torch.float32, n)
    timed = time_interleaved(args, variants, device)
    peak_fp32 = max(peak_fp32, matmul_flops(device, torch.float32, n))  # quietest of two tries
    memory = {which: memory_of(args, which) for which in ("ours", "peer")}
    compile_time = compile_seconds(args) if args.compile else {}

    from curricmusic.model.transformer import ModelConfig, MusicTransformer

    shape = {
        "d_model": args.d_model,
        "n_layers": args.n_layers,
        "n_heads": args.n_heads,
        "vocab": args.vocab,
        "seq_len": args.seq_len,
        "batch": args.batch,
    }
    with torch.device("meta"):
        flops_per_token = MusicTransformer(
            ModelConfig(
                vocab_size=args.vocab,
                d_model=args.d_model,
                n_layers=args.n_layers,
                n_heads=args.n_heads,
                max_seq_len=args.seq_len,
            )
        ).flops_per_token(args.seq_len)

    def tps(which: str, kind: str = "best") -> float:
        return timed[which][f"{kind}_tokens_per_s"]

    ours, peer = tps("ours"), tps("peer")
    result = {
        "benchmark": "train",
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "threads": args.threads,
        "dtype": "float32",
        "shape": shape,
        "shape_name": args.shape,
        "timing": f"median (and best) of {args.steps} interleaved steps after {args.warmup} warm-up",
        "ours_tokens_per_s": round(ours, 1),
        "peer": PEER,
        "peer_attn_implementation": args.peer_attn,
        "peer_tokens_per_s": round(peer, 1),
        "ratio": round(ours / peer, 3),
        "goal_ratio": GOAL_RATIO,
        "ours_median_tokens_per_s": round(tps("ours", "median"), 1),
        "peer_median_tokens_per_s": round(tps("peer", "median"), 1),
        "median_ratio": round(tps("ours", "median") / tps("peer", "median"), 3),
        "matmul_flops": round(peak_fp32),
        "flops_per_token": flops_per_token,
        "achieved_flops": round(flops_per_token * ours),
        "flops_fraction": round(flops_per_token * ours / peak_fp32, 3),
        "peer_flops_fraction": round(flops_per_token * peer / peak_fp32, 3),
        "goal_flops_fraction": GOAL_FLOPS_FRACTION,
        "peak_rss_mb": round(memory["ours"]["peak_rss_mb"], 1),
        "peer_peak_rss_mb": round(memory["peer"]["peak_rss_mb"], 1),
        "ours_params": timed["ours"]["params"],
        "peer_params": timed["peer"]["params"],
        "malloc_tuned": malloc_tuned,
        # other processes on the machine: a load above the thread count means shared cores
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if args.compile:
        compiled, eager, peer_median = (tps(w, "median") for w in ("ours_compiled", "ours", "peer"))
        result.update(
            {
                "compiled_median_tokens_per_s": round(compiled, 1),
                "compiled_tokens_per_s": round(tps("ours_compiled"), 1),
                "compiled_speedup": round(compiled / eager, 3),
                "goal_compiled_speedup": GOAL_COMPILED_SPEEDUP,
                "compiled_median_ratio": round(compiled / peer_median, 3),
                "goal_compiled_ratio": GOAL_COMPILED_RATIO,
                "compiled_flops_fraction": round(flops_per_token * compiled / peak_fp32, 3),
                "goal_compiled_flops_fraction": GOAL_COMPILED_FLOPS_FRACTION,
                **compile_time,
            }
        )
    if "ours_bf16" in timed:
        bf16 = tps("ours_bf16")
        result.update(
            {
                "bf16_ours_tokens_per_s": round(bf16, 1),
                "bf16_peer_tokens_per_s": round(tps("peer_bf16"), 1),
                "bf16_ratio": round(bf16 / tps("peer_bf16"), 3),
                "bf16_matmul_flops": round(matmul_flops(device, torch.bfloat16, n)),
                "bf16_achieved_flops": round(flops_per_token * bf16),
            }
        )
        if on_gpu:
            name = torch.cuda.get_device_name()
            peak_bf16 = next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
            result["bf16_mfu"] = round(flops_per_token * bf16 / peak_bf16, 4) if peak_bf16 else None
            result["bf16_flops_fraction"] = round(
                flops_per_token * bf16 / result["bf16_matmul_flops"], 3
            )
            result["peak_cuda_mb"] = round(memory["ours"]["peak_cuda_mb"], 1)
            result["peer_peak_cuda_mb"] = round(memory["peer"]["peak_cuda_mb"], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
