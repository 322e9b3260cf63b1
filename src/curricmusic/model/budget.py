"""Memory a model will need, estimated from its config alone, before any tensor is allocated.

The estimates are deliberately generous (float32 everywhere, every activation a backward pass
keeps, the attention matrix materialised): they exist to refuse a shape this machine cannot hold
(``n_layers = 100000``, ``d_model = 10**6``, ``vocab_size = 10**12`` in a config file,
``--max-tokens 10**12``) with one line, not to squeeze the last gigabyte out of it.

Shapes: B batch, T time, C = d_model, F = mlp_ratio * C, H heads, L layers, V vocabulary.
"""

from __future__ import annotations

from typing import Protocol

from curricmusic.common.memory import check_fits


class ModelConfig(Protocol):
    """The shape of a model, as far as its memory depends on it (a
    :class:`~curricmusic.model.transformer.ModelConfig` is one; the transformer imports this module,
    so the estimates name only what they read)."""

    @property
    def vocab_size(self) -> int: ...
    @property
    def d_model(self) -> int: ...
    @property
    def n_layers(self) -> int: ...
    @property
    def n_heads(self) -> int: ...
    @property
    def d_ff(self) -> int: ...
    @property
    def max_seq_len(self) -> int: ...
    @property
    def bias(self) -> bool: ...

__all__ = [
    "parameter_count",
    "weight_bytes",
    "training_bytes",
    "inference_bytes",
    "generation_bytes",
    "check_training_fits",
    "check_inference_fits",
    "check_generation_fits",
]

_FLOAT = 4  # bytes of a float32
_LONG = 8  # bytes of an int64 token id or a float64 uniform


def parameter_count(config: ModelConfig) -> int:
    """Parameters of a ``ModelConfig`` (the tied output head counted once), exactly as built."""
    C, F, L, V = config.d_model, config.d_ff, config.n_layers, config.vocab_size
    bias = bool(config.bias)
    per_block = (
        2 * C * (1 + bias)  # two layer norms: weight (and bias)
        + 3 * C * C + 3 * C * bias  # fused q, k, v projection
        + C * C + C * bias  # attention output projection
        + C * F + F * bias  # MLP in
        + F * C + C * bias  # MLP out
    )  # fmt: skip
    return V * C + L * per_block + C * (1 + bias)


def weight_bytes(config: ModelConfig) -> int:
    return parameter_count(config) * _FLOAT


def training_bytes(config: ModelConfig, batch: int, seq_len: int) -> dict[str, int]:
    """A training step of ``batch`` windows of ``seq_len`` tokens: weights, gradients, AdamW's two
    moments, and the activations the backward pass keeps (per layer the residual, norm, q/k/v,
    attention output, the MLP's two F-wide tensors, the H x T x T attention weights; the
    logits with their softmax and gradient)."""
    B, T, C, F, H, L, V = batch, seq_len, config.d_model, config.d_ff, config.n_heads, config.n_layers, config.vocab_size
    weights = weight_bytes(config)
    per_layer = B * T * (8 * C + 2 * F) + B * H * T * T
    return {
        "weights": weights,
        "gradients": weights,
        "optimizer state": 2 * weights,
        "activations": _FLOAT * (L * per_layer + 3 * B * T * V),
    }


def inference_bytes(config: ModelConfig, batch: int, seq_len: int) -> dict[str, int]:
    """A forward pass without gradients (evaluation, probes): weights and one layer's activations."""
    B, T, C, F, H, V = batch, seq_len, config.d_model, config.d_ff, config.n_heads, config.vocab_size
    return {
        "weights": weight_bytes(config),
        "activations": _FLOAT * (B * T * (8 * C + 2 * F) + B * H * T * T + 2 * B * T * V),
    }


def generation_bytes(config: ModelConfig, batch: int, prompt_tokens: int, max_tokens: int) -> dict[str, int]:
    """Sampling ``batch`` rows of up to ``max_tokens`` after a prompt, beyond the weights (loaded,
    and checked, first): the KV cache (its capacity is the model's context, whatever
    ``max_tokens``: beyond it the newest half window is re-encoded), every row's token history
    and sampled tokens, and a refill's activations."""
    B, C, L, V = batch, config.d_model, config.n_layers, config.vocab_size
    T = config.max_seq_len
    total = prompt_tokens + max_tokens
    return {
        "KV cache": 2 * L * B * T * C * _FLOAT,
        "token history": B * total * 2 * _LONG,  # the history tensor and the sampled columns
        "activations": inference_bytes(config, batch, T)["activations"] + B * V * _FLOAT * 4,
    }


def check_training_fits(config: ModelConfig, batch: int, seq_len: int, source: str, copies: int = 1) -> None:
    """One line (exit 2) when a training step of this model (``copies`` of them at once, one
    per process of ``run --jobs``) cannot fit in this machine's memory."""
    parts = {name: size * copies for name, size in training_bytes(config, batch, seq_len).items()}
    times = f"{copies} processes, each " if copies > 1 else ""
    check_fits(
        sum(parts.values()),
        f"{source}: training this model ({times}{parameter_count(config):,} parameters, batch {batch} x {seq_len} tokens)",
        parts,
        "choose a smaller model (d_model, n_layers), seq_len or micro_batch_size" + (", or fewer --jobs" if copies > 1 else ""),
    )


def check_inference_fits(config: ModelConfig, batch: int, seq_len: int, source: str) -> None:
    """One line (exit 2) when the model cannot even be loaded and run once here."""
    parts = inference_bytes(config, batch, seq_len)
    check_fits(
        sum(parts.values()),
        f"{source}: this model ({parameter_count(config):,} parameters)",
        parts,
        "it was not made for this machine (or the file is damaged)",
    )


def check_generation_fits(config: ModelConfig, batch: int, prompt_tokens: int, max_tokens: int, source: str) -> None:
    """One line (exit 2) when sampling with these settings cannot fit in this machine's memory."""
    parts = generation_bytes(config, batch, prompt_tokens, max_tokens)
    check_fits(
        sum(parts.values()),
        f"{source}: sampling {batch} rows of up to {max_tokens:,} tokens",
        parts,
        "lower --max-tokens or --batch-size",
    )
