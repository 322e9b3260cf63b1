"""Rotary position embeddings (RoPE): angles from absolute positions, applied as complex products.

Positions are computed on demand (no table), so generation can run past the training length.
"""

from __future__ import annotations

import torch

__all__ = ["rope_rotation", "apply_rope"]


def rope_rotation(positions: torch.Tensor, head_dim: int, base: float) -> torch.Tensor:
    """cos and sin of the rotary angles ``position * base ** (-2j / head_dim)``, j < head_dim / 2.

    positions: (T,) integer absolute positions, any size (no table, so no length limit).
    Returns (T, 1, Dh / 2, 2) float32: the pairs (cos, sin), that is the complex factors
    exp(i * angle) as real pairs, broadcastable over (B, T, H, Dh / 2, 2).
    """
    inv_freq = base ** (
        -torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )  # (Dh/2,)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (T, Dh/2)
    return torch.stack((angles.cos(), angles.sin()), dim=-1)[:, None]  # (T, 1, Dh/2, 2)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x[..., 2j], x[..., 2j + 1]) of x (B, T, H, Dh) by ``rotation[..., j]``.

    The pair is read as the complex number x[2j] + i x[2j + 1] (the Llama layout), so in eager
    mode the whole rotation is one complex multiply (and one more in backward) instead of a
    chain of elementwise ops: on CPU that makes RoPE several times cheaper. Half-precision
    inputs (autocast) are rotated in float32 and cast back. Under ``torch.compile``, which
    generates no code for complex numbers, the same product is written out in real arithmetic
    so that it fuses into one kernel.
    """
    compute = x if x.dtype in (torch.float32, torch.float64) else x.float()
    pairs = compute.unflatten(-1, (-1, 2))  # (B, T, H, Dh/2, 2)
    rotation = rotation.to(compute.dtype)  # (T, 1, Dh/2, 2)
    if torch.compiler.is_compiling():
        re, im = pairs.unbind(-1)  # (B, T, H, Dh/2) each
        cos, sin = rotation.unbind(-1)  # (T, 1, Dh/2) each
        rotated = torch.stack((re * cos - im * sin, re * sin + im * cos), dim=-1)
    else:
        product = torch.view_as_complex(pairs) * torch.view_as_complex(rotation)
        rotated = torch.view_as_real(product)  # (B, T, H, Dh/2, 2)
    return rotated.flatten(-2).to(x.dtype)  # (B, T, H, Dh)
