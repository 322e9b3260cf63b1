"""Our transformer as a Hugging Face GPT-NeoX model: each layout conversion on its own, equal
logits in transformers, identical weights back, and one clear line for what cannot convert."""

from __future__ import annotations

import json

import pytest
import torch

from curricmusic.common.errors import UserError
from curricmusic.model.hf_folder import HF_CONFIG, HF_WEIGHTS, load_hf_model, save_hf_model
from curricmusic.model.hf_neox import qkv_from_neox, qkv_to_neox, rotary_permutation
from curricmusic.model.pretrained import load_pretrained, shape_differences
from curricmusic.model.rope import apply_rope, rope_rotation
from curricmusic.model.transformer import ModelConfig, MusicTransformer, save_model, weights_digest

SPECIALS = {"PAD": 0, "BOS": 1, "EOS": 2}


def trained_like(config: ModelConfig, seed: int = 0) -> MusicTransformer:
    """A model whose every weight, biases and norms included, is away from its initial value."""
    torch.manual_seed(seed)
    model = MusicTransformer(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model


def hf_model(folder):
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    return model.eval(), info


# ---- each layout conversion -----------------------------------------------------------------------


def _rotate_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """GPT-NeoX's rotation (transformers' rotate_half), written out here: pairs (j, j + Dh/2)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * torch.cat((cos, cos), -1) + rotated * torch.cat((sin, sin), -1)


def test_the_rotary_permutation_turns_our_interleaved_pairs_into_neox_halves():
    Dh, T = 8, 5
    assert rotary_permutation(Dh).tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    x = torch.randn(1, T, 3, Dh)  # (B, T, H, Dh)
    positions = torch.arange(T) * 7
    ours = apply_rope(x, rope_rotation(positions, Dh, 10000.0))
    inv_freq = 10000.0 ** (-torch.arange(0, Dh, 2).float() / Dh)
    angles = positions.float()[:, None, None] * inv_freq  # (T, 1, Dh/2)
    theirs = _rotate_half(x[..., rotary_permutation(Dh)], angles.cos(), angles.sin())
    torch.testing.assert_close(theirs, ours[..., rotary_permutation(Dh)], rtol=0, atol=1e-6)
    # so scores q.k agree: the same permutation on both sides of the dot product
    torch.testing.assert_close((theirs[:, :, 0] * theirs[:, :, 1]).sum(-1), (ours[:, :, 0] * ours[:, :, 1]).sum(-1), rtol=0, atol=1e-5)


def test_fused_qkv_rows_move_to_neox_order_and_back():
    H, Dh, C = 3, 4, 12
    weight = torch.arange(3 * C * C, dtype=torch.float32).reshape(3 * C, C)
    neox = qkv_to_neox(weight, H, Dh)
    ours_rows = weight.reshape(3, H, Dh, C)
    perm = rotary_permutation(Dh)
    for h in range(H):
        block = neox.reshape(H, 3, Dh, C)[h]
        assert torch.equal(block[0], ours_rows[0, h][perm])  # queries: this head, rotate-half order
        assert torch.equal(block[1], ours_rows[1, h][perm])  # keys: likewise
        assert torch.equal(block[2], ours_rows[2, h])  # values: not rotated, order kept
    assert torch.equal(qkv_from_neox(neox, H, Dh), weight)
    bias = torch.arange(3 * C, dtype=torch.float32)
    assert torch.equal(qkv_from_neox(qkv_to_neox(bias, H, Dh), H, Dh), bias)


def test_absent_biases_export_as_zeros_and_the_head_is_not_stored(tmp_path):
    from safetensors import safe_open

    config = ModelConfig(vocab_size=50, d_model=16, n_layers=1, n_heads=2, max_seq_len=32)
    save_hf_model(trained_like(config), tmp_path, SPECIALS)
    with safe_open(str(tmp_path / HF_WEIGHTS), framework="pt") as handle:
        names = set(handle.keys())
        assert handle.get_tensor("gpt_neox.layers.0.mlp.dense_h_to_4h.bias").abs().sum() == 0
        assert handle.get_tensor("gpt_neox.final_layer_norm.bias").abs().sum() == 0
    assert not any(n.startswith(("lm_head", "embed_out")) for n in names)
    assert not any(".attention." in n and n.endswith(".bias") for n in names)  # attention_bias = false
    hf = json.loads((tmp_path / HF_CONFIG).read_text())
    assert hf["tie_word_embeddings"] and not hf["attention_bias"] and not hf["use_parallel_residual"]
    assert (hf["rotary_pct"], hf["rope_parameters"]["partial_rotary_factor"]) == (1.0, 1.0)


# ---- transformers computes what we compute ----------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"bias": True},
        {"mlp_ratio": 2, "rope_base": 500.0, "n_heads": 4},
    ],
    ids=["no-bias", "bias", "mlp2-base500-heads4"],
)
def test_transformers_loads_the_export_offline_and_gives_our_logits(tmp_path, monkeypatch, settings):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ModelConfig(**{"vocab_size": 97, "d_model": 32, "n_layers": 2, "n_heads": 2, "max_seq_len": 48, **settings})
    ours = trained_like(config)
    save_hf_model(ours, tmp_path, SPECIALS)
    theirs, info = hf_model(tmp_path)
    assert type(theirs).__name__ == "GPTNeoXForCausalLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert theirs.get_output_embeddings().weight.data_ptr() == theirs.get_input_embeddings().weight.data_ptr()
    idx = torch.randint(0, 97, (3, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ours(idx)[0]
        got = theirs(idx).logits
    assert (got - expected).abs().max().item() < 1e-4
    assert expected.abs().max().item() > 1.0  # logits far from zero: the check means something


def test_export_and_import_give_identical_weights_also_through_transformers_own_save(tmp_path):
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_seq_len=40, bias=True)
    model = trained_like(config)
    digest = save_hf_model(model, tmp_path / "ours", SPECIALS)
    back = load_hf_model(tmp_path / "ours")
    assert digest == weights_digest(model) == weights_digest(back)
    assert back.config == config
    theirs, _ = hf_model(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "resaved")  # a foreign folder: transformers' own files, no hash of ours
    assert weights_digest(load_hf_model(tmp_path / "resaved")) == digest
    plain = trained_like(ModelConfig(vocab_size=61, d_model=32, n_layers=1, n_heads=4, max_seq_len=40))
    save_hf_model(plain, tmp_path / "plain", SPECIALS)
    assert load_hf_model(tmp_path / "plain").config.bias is False  # all-zero biases: a model without
    save_model(plain, tmp_path / "run_model")  # one reader for both kinds of folder
    assert weights_digest(load_pretrained(tmp_path / "run_model")) == weights_digest(load_pretrained(tmp_path / "plain"))


# ---- what cannot convert is one line ---------------------------------------------------------------


@pytest.fixture
def exported(tmp_path):
    config = ModelConfig(vocab_size=40, d_model=16, n_layers=1, n_heads=2, max_seq_len=32)
    save_hf_model(trained_like(config), tmp_path / "m", SPECIALS)
    return tmp_path / "m"


def _edit_config(folder, **changes):
    path = folder / HF_CONFIG
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"use_parallel_residual": True}, "use_parallel_residual = True is not supported (curricmusic's transformer needs False)"),
        ({"rotary_pct": 0.25, "rope_parameters": None}, "rotary_pct = 0.25 is not supported"),
        ({"hidden_act": "gelu_new"}, "hidden_act = 'gelu_new' is not supported"),
        ({"layer_norm_eps": 1e-6}, "layer_norm_eps = 1e-06 is not supported"),
        ({"model_type": "llama"}, "model_type 'llama' is not supported"),
        ({"vocab_size": 41}, "the weights do not fit its config.json: wrong shape gpt_neox.embed_in.weight; "
                             "gpt_neox.embed_in.weight is [40, 16] where config.json needs [41, 16]"),
        ({"intermediate_size": 40}, "intermediate_size 40 is not a whole multiple of hidden_size 16"),
    ],
)  # fmt: skip
def test_a_folder_we_cannot_read_exactly_is_one_line(exported, changes, message):
    _edit_config(exported, **changes)
    with pytest.raises(UserError) as caught:
        load_hf_model(exported)
    assert message in str(caught.value) and str(exported) in str(caught.value) and "\n" not in str(caught.value)


def test_damaged_weights_an_untied_head_and_pickles_are_refused(exported, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(exported / HF_WEIGHTS))
    tampered = dict(state)
    tampered["gpt_neox.final_layer_norm.weight"] = tampered["gpt_neox.final_layer_norm.weight"] + 1e-3
    save_file(tampered, str(exported / HF_WEIGHTS), metadata={"format": "pt", "curricmusic_weights_sha256": "0" * 64})
    with pytest.raises(UserError, match="damaged or changed: its weights do not match the content hash recorded at export"):
        load_hf_model(exported)
    untied = dict(state, **{"lm_head.weight": state["gpt_neox.embed_in.weight"] + 1.0})
    save_file(untied, str(exported / HF_WEIGHTS), metadata={"format": "pt"})
    _edit_config(exported, tie_word_embeddings=False)
    with pytest.raises(UserError, match=r"its output head \(lm_head.weight\) differs from its token embedding"):
        load_hf_model(exported)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / HF_CONFIG).write_text((exported / HF_CONFIG).read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="holds pickled PyTorch weights only .* which curricmusic never loads"):
        load_hf_model(pickled)


def test_shape_differences_name_each_setting():
    ours = ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_seq_len=32, dropout=0.1)
    theirs = ModelConfig(vocab_size=41, d_model=16, n_layers=1, n_heads=2, max_seq_len=64)
    assert shape_differences(theirs, ours) == ["vocab_size 41 where the experiment has 40", "n_layers 1 where the experiment has 2"]
    assert shape_differences(ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_seq_len=8), ours) == []


def memorized(sequence: torch.Tensor, config: ModelConfig) -> MusicTransformer:
    """A model trained until it continues ``sequence`` (T,) exactly: greedy decoding then has a
    varied path to follow, where a random model repeats one token."""
    torch.manual_seed(0)
    model = MusicTransformer(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = sequence[None, :-1], sequence[None, 1:]
    for _ in range(300):
        logits, loss = model(x, y)
        if bool((logits.argmax(-1) == y).all()) and loss.item() < 0.1:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_greedy_decoding_with_our_kv_cache_equals_transformers_generate(tmp_path, monkeypatch):
    """64 greedy tokens, ours through the KV cache one token at a time, theirs through
    ``generate``: the same tokens, and the varied ones the model was taught."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = ModelConfig(vocab_size=97, d_model=32, n_layers=2, n_heads=2, max_seq_len=128)
    sequence = torch.cat((torch.tensor([SPECIALS["BOS"]]), 3 + torch.randperm(94, generator=torch.Generator().manual_seed(0))[:71]))
    model = memorized(sequence, config)
    save_hf_model(model, tmp_path, SPECIALS)
    prompt = sequence[None, :4]  # (1, 4)
    cache = model.new_kv_cache(1)
    logits = model.forward_step(prompt, cache)[:, -1]  # (1, V)
    ours = []
    for _ in range(64):
        token = logits.argmax(-1, keepdim=True)  # (1, 1)
        ours.append(int(token))
        logits = model.forward_step(token, cache)[:, -1]
    theirs, _ = hf_model(tmp_path)
    with torch.no_grad():
        out = theirs.generate(prompt, do_sample=False, max_new_tokens=64, min_new_tokens=64)
    assert out[0, 4:].tolist() == ours == sequence[4:68].tolist()  # 64 distinct tokens, in the taught order
