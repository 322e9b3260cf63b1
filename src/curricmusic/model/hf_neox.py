"""Our transformer as a Hugging Face GPT-NeoX model and back: the config and the weight layout.

Why GPT-NeoX. Its arithmetic, with ``use_parallel_residual = false`` and ``rotary_pct = 1``, is
ours term by term: pre-norm blocks ``x + attn(LN(x))`` then ``x + mlp(LN(x))`` (sequential
residuals), :class:`torch.nn.LayerNorm` with eps 1e-5, one fused QKV projection, rotary
embeddings on the whole head with ``base ** (-2j / Dh)``, attention scaled by ``1 / sqrt(Dh)``,
an MLP ``Linear -> GELU (exact, erf) -> Linear``, a final LayerNorm and a head that may be tied
to the token embedding. Llama (RMSNorm, gated SiLU MLP), GPT-J and Phi (parallel residuals) and
GPT-2 (learned positions) each differ somewhere. GPT-NeoX ships in transformers itself, so the
exported folder loads with ``AutoModelForCausalLM`` and no custom code.

What differs is layout only, and each difference is converted here, explicitly:

- **rotary convention**: we rotate the interleaved pairs ``(x[2j], x[2j+1])`` (the complex
  layout), GPT-NeoX the halves ``(x[j], x[j + Dh/2])`` (``rotate_half``). Permuting the rows of
  the query and key projections inside each head, ``[0, 2, 4, .., 1, 3, 5, ..]``, turns one into
  the other; the dot product q.k is unchanged because queries and keys are permuted alike.
  Values are not rotated and keep their order.
- **fused QKV**: our projection's rows run ``[q | k | v]``, each ``(head, dim)``; GPT-NeoX
  reshapes its output to ``(head, [q | k | v], dim)``.
- **absent biases**: GPT-NeoX's LayerNorms and MLP always carry biases; a model without biases
  exports zeros there (the same arithmetic), and ``attention_bias = false`` drops the attention
  ones. On import, all-zero biases give back a model without biases.
- **tied head**: ``tie_word_embeddings = true``; the head is not stored (it is the embedding).

Shapes: C = d_model, H heads, Dh = C / H, V vocabulary, F = mlp_ratio * C.
"""

from __future__ import annotations

from typing import Any

import torch

from curricmusic.model.transformer import ModelConfig

__all__ = [
    "NEOX_ARCHITECTURE",
    "NEOX_MODEL_TYPE",
    "LAYER_NORM_EPS",
    "rotary_permutation",
    "qkv_to_neox",
    "qkv_from_neox",
    "neox_config",
    "model_config_from_neox",
    "neox_shapes",
    "to_neox_state",
    "from_neox_state",
]

NEOX_ARCHITECTURE = "GPTNeoXForCausalLM"
NEOX_MODEL_TYPE = "gpt_neox"
LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which our blocks use
_GELU_NAMES = ("gelu",)  # transformers' "gelu" is the exact (erf) GELU, as F.gelu
_HEADS = ("embed_out.weight", "lm_head.weight")  # the head's name before and since transformers 5


def rotary_permutation(head_dim: int) -> torch.Tensor:
    """``perm`` (Dh,) with ``neox[d] = ours[perm[d]]``: the even dims, then the odd ones.

    Our pair j is dims (2j, 2j + 1); GPT-NeoX's pair j is dims (j, j + Dh/2), same frequency.
    """
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def qkv_to_neox(tensor: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """Our fused QKV weight (3C, C) or bias (3C,) in GPT-NeoX's row order, q and k rows rotated.

    Ours: rows ``(which, head, dim)``; GPT-NeoX: rows ``(head, which, dim)``, with the dims of q
    and k in the rotate-half order (:func:`rotary_permutation`).
    """
    rest = tensor.shape[1:]
    rows = tensor.reshape(3, n_heads, head_dim, *rest)  # (3, H, Dh, ...)
    perm = rotary_permutation(head_dim)
    q, k, v = rows[0][:, perm], rows[1][:, perm], rows[2]  # (H, Dh, ...) each
    return torch.stack((q, k, v), dim=1).reshape(3 * n_heads * head_dim, *rest).contiguous()


def qkv_from_neox(tensor: torch.Tensor, n_heads: int, head_dim: int) -> torch.Tensor:
    """The inverse of :func:`qkv_to_neox`: GPT-NeoX's fused QKV rows back in our order."""
    rest = tensor.shape[1:]
    rows = tensor.reshape(n_heads, 3, head_dim, *rest)  # (H, 3, Dh, ...)
    inverse = torch.argsort(rotary_permutation(head_dim))
    q, k, v = rows[:, 0][:, inverse], rows[:, 1][:, inverse], rows[:, 2]  # (H, Dh, ...) each
    return torch.stack((q, k, v), dim=0).reshape(3 * n_heads * head_dim, *rest).contiguous()


def neox_config(config: ModelConfig, special_ids: dict[str, int]) -> dict[str, Any]:
    """``config.json`` of the GPT-NeoX model whose arithmetic equals ``config``'s.

    ``special_ids`` holds the tokenizer's ``BOS``, ``EOS`` and ``PAD`` ids. The rotary settings
    are written both the way transformers 4 reads them (``rotary_pct``, ``rotary_emb_base``) and
    the way transformers 5 does (``rope_parameters``).
    """
    return {
        "architectures": [NEOX_ARCHITECTURE],
        "model_type": NEOX_MODEL_TYPE,
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "intermediate_size": config.d_ff,
        "hidden_act": "gelu",
        "layer_norm_eps": LAYER_NORM_EPS,
        "use_parallel_residual": False,
        "rotary_pct": 1.0,
        "rotary_emb_base": float(config.rope_base),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(config.rope_base), "partial_rotary_factor": 1.0},
        "max_position_embeddings": config.max_seq_len,
        "attention_bias": config.bias,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": int(special_ids["BOS"]),
        "eos_token_id": int(special_ids["EOS"]),
        "pad_token_id": int(special_ids["PAD"]),
        "dtype": "float32",
    }


def _rope(hf: dict[str, Any]) -> tuple[str, float, float]:
    """(rope type, base, fraction of the head rotated) from either transformers generation."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if not isinstance(params, dict):
        params = {}
    kind = str(params.get("rope_type", params.get("type", "default")))
    base = params.get("rope_theta", hf.get("rotary_emb_base", hf.get("rope_theta", 10000.0)))
    fraction = params.get("partial_rotary_factor", hf.get("rotary_pct", 0.25))  # 0.25: GPT-NeoX's default
    return kind, base, fraction


def model_config_from_neox(hf: dict[str, Any], bias: bool, max_seq_len: int | None = None) -> ModelConfig:
    """Our :class:`ModelConfig` for a GPT-NeoX ``config.json``, or ValueError naming the first
    setting whose arithmetic we do not have (the message says which value was expected).

    ``bias``: whether the weights carry biases that are not all zero (see :func:`from_neox_state`).
    """
    if hf.get("model_type") != NEOX_MODEL_TYPE:
        raise ValueError(f"model_type {hf.get('model_type')!r} is not supported (expected {NEOX_MODEL_TYPE!r})")
    kind, base, fraction = _rope(hf)
    expected = [
        ("use_parallel_residual", hf.get("use_parallel_residual", True), False),
        ("hidden_act", hf.get("hidden_act", "gelu"), "gelu"),
        ("layer_norm_eps", hf.get("layer_norm_eps", LAYER_NORM_EPS), LAYER_NORM_EPS),
        ("rope_type", kind, "default"),
        ("rotary_pct", fraction, 1.0),
    ]
    for name, value, wanted in expected:
        if value != wanted:
            raise ValueError(f"{name} = {value!r} is not supported (curricmusic's transformer needs {wanted!r})")
    hidden, inner = hf.get("hidden_size"), hf.get("intermediate_size")
    if not isinstance(hidden, int) or not isinstance(inner, int) or hidden <= 0 or inner % hidden:
        raise ValueError(f"intermediate_size {inner!r} is not a whole multiple of hidden_size {hidden!r}")
    return ModelConfig(
        vocab_size=hf.get("vocab_size"),  # type: ignore[arg-type]  # ModelConfig checks the types
        d_model=hidden,
        n_layers=hf.get("num_hidden_layers"),  # type: ignore[arg-type]
        n_heads=hf.get("num_attention_heads"),  # type: ignore[arg-type]
        max_seq_len=max_seq_len or hf.get("max_position_embeddings", 2048),
        mlp_ratio=inner // hidden,
        rope_base=base,
        bias=bias,
    )


def neox_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor an exported folder stores, with its shape (the head is tied: not stored)."""
    C, F, V = config.d_model, config.d_ff, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"gpt_neox.embed_in.weight": (V, C)}
    for i in range(config.n_layers):
        p = f"gpt_neox.layers.{i}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            shapes |= {f"{p}{norm}.weight": (C,), f"{p}{norm}.bias": (C,)}
        shapes |= {f"{p}attention.query_key_value.weight": (3 * C, C), f"{p}attention.dense.weight": (C, C)}
        if config.bias:
            shapes |= {f"{p}attention.query_key_value.bias": (3 * C,), f"{p}attention.dense.bias": (C,)}
        shapes |= {
            f"{p}mlp.dense_h_to_4h.weight": (F, C),
            f"{p}mlp.dense_h_to_4h.bias": (F,),
            f"{p}mlp.dense_4h_to_h.weight": (C, F),
            f"{p}mlp.dense_4h_to_h.bias": (C,),
        }
    return shapes | {"gpt_neox.final_layer_norm.weight": (C,), "gpt_neox.final_layer_norm.bias": (C,)}


def _bias(state: dict[str, torch.Tensor], name: str, size: int) -> torch.Tensor:
    """Our bias ``name``, or zeros of ``size`` where the model has none (the same arithmetic)."""
    tensor = state.get(name)
    return tensor if tensor is not None else torch.zeros(size, dtype=state["tok_emb.weight"].dtype)


def to_neox_state(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Our stored weights (``save_model``'s names, no head) as GPT-NeoX tensors (:func:`neox_shapes`)."""
    H, Dh, C, F = config.n_heads, config.head_dim, config.d_model, config.d_ff
    out = {"gpt_neox.embed_in.weight": state["tok_emb.weight"]}
    for i in range(config.n_layers):
        ours, p = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        for mine, theirs in (("norm1", "input_layernorm"), ("norm2", "post_attention_layernorm")):
            out[f"{p}{theirs}.weight"] = state[f"{ours}{mine}.weight"]
            out[f"{p}{theirs}.bias"] = _bias(state, f"{ours}{mine}.bias", C)
        out[f"{p}attention.query_key_value.weight"] = qkv_to_neox(state[f"{ours}attn.qkv.weight"], H, Dh)
        out[f"{p}attention.dense.weight"] = state[f"{ours}attn.proj.weight"]
        if config.bias:
            out[f"{p}attention.query_key_value.bias"] = qkv_to_neox(state[f"{ours}attn.qkv.bias"], H, Dh)
            out[f"{p}attention.dense.bias"] = state[f"{ours}attn.proj.bias"]
        out[f"{p}mlp.dense_h_to_4h.weight"] = state[f"{ours}mlp.fc.weight"]
        out[f"{p}mlp.dense_h_to_4h.bias"] = _bias(state, f"{ours}mlp.fc.bias", F)
        out[f"{p}mlp.dense_4h_to_h.weight"] = state[f"{ours}mlp.proj.weight"]
        out[f"{p}mlp.dense_4h_to_h.bias"] = _bias(state, f"{ours}mlp.proj.bias", C)
    out["gpt_neox.final_layer_norm.weight"] = state["norm.weight"]
    out["gpt_neox.final_layer_norm.bias"] = _bias(state, "norm.bias", C)
    return {name: tensor.detach().contiguous() for name, tensor in out.items()}


def _norm_and_mlp_biases(state: dict[str, torch.Tensor]) -> list[str]:
    return [name for name in state if name.endswith(".bias") and "attention." not in name]


def neox_has_bias(state: dict[str, torch.Tensor]) -> bool:
    """Whether GPT-NeoX weights need a model with biases: attention biases stored, or a norm or
    MLP bias that is not zero."""
    if any(name.endswith("attention.query_key_value.bias") for name in state):
        return True
    return any(bool(state[name].any()) for name in _norm_and_mlp_biases(state))


def from_neox_state(state: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """GPT-NeoX tensors (checked against :func:`neox_shapes` by the caller) as our stored weights.

    A separate head (``tie_word_embeddings = false``) must equal the embedding: our head is tied.
    """
    H, Dh = config.n_heads, config.head_dim
    out = {"tok_emb.weight": state["gpt_neox.embed_in.weight"]}
    for i in range(config.n_layers):
        ours, p = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        pairs = [
            ("norm1", "input_layernorm"),
            ("norm2", "post_attention_layernorm"),
            ("attn.proj", "attention.dense"),
            ("mlp.fc", "mlp.dense_h_to_4h"),
            ("mlp.proj", "mlp.dense_4h_to_h"),
        ]
        for mine, theirs in pairs:
            out[f"{ours}{mine}.weight"] = state[f"{p}{theirs}.weight"]
            if config.bias:
                size = out[f"{ours}{mine}.weight"].shape[0]
                out[f"{ours}{mine}.bias"] = state.get(f"{p}{theirs}.bias", torch.zeros(size))
        out[f"{ours}attn.qkv.weight"] = qkv_from_neox(state[f"{p}attention.query_key_value.weight"], H, Dh)
        if config.bias:
            qkv_bias = state.get(f"{p}attention.query_key_value.bias", torch.zeros(3 * config.d_model))
            out[f"{ours}attn.qkv.bias"] = qkv_from_neox(qkv_bias, H, Dh)
    out["norm.weight"] = state["gpt_neox.final_layer_norm.weight"]
    if config.bias:
        out["norm.bias"] = state["gpt_neox.final_layer_norm.bias"]
    return {name: tensor.detach().contiguous() for name, tensor in out.items()}


def separate_head(state: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor] | None:
    """The stored output head ``(name, weight)`` of a GPT-NeoX checkpoint, if it stores one."""
    for name in _HEADS:
        if name in state:
            return name, state[name]
    return None
