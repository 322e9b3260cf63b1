"""The decoder-only transformer over MIDI tokens: config, model, save / load.

Plain PyTorch, in the spirit of nanoGPT (rotary embeddings in :mod:`curricmusic.model.rope`, the KV
cache in :mod:`curricmusic.model.kv_cache`). The architecture:

- token embedding (no learned positions: positions enter through rotary embeddings);
- ``n_layers`` pre-norm blocks ``x + attn(norm(x))``, ``x + mlp(norm(x))``. The norm is
  :class:`torch.nn.LayerNorm` (weight always, bias only with ``bias=True``): it has a fused CPU and
  GPU kernel for forward and backward, where RMSNorm is a chain of elementwise ops on CPU;
- causal self-attention: one fused QKV projection, rotary position embeddings (RoPE) on q and k,
  then
  :func:`torch.nn.functional.scaled_dot_product_attention` with ``is_causal=True``;
- MLP ``d_model -> mlp_ratio * d_model -> d_model`` with exact (erf) GELU, as nanoGPT; on CPU its
  kernel is faster than GPT-2's tanh approximation;
- a final norm and an output head whose weight *is* the token embedding (tied).

Init follows GPT-2: normal(0, 0.02) everywhere, residual output projections normal(0,
0.02 / sqrt(2 * n_layers)), biases zero, norms one.

Generation uses :class:`KVCache` and :meth:`MusicTransformer.forward_step`. RoPE angles are computed
from absolute positions on demand, so positions may run past ``max_seq_len``; when the cache is full,
either re-encode the most recent tokens (:meth:`MusicTransformer.refill`, exact: the same as
running the model over that window) or drop the oldest entries in place (:meth:`KVCache.slide`,
cheap, StreamingLLM-like: see its docstring for what that approximates).

Shapes in comments: B batch, T time, C = d_model, H heads, Dh = C / H head size, V vocabulary,
L layers, S cached keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from curricmusic.common.atomic import atomic_path, write_json
from curricmusic.common.errors import UserError
from curricmusic.model.budget import check_inference_fits, weight_bytes
from curricmusic.model.digest import state_digest
from curricmusic.model.kv_cache import KVCache
from curricmusic.model.rope import apply_rope, rope_rotation

__all__ = [
    "ModelConfig",
    "MODEL_SIZES",
    "MusicTransformer",
    "KVCache",
    "save_model",
    "load_model",
    "weights_digest",
    "WEIGHTS_NAME",
    "CONFIG_NAME",
    "IGNORE_INDEX",
]

WEIGHTS_NAME = "model.safetensors"
IGNORE_INDEX = -100  # a target left out of the loss (padding); the token windows use the same value
CONFIG_NAME = "config.json"
_ARCHITECTURE = "MusicTransformer"
_HEADER_SLACK = 1 << 24  # a safetensors header: names, shapes and offsets of every tensor
_MAX_DIM = 2**31 - 1  # a size torch indexes with 32-bit integers in places; far above any real model
_FORMAT_VERSION = 1

# Named sizes: width, depth, heads (head size 64 for small and base) and a default context length.
# Parameter counts are for a vocabulary of about 300-500 tokens (the embedding adds V * d_model).
MODEL_SIZES: dict[str, dict[str, Any]] = {
    # ~0.8M parameters: the test suite.
    "tiny": {"d_model": 128, "n_layers": 4, "n_heads": 4, "max_seq_len": 256},
    # ~7.5M parameters: CPU experiments.
    "small": {"d_model": 320, "n_layers": 6, "n_heads": 5, "max_seq_len": 512},
    # ~85M parameters (GPT-2 small's body): one GPU.
    "base": {"d_model": 768, "n_layers": 12, "n_heads": 12, "max_seq_len": 1024},
}


# ---------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`MusicTransformer`; validated on construction, never mutated.

    ``max_seq_len`` is the training context length (the longest sequence :meth:`forward` is meant
    for); generation with a KV cache may go past it because positions are rotary.
    """

    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    max_seq_len: int = 512
    dropout: float = 0.0
    mlp_ratio: int = 4
    rope_base: float = 10000.0
    bias: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"ModelConfig.{name}: expected an integer, got {value!r}")
            if value <= 0:
                raise ValueError(f"ModelConfig.{name}: expected a positive integer, got {value}")
            if value > _MAX_DIM:
                raise ValueError(f"ModelConfig.{name}: expected at most {_MAX_DIM}, got {value}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"ModelConfig.dropout: expected a number, got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout: expected 0 <= dropout < 1, got {self.dropout}")
        if isinstance(self.rope_base, bool) or not isinstance(self.rope_base, (int, float)):
            raise ValueError(f"ModelConfig.rope_base: expected a number, got {self.rope_base!r}")
        if not 1.0 < self.rope_base < math.inf:
            raise ValueError(f"ModelConfig.rope_base: expected a finite number > 1, got {self.rope_base}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"ModelConfig.bias: expected true or false, got {self.bias!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"ModelConfig: d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"ModelConfig: head size d_model / n_heads = {self.head_dim} must be even for "
                f"rotary position embeddings"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def d_ff(self) -> int:
        return self.mlp_ratio * self.d_model

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from a dict (e.g. ``config.json``); unknown or missing keys raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"ModelConfig: expected a mapping, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(
                f"ModelConfig: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected some of: {', '.join(known)}"
            )
        if "vocab_size" not in data:
            raise ValueError("ModelConfig: missing required key 'vocab_size'")
        return cls(**data)

    @classmethod
    def from_size(
        cls, name: str, vocab_size: int, max_seq_len: int | None = None, **overrides: Any
    ) -> ModelConfig:
        """The named size ``name`` (see :data:`MODEL_SIZES`) for ``vocab_size`` tokens.

        ``max_seq_len`` defaults to the size's own; ``overrides`` replace any field
        (``d_model=384, n_layers=8``, ``dropout=0.1``, ...).
        """
        if name not in MODEL_SIZES:
            raise ValueError(
                f"unknown model size {name!r}; expected one of: {', '.join(MODEL_SIZES)}"
            )
        data: dict[str, Any] = {**MODEL_SIZES[name], "vocab_size": vocab_size, **overrides}
        if max_seq_len is not None:
            data["max_seq_len"] = max_seq_len
        return cls.from_dict(data)


# ---------------------------------------------------------------------------------------------
# Model


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.proj.is_residual_projection = True  # type: ignore[assignment]  # read by _init_weights
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        return self.resid_dropout(self.proj(self.attend(x, rotation, cache, layer)))

    def attend(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        """The attention output (B, T, C) before the output projection."""
        B, T, C = x.shape
        qkv = F.linear(x, self.qkv.weight, self.qkv.bias).view(B, T, 3, self.n_heads, self.head_dim)
        qk = apply_rope(qkv[:, :, :2], rotation.unsqueeze(1))  # (B, T, 2, H, Dh): q and k at once
        q = qk[:, :, 0].transpose(1, 2)  # (B, H, T, Dh)
        k = qk[:, :, 1].transpose(1, 2)  # (B, H, T, Dh)
        v = qkv[:, :, 2].transpose(1, 2)  # (B, H, T, Dh)
        if cache is None:
            dropout_p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            past = cache.length
            k, v = cache.append(layer, k, v)  # (B, H, S, Dh), S = past + T, in the cache's dtype
            q = q.to(k.dtype)
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif T == 1:
                y = F.scaled_dot_product_attention(q, k, v)  # one query sees every cached key
            else:
                # query i (absolute index past + i in the cache) sees keys 0 .. past + i
                keys = torch.arange(past + T, device=x.device)
                queries = torch.arange(past, past + T, device=x.device)
                mask = keys[None, :] <= queries[:, None]  # (T, S)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return y.transpose(1, 2).reshape(B, T, C).to(x.dtype)  # (B, T, C)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.proj.is_residual_projection = True  # type: ignore[assignment]  # read by _init_weights
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x))  # (B, T, mlp_ratio * C)
        return self.dropout(self.proj(h))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rotation: torch.Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rotation, cache, layer)  # (B, T, C)
        return x + self.mlp(self.norm2(x))  # (B, T, C)

    def step(self, x: torch.Tensor, rotation: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        """:meth:`forward` for decoding in eval mode: the same arithmetic, with no dropout and
        functional calls instead of module calls (whose overhead dominates one-token steps)."""
        n1, n2, attn, mlp = self.norm1, self.norm2, self.attn, self.mlp
        h = F.layer_norm(x, n1.normalized_shape, n1.weight, n1.bias, n1.eps)
        x = x + F.linear(attn.attend(h, rotation, cache, layer), attn.proj.weight, attn.proj.bias)
        h = F.layer_norm(x, n2.normalized_shape, n2.weight, n2.bias, n2.eps)
        return x + F.linear(F.gelu(F.linear(h, mlp.fc.weight, mlp.fc.bias)), mlp.proj.weight, mlp.proj.bias)


class MusicTransformer(nn.Module):
    """Decoder-only transformer; ``forward(idx, targets) -> (logits, loss)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model, bias=config.bias)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied: one tensor
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            std = 0.02
            if getattr(module, "is_residual_projection", False):
                std = 0.02 / math.sqrt(2 * self.config.n_layers)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # -- training ------------------------------------------------------------------------------

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position, and the loss when ``targets`` are given.

        idx: (B, T) int64 token ids, T <= max_seq_len, at positions 0 .. T - 1.
        targets: (B, T) int64 next-token ids; ``IGNORE_INDEX`` marks positions left out of the loss.
        Returns logits (B, T, V) and the mean cross-entropy over the counted targets (a 0-dim
        tensor; NaN if every target is ignored), or None without targets.
        """
        B, T = idx.shape
        logits = self.head(self.hidden_states(idx))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(B * T, -1), targets.reshape(B * T), ignore_index=IGNORE_INDEX
            )
        return logits, loss

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """The final (normalised) hidden states ``(B, T, C)`` of ``idx`` ``(B, T)``: what the head reads."""
        T = idx.shape[1]
        if self.config.max_seq_len < T:
            raise ValueError(
                f"sequence length {T} exceeds max_seq_len {self.config.max_seq_len}; "
                f"use forward_step with a KV cache to go further"
            )
        positions = torch.arange(T, device=idx.device)
        rotation = rope_rotation(positions, self.config.head_dim, self.config.rope_base)
        x = self.dropout(self.tok_emb(idx))  # (B, T, C)
        for block in self.blocks:
            x = block(x, rotation)  # (B, T, C)
        return self.norm(x)

    # -- generation ----------------------------------------------------------------------------

    def new_kv_cache(
        self,
        batch_size: int,
        capacity: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """An empty cache for ``batch_size`` rows and ``capacity`` tokens (default max_seq_len),
        on the model's device and in its dtype unless told otherwise."""
        weight = self.tok_emb.weight
        return KVCache(
            self.config.n_layers,
            batch_size,
            self.config.n_heads,
            capacity or self.config.max_seq_len,
            self.config.head_dim,
            device=device or weight.device,
            dtype=dtype or weight.dtype,
        )

    @torch.no_grad()
    def forward_step(
        self, idx: torch.Tensor, cache: KVCache, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Feed new tokens through the model, appending their keys and values to ``cache``.

        idx: (B, T_new) int64; the new tokens attend to every cached entry and causally to each
        other. positions: (T_new,) absolute positions, default ``cache.next_position + 0 ..
        T_new - 1``; they may exceed max_seq_len. Returns logits (B, T_new, V). Inference only
        (no gradients); dropout follows ``self.training`` as usual, so call ``eval()`` first.
        """
        B, T = idx.shape
        if cache.batch_size != B:
            raise ValueError(
                f"forward_step: batch of {B} rows, but the cache has {cache.batch_size}"
            )
        if T == 0:
            raise ValueError("forward_step: no new tokens (idx has shape (B, 0))")
        if cache.remaining < T:
            raise ValueError(
                f"forward_step: {T} new tokens do not fit the KV cache ({cache.length} of "
                f"{cache.capacity} used); call cache.slide(keep) or model.refill(cache, tokens)"
            )
        if positions is None:
            next_position = cache.next_position + T
            positions = torch.arange(cache.next_position, next_position, device=idx.device)
        elif positions.shape != (T,):
            raise ValueError(
                f"forward_step: positions must have shape ({T},), got {tuple(positions.shape)}"
            )
        else:
            next_position = int(positions[-1]) + 1
        rotation = rope_rotation(positions, self.config.head_dim, self.config.rope_base)
        if self.training:
            x = self.dropout(self.tok_emb(idx))  # (B, T, C)
            for layer, block in enumerate(self.blocks):
                x = block(x, rotation, cache, layer)  # (B, T, C)
        else:
            x = F.embedding(idx, self.tok_emb.weight)  # (B, T, C)
            for layer, block in enumerate(cast("list[Block]", self.blocks)):
                x = block.step(x, rotation, cache, layer)  # (B, T, C)
        cache.commit(T, next_position)
        norm = self.norm
        x = F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
        return F.linear(x, self.tok_emb.weight)  # (B, T, V), the tied head

    @torch.no_grad()
    def refill(self, cache: KVCache, tokens: torch.Tensor, n_new: int = 1) -> torch.Tensor:
        """Empty ``cache`` and encode the newest ``tokens`` into it: an exact sliding window.

        tokens: (B, W), the newest W tokens of the sequence; the last ``n_new`` of them have not
        been fed yet (default 1: the token just sampled, when the cache is full). They are placed
        at absolute positions ending at ``cache.next_position + n_new - 1``. Afterwards the cache
        holds exactly what running the model over this window alone gives, and the returned
        logits (B, W, V) equal that run's; ``logits[:, -1]`` predicts the token after the window.
        """
        W = tokens.shape[1]
        end = cache.next_position + n_new  # one past the window's last position
        if not 0 <= n_new <= W <= end:
            raise ValueError(
                f"refill: {W} tokens with {n_new} new do not fit the {cache.next_position} "
                f"positions fed so far"
            )
        if cache.capacity < W:
            raise ValueError(f"refill: {W} tokens do not fit the cache's capacity {cache.capacity}")
        cache.reset(next_position=end - W)
        return self.forward_step(tokens, cache)

    # -- accounting ----------------------------------------------------------------------------

    def num_parameters(self, exclude_embedding: bool = False) -> int:
        """Number of parameters, tied weights counted once.

        ``exclude_embedding`` leaves out the token embedding (which is also the output head),
        the usual "non-embedding" count of scaling-law papers.
        """
        n = sum(p.numel() for p in self.parameters())
        if exclude_embedding:
            n -= self.tok_emb.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward) at context length ``seq_len``.

        The standard estimate (Kaplan et al. 2020; PaLM appendix B; nanoGPT's MFU):
        ``6 * N + 12 * L * T * C``: 2 FLOPs per weight per token in the forward pass and 4 in
        the backward over the N parameters (the tied embedding counted once: it is the output
        head's matmul), plus attention scores q.k and the weighted sum of values, 2 * 2 * T * C
        per layer forward, times 3. It counts the full T x T score matrix, as the papers do,
        although a causal kernel can skip half; norms, activations and softmax are left out.
        """
        T = self.config.max_seq_len if seq_len is None else seq_len
        c = self.config
        return 6 * self.num_parameters() + 12 * c.n_layers * T * c.d_model


# ---------------------------------------------------------------------------------------------
# Save / load

# safetensors metadata key of the weights' content hash (see curricmusic.model.digest)
DIGEST_KEY = "weights_sha256"


def _stored_state(model: MusicTransformer) -> dict[str, torch.Tensor]:
    """The tensors a model file holds: every weight but the tied output head."""
    return {
        name: tensor.detach().contiguous().cpu()
        for name, tensor in model.state_dict().items()
        if name != "head.weight"
    }


def weights_digest(model: MusicTransformer) -> str:
    """sha256 of the model's weights (names sorted, values not file bytes): equal weights, equal
    digest, in any process; it is what ``model.safetensors`` records and load_model verifies."""
    return state_digest(_stored_state(model))



def save_model(model: MusicTransformer, directory: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``, each atomically.

    The tied output head is not stored (it is the token embedding). Returns the directory.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = _stored_state(model)
    metadata = {"format": "pt", "architecture": _ARCHITECTURE, DIGEST_KEY: state_digest(state)}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    write_json(
        directory / CONFIG_NAME,
        {
            "architecture": _ARCHITECTURE,
            "format_version": _FORMAT_VERSION,
            "config": model.config.to_dict(),
        },
    )
    return directory


def load_model(directory: str | Path, device: torch.device | str = "cpu") -> MusicTransformer:
    """Load a model written by :func:`save_model`, in eval mode, on ``device``.

    A missing directory or file, a config of another architecture or an invalid one, or weights
    that do not fit the config raise :class:`~curricmusic.common.errors.UserError` naming the path.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise UserError(
                f"{path}: not found; expected a model directory written by save_model "
                f"({CONFIG_NAME} and {WEIGHTS_NAME})"
            )
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{config_path}: not readable JSON ({error})") from None
    architecture = meta.get("architecture") if isinstance(meta, dict) else None
    if architecture != _ARCHITECTURE:
        raise UserError(
            f"{config_path}: architecture {architecture!r} is not a curricmusic {_ARCHITECTURE} "
            f"config"
        )
    if meta.get("format_version") != _FORMAT_VERSION:
        raise UserError(
            f"{config_path}: format_version {meta.get('format_version')!r} is not supported "
            f"(expected {_FORMAT_VERSION})"
        )
    try:
        config = ModelConfig.from_dict(meta.get("config"))
    except (TypeError, ValueError) as error:
        raise UserError(f"{config_path}: {error}") from None
    check_inference_fits(config, 1, config.max_seq_len, str(config_path))  # before any weight exists
    size, expected_size = weights_path.stat().st_size, weight_bytes(config) + _HEADER_SLACK
    if size > expected_size:
        raise UserError(
            f"{weights_path}: damaged ({size} bytes, more than the {expected_size} that the model of "
            f"{CONFIG_NAME} can hold); copy the model again or retrain"
        )

    model = MusicTransformer(config)
    try:
        state = load_file(str(weights_path), device="cpu")
        with safe_open(str(weights_path), framework="pt") as handle:
            recorded = (handle.metadata() or {}).get(DIGEST_KEY)
    except (OSError, SafetensorError) as error:
        cause = str(error).splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        raise UserError(f"{weights_path}: damaged (not a readable safetensors file: {cause}); copy the model again or retrain") from None
    if recorded is not None and state_digest(state) != recorded:
        raise UserError(
            f"{weights_path}: damaged (its weights do not match the content hash recorded when it "
            "was saved); copy the model again or retrain"
        )
    if not all(bool(torch.isfinite(tensor).all()) for tensor in state.values() if tensor.is_floating_point()):
        raise UserError(f"{weights_path}: damaged (it holds weights that are NaN or infinite); retrain with a lower learning rate")
    expected = {k: v.shape for k, v in model.state_dict().items() if k != "head.weight"}
    got = {k: v.shape for k, v in state.items()}
    if got != expected:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        problems = [
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong))
            if keys
        ]
        raise UserError(
            f"{weights_path}: weights do not match {config_path} ({'; '.join(problems)})"
        )
    model.load_state_dict(state, strict=False)  # head.weight is tied to tok_emb.weight
    return model.to(device).eval()
