"""The decoder-only transformer over MIDI tokens: pre-norm blocks, RoPE, KV cache, safetensors files.

``curricmusic.model.load_model(RUN_DIR / "model")`` is all that loading a trained model needs.
"""

from curricmusic.model.kv_cache import KVCache
from curricmusic.model.transformer import (
    CONFIG_NAME,
    MODEL_SIZES,
    WEIGHTS_NAME,
    ModelConfig,
    MusicTransformer,
    load_model,
    save_model,
)

__all__ = [
    "CONFIG_NAME",
    "MODEL_SIZES",
    "WEIGHTS_NAME",
    "KVCache",
    "ModelConfig",
    "MusicTransformer",
    "load_model",
    "save_model",
]
