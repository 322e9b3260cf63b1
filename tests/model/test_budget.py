"""Memory estimates from a config: exact parameter counts, and refusals before allocation."""

from __future__ import annotations

import pytest

import curricmusic.common.memory as memory
from curricmusic.common.memory import TooLarge, human_bytes
from curricmusic.model.budget import (
    check_generation_fits,
    check_training_fits,
    generation_bytes,
    parameter_count,
    training_bytes,
    weight_bytes,
)
from curricmusic.model.transformer import ModelConfig, MusicTransformer


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2),
        ModelConfig(vocab_size=517, d_model=64, n_layers=3, n_heads=4, mlp_ratio=2, bias=True),
        ModelConfig(vocab_size=1, d_model=8, n_layers=2, n_heads=1, max_seq_len=3),
    ],
)
def test_the_parameter_count_from_a_config_equals_the_built_model(config):
    model = MusicTransformer(config)
    assert parameter_count(config) == model.num_parameters()
    assert weight_bytes(config) == 4 * sum(t.numel() for n, t in model.state_dict().items() if n != "head.weight")


def test_training_needs_weights_gradients_two_moments_and_grows_with_the_batch():
    config = ModelConfig(vocab_size=300, d_model=64, n_layers=2, n_heads=2)
    small, large = training_bytes(config, 2, 64), training_bytes(config, 8, 64)
    assert small["gradients"] == small["weights"] and small["optimizer state"] == 2 * small["weights"]
    assert large["activations"] == 4 * small["activations"]  # every activation is per window
    assert generation_bytes(config, 4, 1, 10**6)["KV cache"] == generation_bytes(config, 4, 1, 10)["KV cache"]


def test_a_size_above_what_is_available_is_refused_with_both_numbers(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**9)
    config = ModelConfig(vocab_size=300, d_model=4096, n_layers=8, n_heads=32)  # 1.6G parameters: 30.6 GB of training state
    with pytest.raises(TooLarge, match=r"^x.toml: training this model \(1,611,911,168 parameters.* needs about 30.6 GB .*more than the 1 GB"):
        check_training_fits(config, 8, 256, "x.toml")
    check_training_fits(ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2), 8, 32, "x.toml")  # fits: no error
    with pytest.raises(TooLarge, match="sampling 8 rows of up to 10,000,000 tokens needs about 1.32 GB .*token history 1.28 GB"):
        check_generation_fits(ModelConfig(vocab_size=300, d_model=32, n_layers=1, n_heads=2), 8, 1, 10**7, "generate")
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # unknown: nothing is refused
    check_training_fits(config, 8, 256, "x.toml")


def test_human_bytes():
    assert [human_bytes(n) for n in (512, 1500, 2.5e9, 7.3e12)] == ["512 B", "1.5 kB", "2.5 GB", "7.3 TB"]


def test_available_memory_is_bounded_by_the_address_space_limit(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 10**12)
    monkeypatch.setattr(memory, "_cgroup_room", lambda: None)
    monkeypatch.setattr(memory, "_address_space_room", lambda: 3 * 10**9)
    assert memory.available_bytes() == 3 * 10**9
