"""The key/value cache of every layer for incremental decoding (see MusicTransformer.forward_step)."""

from __future__ import annotations

import torch

__all__ = ["KVCache"]


class KVCache:
    """Preallocated keys and values of every layer for incremental decoding.

    ``keys[layer]`` and ``values[layer]`` are (B, H, capacity, Dh), one tensor per layer (so a
    compiled decoding step can write each in place; see :mod:`curricmusic.model.decode`);
    entries ``[:length]`` along the time axis are filled, oldest first. Keys are stored already rotated at their absolute positions, so
    attention between a new query at position p and a cached key at position q only depends
    on p - q, whatever has been dropped. ``next_position`` is the absolute position of the next
    token; it only grows (a :meth:`slide` keeps it). Every batch row advances in lockstep.
    Create one with :meth:`MusicTransformer.new_kv_cache`.
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_heads: int,
        capacity: int,
        head_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if batch_size <= 0 or capacity <= 0:
            raise ValueError(
                f"KVCache: batch_size and capacity must be positive, got {batch_size}, {capacity}"
            )
        shape = (batch_size, n_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.length = 0
        self.next_position = 0

    @property
    def k(self) -> torch.Tensor:
        """Every layer's keys, (L, B, H, capacity, Dh): a copy, for inspection."""
        return torch.stack(self.keys)

    @property
    def v(self) -> torch.Tensor:
        """Every layer's values, (L, B, H, capacity, Dh): a copy, for inspection."""
        return torch.stack(self.values)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def remaining(self) -> int:
        """How many more tokens fit before a :meth:`slide` or :meth:`MusicTransformer.refill`."""
        return self.capacity - self.length

    def reset(self, next_position: int = 0) -> None:
        """Forget every entry; the next token gets absolute position ``next_position``."""
        self.length = 0
        self.next_position = next_position

    def slide(self, keep: int) -> None:
        """Keep only the newest ``keep`` entries (moved to the front); positions keep increasing.

        Cheap (one copy, no model call), and exact for the first layer. In deeper layers the kept
        entries were computed while the dropped tokens were still visible, so the result differs
        from running the model over the kept window alone (that is :meth:`MusicTransformer.refill`);
        it is the StreamingLLM / Transformer-XL approximation. Use ``refill`` for exactness.
        """
        if not 0 <= keep <= self.length:
            raise ValueError(f"KVCache.slide: keep must be in [0, {self.length}], got {keep}")
        start = self.length - keep
        if keep and start:
            for cached in (*self.keys, *self.values):
                cached[:, :, :keep] = cached[:, :, start : self.length].clone()
        self.length = keep

    def append(
        self, layer: int, k_new: torch.Tensor, v_new: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k_new, v_new (B, H, T, Dh) after the filled entries of ``layer``.

        Returns the keys and values to attend over, (B, H, length + T, Dh) views. ``length``
        itself moves once per step, by :meth:`commit`, after every layer has appended.
        """
        end = self.length + k_new.shape[2]
        keys, values = self.keys[layer], self.values[layer]
        keys[:, :, self.length : end] = k_new
        values[:, :, self.length : end] = v_new
        return keys[:, :, :end], values[:, :, :end]

    def commit(self, n_tokens: int, next_position: int) -> None:
        """Count the ``n_tokens`` every layer has appended; the next token gets ``next_position``."""
        if not 0 <= n_tokens <= self.remaining:
            raise ValueError(f"KVCache.commit: {n_tokens} tokens do not fit the {self.remaining} left")
        self.length += n_tokens
        self.next_position = next_position
