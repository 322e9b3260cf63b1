"""A static-shape decoding step: one token per row, written into a preallocated KV cache.

:func:`decode_logits` is :meth:`MusicTransformer.forward_step` for one new token, written so that
``torch.compile`` turns it into one graph that never changes between steps (the PyTorch team's
gpt-fast does the same): the cache slot and the absolute position are tensors (data, not
Python numbers), every layer's keys and values are written in place at that slot with
``index_copy_``, and attention reads a fixed number of cache slots (``n_keys``, a Python number
that changes only when the sequence outgrows it), masking the slots past the new token. So a
compiled step allocates nothing that depends on the step and is compiled once per batch size
and ``n_keys``.

Shapes: B batch, C = d_model, H heads, Dh head size, V vocabulary, S cache capacity.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from curricmusic.model.rope import apply_rope, rope_rotation
from curricmusic.model.transformer import Block, MusicTransformer

__all__ = ["decode_logits", "keys_for"]

#: The fewest cache slots a step attends over; above it, powers of two (see :func:`keys_for`).
#: Attending over masked slots costs little next to the matrix products of a small model, and
#: every width is one more graph to compile: a cache of up to 256 slots (the study's 128-token
#: context included) needs one.
MIN_KEYS = 256


def keys_for(slot: int, capacity: int) -> int:
    """The cache slots a step at ``slot`` attends over: the smallest power of two (at least
    :data:`MIN_KEYS`) past ``slot``, at most ``capacity``; so a 1024-slot cache uses 3 sizes."""
    n = MIN_KEYS
    while n <= slot:
        n *= 2
    return min(n, capacity)


def decode_logits(
    model: MusicTransformer,
    tokens: torch.Tensor,
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    slot: torch.Tensor,
    position: torch.Tensor,
    n_keys: int,
) -> torch.Tensor:
    """Logits (B, V) of the token after ``tokens`` (B, 1), the newest token of every row.

    ``keys[layer]`` / ``values[layer]``: (B, H, S, Dh) caches holding the earlier tokens in slots
    ``0 .. slot - 1``; this token's key and value are written at ``slot`` (a (1,) int64 tensor).
    ``position``: (1,) int64, its absolute position (the rotary angle; it may exceed S after a
    re-encoded window). Attention reads slots ``0 .. n_keys - 1`` with those past ``slot``
    masked, so ``slot < n_keys <= S``. Eval mode, no gradients, no dropout.
    """
    config = model.config
    rotation = rope_rotation(position, config.head_dim, config.rope_base)  # (1, 1, Dh/2, 2)
    visible = (torch.arange(n_keys, device=tokens.device) <= slot)[None, :]  # (1, n_keys)
    x = F.embedding(tokens, model.tok_emb.weight)  # (B, 1, C)
    for layer, block in enumerate(cast("list[Block]", model.blocks)):
        x = _block_step(block, x, rotation, keys[layer], values[layer], slot, visible)
    norm = model.norm
    x = F.layer_norm(x[:, 0], norm.normalized_shape, norm.weight, norm.bias, norm.eps)  # (B, C)
    return F.linear(x, model.tok_emb.weight)  # (B, V), the tied head


def _block_step(
    block: Block,
    x: torch.Tensor,
    rotation: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    slot: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """:meth:`Block.step` against a static cache: x (B, 1, C) -> (B, 1, C)."""
    attn, mlp, n1, n2 = block.attn, block.mlp, block.norm1, block.norm2
    B, _, C = x.shape
    h = F.layer_norm(x, n1.normalized_shape, n1.weight, n1.bias, n1.eps)
    qkv = F.linear(h, attn.qkv.weight, attn.qkv.bias).view(B, 1, 3, attn.n_heads, attn.head_dim)
    qk = apply_rope(qkv[:, :, :2], rotation.unsqueeze(1))  # (B, 1, 2, H, Dh)
    q = qk[:, :, 0].transpose(1, 2)  # (B, H, 1, Dh)
    keys.index_copy_(2, slot, qk[:, :, 1].transpose(1, 2).to(keys.dtype))  # in place, at ``slot``
    values.index_copy_(2, slot, qkv[:, :, 2].transpose(1, 2).to(values.dtype))
    n_keys = visible.shape[1]
    y = F.scaled_dot_product_attention(
        q.to(keys.dtype), keys[:, :, :n_keys], values[:, :, :n_keys], attn_mask=visible
    )  # (B, H, 1, Dh)
    y = y.transpose(1, 2).reshape(B, 1, C).to(x.dtype)
    x = x + F.linear(y, attn.proj.weight, attn.proj.bias)
    h = F.layer_norm(x, n2.normalized_shape, n2.weight, n2.bias, n2.eps)
    return x + F.linear(F.gelu(F.linear(h, mlp.fc.weight, mlp.fc.bias)), mlp.proj.weight, mlp.proj.bias)
