"""Logit filters and a batch-independent sampler, as pure tensor functions.

Each row of a batch draws its token from its own counter-based random stream (a hash of the row's
seed and the step), so a sample depends on its seed alone, not on the other rows of the batch.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["filter_logits", "row_uniforms", "sample_rows", "sample_seed"]

_MASK64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a run seeded with ``seed`` (stable, recorded in manifests)."""
    mixed = _splitmix64(np.array([(seed * 1_000_003 + index) & _MASK64], dtype=np.uint64))
    return int(mixed[0] >> np.uint64(1))


def row_uniforms(seeds: np.ndarray, steps: int | np.ndarray) -> np.ndarray:
    """Uniforms in [0, 1), a pure function of (seed, step): ``(B,)`` for one step, ``(B, S)`` for many."""
    seeds = np.asarray(seeds, dtype=np.uint64)
    step_keys = _splitmix64(np.atleast_1d(np.asarray(steps, dtype=np.uint64)))  # (S,)
    keys = _splitmix64(seeds[:, None] ^ step_keys[None, :])  # (B, S)
    values = (keys >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return values[:, 0] if np.ndim(steps) == 0 else values


def filter_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    min_p: float = 0.0,
) -> torch.Tensor:
    """Temperature, then top-k, top-p (nucleus) and min-p filtering; removed entries become -inf.

    logits: (B, V); entries already -inf (grammar masks) stay -inf. ``top_k = 0``, ``top_p = 1``
    and ``min_p = 0`` switch the respective filter off. Each filter keeps at least one token.
    - top-k keeps the k largest logits;
    - top-p keeps the smallest set of most likely tokens whose probability reaches ``top_p``;
    - min-p keeps tokens with p >= min_p * max p (Nguyen et al. 2024).
    """
    if not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    scores = logits if temperature == 1.0 else _tempered(logits, temperature)
    if top_k and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]  # (B, 1)
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if min_p > 0:
        probs = torch.softmax(scores, dim=-1)
        threshold = probs.max(dim=-1, keepdim=True).values * min_p
        scores = scores.masked_fill(probs < threshold, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_scores, dim=-1)
        drop_sorted = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p  # mass before each token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (B, V), shifted by each row's largest finite logit first (softmax
    does not change): at any finite temperature masked entries stay -inf and nothing becomes NaN
    (``-inf / 1e308`` and ``5 / 1e-300`` would)."""
    masked = torch.isneginf(logits)
    top = logits.masked_fill(masked, float("-inf")).amax(dim=-1, keepdim=True)  # (B, 1)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # a fully masked row stays so
    # below 1e-30 every temperature is greedy alike, and float32 would round it to 0
    return torch.where(masked, logits, (logits - top) / max(temperature, 1e-30))


def sample_rows(scores: torch.Tensor, uniforms: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling of one token per row: scores (B, V), uniforms (B,) -> ids (B,) int64.

    The uniform is scaled just below the total mass, so the first CDF entry above it is always a
    token of positive probability.
    """
    cdf = torch.softmax(scores.float(), dim=-1).cumsum(dim=-1)  # (B, V)
    u = torch.as_tensor(uniforms, dtype=cdf.dtype, device=cdf.device) * (1.0 - 1e-6)
    threshold = (u * cdf[:, -1]).unsqueeze(-1)  # (B, 1)
    # a row without a finite distribution (NaN scores) would index one past the vocabulary
    return torch.searchsorted(cdf, threshold, right=True).squeeze(-1).clamp_(max=scores.shape[-1] - 1)
