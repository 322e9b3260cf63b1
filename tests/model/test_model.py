"""MusicTransformer: causality, learning, KV cache == recompute, save / load, config errors."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F

from curricmusic.common.errors import UserError
from curricmusic.model.transformer import (
    CONFIG_NAME,
    IGNORE_INDEX,
    MODEL_SIZES,
    WEIGHTS_NAME,
    ModelConfig,
    MusicTransformer,
    load_model,
    save_model,
)

VOCAB = 61
ATOL = 1e-5


def make_model(seed: int = 0, **overrides) -> MusicTransformer:
    torch.manual_seed(seed)
    settings = {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4, "max_seq_len": 32}
    return MusicTransformer(ModelConfig(**{**settings, **overrides})).eval()


def tokens(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


# -- training forward ------------------------------------------------------------------------------


def test_causality_through_gradients():
    model = make_model()
    T = 12
    captured = {}

    def make_leaf(module, inputs, output):  # swap the embedding output for a leaf we can probe
        captured["emb"] = output.detach().requires_grad_(True)
        return captured["emb"]

    handle = model.tok_emb.register_forward_hook(make_leaf)
    try:
        for t in (0, 5, T - 1):
            logits, _ = model(tokens(2, T))
            (grad,) = torch.autograd.grad(logits[:, t].square().sum(), captured["emb"])
            per_position = grad.abs().sum(dim=(0, 2))  # (T,)
            assert torch.all(per_position[t + 1 :] == 0), f"position {t} sees the future"
            assert torch.all(per_position[: t + 1] > 0), f"position {t} ignores its past"
    finally:
        handle.remove()


def test_forward_shapes_and_loss_ignores_the_ignore_index():
    model = make_model()
    idx, targets = tokens(2, 10), tokens(2, 10, seed=2)
    logits, loss = model(idx)
    assert logits.shape == (2, 10, VOCAB) and loss is None
    masked = targets.clone()
    masked[:, :4] = IGNORE_INDEX
    _, loss = model(idx, masked)
    expected = F.cross_entropy(logits[:, 4:].reshape(-1, VOCAB), targets[:, 4:].reshape(-1))
    torch.testing.assert_close(loss, expected)
    from curricmusic.curriculum.windows import IGNORE_INDEX as WINDOW_PADDING

    assert WINDOW_PADDING == IGNORE_INDEX  # padded window targets are what the loss leaves out


def test_forward_rejects_sequences_past_max_seq_len():
    with pytest.raises(ValueError, match="max_seq_len 32"):
        make_model()(tokens(1, 33))


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    model = MusicTransformer(
        ModelConfig.from_size("tiny", vocab_size=VOCAB, max_seq_len=33)
    ).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    data = tokens(2, 33)
    x, y = data[:, :-1], data[:, 1:]  # (2, 32)
    for _ in range(300):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1, f"loss {loss.item():.3f} after 300 steps on one batch"


def test_dropout_is_off_in_eval():
    model = make_model(dropout=0.3)
    idx = tokens(2, 16)
    torch.testing.assert_close(model(idx)[0], model(idx)[0], rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])


# -- KV cache ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [[1] * 24, [7, 1, 5, 11], [10, 1, 1, 1, 1, 10]])
def test_kv_cache_matches_full_recompute(chunks):
    model = make_model()
    idx = tokens(3, sum(chunks))
    full, _ = model(idx)  # (3, T, V)
    cache = model.new_kv_cache(batch_size=3, capacity=32)
    pieces, start = [], 0
    for size in chunks:
        pieces.append(model.forward_step(idx[:, start : start + size], cache))
        start += size
    assert cache.length == cache.next_position == start
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=0, atol=ATOL)


def greedy_with_refill(model, prompt, n_new, capacity, keep):
    """Greedy decoding with an exact sliding window; yields (window, window positions, logits)."""
    cache = model.new_kv_cache(prompt.shape[0], capacity)
    history = prompt
    logits = model.forward_step(prompt, cache)[:, -1]
    for _ in range(n_new):
        nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
        history = torch.cat([history, nxt], dim=1)
        if cache.remaining == 0:  # re-encode the newest `keep` tokens, ending with nxt
            logits = model.refill(cache, history[:, -keep:])[:, -1]
        else:
            logits = model.forward_step(nxt, cache)[:, -1]
        assert cache.next_position == history.shape[1]
        window = history[:, -cache.length :]
        positions = torch.arange(cache.next_position - cache.length, cache.next_position)
        yield window, positions, logits


def test_generation_past_max_seq_len_with_refill_equals_recompute_of_the_window():
    model = make_model()  # max_seq_len 32
    prompt = tokens(2, 9)
    steps = list(greedy_with_refill(model, prompt, n_new=70, capacity=32, keep=20))
    assert steps[-1][1][-1].item() == 9 + 70 - 1  # absolute positions went far past 32
    for window, positions, logits in steps[::7] + steps[-3:]:
        fresh = model.new_kv_cache(2, 32)
        expected = model.forward_step(window, fresh, positions=positions)[:, -1]
        torch.testing.assert_close(logits, expected, rtol=0, atol=ATOL)
        # RoPE only sees offsets: the same window at positions 0.. gives the same logits
        torch.testing.assert_close(logits, model(window)[0][:, -1], rtol=0, atol=1e-4)


def test_slide_is_exact_for_one_layer_and_keeps_positions():
    model = make_model(n_layers=1)
    idx = tokens(2, 50)
    cache = model.new_kv_cache(2, 16)
    model.forward_step(idx[:, :16], cache)
    for t in range(16, 50):
        if cache.remaining == 0:
            cache.slide(keep=10)
        logits = model.forward_step(idx[:, t : t + 1], cache)[:, -1]
        window = idx[:, t + 1 - cache.length : t + 1]
        positions = torch.arange(t + 1 - cache.length, t + 1)
        expected = model.forward_step(window, model.new_kv_cache(2, 16), positions=positions)
        torch.testing.assert_close(logits, expected[:, -1], rtol=0, atol=ATOL)
    assert cache.next_position == 50


def test_slide_keeps_first_layer_entries_and_refill_recomputes_the_rest():
    model = make_model(n_layers=2)
    idx = tokens(1, 20)
    slid, refilled = model.new_kv_cache(1, 20), model.new_kv_cache(1, 20)
    model.forward_step(idx, slid)
    model.forward_step(idx, refilled)
    slid.slide(keep=8)
    model.refill(refilled, idx[:, -8:], n_new=0)  # all eight were fed already
    assert slid.length == refilled.length == 8
    assert slid.next_position == refilled.next_position == 20
    torch.testing.assert_close(slid.k[0, :, :, :8], refilled.k[0, :, :, :8], rtol=0, atol=ATOL)
    torch.testing.assert_close(slid.v[0, :, :, :8], refilled.v[0, :, :, :8], rtol=0, atol=ATOL)
    # deeper layers saw the dropped tokens when they were computed: slide is an approximation
    assert not torch.allclose(slid.k[1, :, :, :8], refilled.k[1, :, :, :8], atol=ATOL)


def test_refill_with_the_new_token_equals_refill_then_step():
    model = make_model()
    idx = tokens(2, 21)
    one, two = model.new_kv_cache(2, 20), model.new_kv_cache(2, 20)
    model.forward_step(idx[:, :20], one)
    model.forward_step(idx[:, :20], two)
    together = model.refill(one, idx[:, -10:])[:, -1]  # 9 fed + the new one
    model.refill(two, idx[:, -10:-1], n_new=0)
    apart = model.forward_step(idx[:, -1:], two)[:, -1]
    torch.testing.assert_close(together, apart, rtol=0, atol=ATOL)
    assert one.next_position == two.next_position == 21 and one.length == two.length == 10
    with pytest.raises(ValueError, match="refill"):
        model.refill(one, tokens(2, 30))


def test_kv_cache_errors_are_clear():
    model = make_model()
    cache = model.new_kv_cache(2, 8)
    with pytest.raises(ValueError, match="cache.slide"):
        model.forward_step(tokens(2, 9), cache)
    with pytest.raises(ValueError, match="batch of 1 rows"):
        model.forward_step(tokens(1, 2), cache)
    with pytest.raises(ValueError, match="keep must be in"):
        cache.slide(keep=3)


# -- weights, sizes, FLOPs ---------------------------------------------------------------------


def test_output_head_is_tied_to_the_embedding():
    model = make_model()
    assert model.head.weight is model.tok_emb.weight
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))


@pytest.mark.parametrize(
    ("name", "low", "high"), [("tiny", 0.5e6, 2e6), ("small", 5e6, 10e6), ("base", 50e6, 100e6)]
)
@pytest.mark.parametrize("vocab", [300, 1000])
def test_named_sizes_have_their_stated_parameter_counts(name, low, high, vocab):
    with torch.device("meta"):
        model = MusicTransformer(ModelConfig.from_size(name, vocab_size=vocab))
    assert low <= model.num_parameters() <= high
    assert (
        model.num_parameters(exclude_embedding=True)
        == model.num_parameters() - vocab * (MODEL_SIZES[name]["d_model"])
    )


def test_from_size_overrides_and_rejects_unknown_names():
    config = ModelConfig.from_size(
        "small", vocab_size=300, max_seq_len=128, n_layers=2, dropout=0.1
    )
    assert (config.d_model, config.n_layers, config.max_seq_len, config.dropout) == (
        MODEL_SIZES["small"]["d_model"],
        2,
        128,
        0.1,
    )
    with pytest.raises(ValueError, match="unknown model size 'huge'; expected one of: tiny"):
        ModelConfig.from_size("huge", vocab_size=300)
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig.from_size("tiny", vocab_size=300, width=3)


def test_flops_per_token_formula():
    model = make_model()
    c = model.config
    assert (
        model.flops_per_token(32) == 6 * model.num_parameters() + 12 * c.n_layers * 32 * c.d_model
    )


# -- config ------------------------------------------------------------------------------------


def test_config_round_trips_and_is_frozen():
    config = ModelConfig.from_size("tiny", vocab_size=300)
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 64


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible by n_heads"),
        ({"d_model": 12, "n_heads": 4}, "must be even"),
        ({"n_layers": 0}, "n_layers: expected a positive integer"),
        ({"d_model": 32.0}, "d_model: expected an integer"),
        ({"dropout": 1.0}, "dropout"),
        ({"bias": "yes"}, "bias"),
    ],
)
def test_bad_config_raises_a_clear_message(settings, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(vocab_size=VOCAB, **settings)


def test_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match="unknown key.*'d_modle'"):
        ModelConfig.from_dict({"vocab_size": 10, "d_modle": 32})
    with pytest.raises(ValueError, match="missing required key 'vocab_size'"):
        ModelConfig.from_dict({"d_model": 32})


# -- save / load -------------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    model = make_model(seed=3, bias=True)
    save_model(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    assert loaded.head.weight is loaded.tok_emb.weight
    idx = tokens(2, 20)
    assert torch.equal(loaded(idx)[0], model(idx)[0])


def test_load_model_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match=rf"{tmp_path / 'nowhere'}.*not found"):
        load_model(tmp_path / "nowhere")

    save_model(make_model(), tmp_path / "m")
    (tmp_path / "m" / WEIGHTS_NAME).unlink()
    with pytest.raises(UserError, match=rf"{WEIGHTS_NAME}: not found"):
        load_model(tmp_path / "m")

    hf = tmp_path / "gpt2"
    hf.mkdir()
    (hf / CONFIG_NAME).write_text(json.dumps({"model_type": "gpt2", "n_embd": 768}))
    (hf / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(UserError, match=r"gpt2/config.json: architecture None is not"):
        load_model(hf)

    save_model(make_model(), tmp_path / "wide")
    meta = json.loads((tmp_path / "wide" / CONFIG_NAME).read_text())
    meta["config"]["d_model"] = 64
    (tmp_path / "wide" / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="weights do not match.*wrong shape"):
        load_model(tmp_path / "wide")

    meta["config"]["n_heads"] = 5
    (tmp_path / "wide" / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(UserError, match="config.json: ModelConfig: d_model"):
        load_model(tmp_path / "wide")


def test_rope_works_far_past_max_seq_len():
    model = make_model()
    cache = model.new_kv_cache(1, 8)
    far = torch.arange(100_000, 100_004)
    logits = model.forward_step(tokens(1, 4), cache, positions=far)
    assert torch.isfinite(logits).all() and cache.next_position == 100_004
    assert math.isfinite(model.flops_per_token())


def test_real_valued_rope_for_torch_compile_matches_complex(monkeypatch):
    """Under torch.compile RoPE is written in real arithmetic; it must be the same rotation."""
    model = make_model()
    idx = tokens(2, 16)
    eager = model(idx)[0]
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # the real-valued branch
    torch.testing.assert_close(model(idx)[0], eager, rtol=0, atol=ATOL)
