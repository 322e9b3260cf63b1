"""Embedders: a tiny random CLAP loaded like real weights (directory and LAION .pt), fallback,
audio features, symbolic histograms, and the cached MIDI pass."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch

from curricmusic.common.errors import UserError
from curricmusic.music.notes import make_notes, notes_to_score
from curricmusic.novelty.embed import embed_midi_files
from curricmusic.novelty.embedders import AudioFeaturesEmbedder, SymbolicEmbedder, load_embedder

transformers = pytest.importorskip("transformers")
from curricmusic.novelty.embedders.clap import (  # noqa: E402
    ClapEmbedder,
    laion_feature_extractor,
    pad_window,
    window_bounds,
)
from curricmusic.novelty.embedders.laion_convert import infer_audio_config  # noqa: E402

SR = 48000
WINDOW = 10 * SR


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURRICMUSIC_CACHE", str(tmp_path / "cache"))


def tiny_clap_config():
    """HTSAT-shaped (64 mel bins, 256x256 spec image, window 8, four stages) but tiny."""
    return transformers.ClapAudioConfig(
        patch_embeds_hidden_size=8,
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 2, 2],
        hidden_size=64,  # = 8 * 2**3, the last stage's width
        projection_dim=16,
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
    )


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    """(directory, model): a random tiny CLAP saved the way real checkpoints are."""
    torch.manual_seed(0)
    model = transformers.ClapAudioModelWithProjection(tiny_clap_config()).eval()
    with torch.no_grad():  # give the zero-initialised tables and norms some non-trivial values
        for name, tensor in model.state_dict().items():
            if name.endswith(("relative_position_bias_table", "running_mean")):
                tensor.normal_(0.0, 0.2)
    directory = tmp_path_factory.mktemp("tiny_clap")
    model.save_pretrained(directory)
    laion_feature_extractor().save_pretrained(directory)
    return directory, model


def noise(seconds: float, seed: int, rate: int = SR) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 0.1).astype(
        np.float32
    )


# --- CLAP: windows ------------------------------------------------------------------------------


def test_a_25_second_clip_is_three_windows():
    bounds = window_bounds(25 * SR, WINDOW)
    assert bounds == [(0, WINDOW), (WINDOW, 2 * WINDOW), (2 * WINDOW, 25 * SR)]
    assert window_bounds(0, WINDOW) == [(0, 0)]
    assert len(window_bounds(WINDOW, WINDOW)) == 1
    assert len(window_bounds(WINDOW + 1, WINDOW)) == 2


def test_short_windows_are_repeat_padded():
    segment = np.arange(1, 4 * SR + 1, dtype=np.float32)  # 4 s
    padded = pad_window(segment, WINDOW)
    assert padded.shape == (WINDOW,)
    assert np.array_equal(padded[: 4 * SR], segment)
    assert np.array_equal(padded[4 * SR : 8 * SR], segment)  # repeated twice ...
    assert not np.any(padded[8 * SR :])  # ... then zeros
    assert not np.any(pad_window(np.zeros(0, np.float32), WINDOW))


# --- CLAP: loading and embedding ----------------------------------------------------------------


def test_directory_loads_like_real_weights(tiny_clap):
    directory, model = tiny_clap
    embedder = load_embedder(f"clap:{directory}")
    assert isinstance(embedder, ClapEmbedder)
    assert embedder.spec == f"clap:{directory}"
    assert embedder.kind == "learned" and embedder.weights_real is True
    assert embedder.fallback_reason is None
    assert embedder.dim == 16 and embedder.sample_rate == SR and embedder.window == WINDOW
    assert embedder.feature_extractor.frequency_min == 50
    assert embedder.feature_extractor.truncation == "rand_trunc"
    # The same weights: one window through the raw model gives the same embedding.
    features = embedder.feature_extractor([noise(10, 1)], sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        direct = model(input_features=features["input_features"]).audio_embeds
    direct = torch.nn.functional.normalize(direct, dim=-1).numpy()
    np.testing.assert_allclose(embedder.embed_audio([noise(10, 1)], SR), direct, atol=1e-5)


@pytest.mark.parametrize("fusion", [False, True])
def test_batched_features_match_the_reference_extractor(tiny_clap, fusion):
    from curricmusic.novelty.render import render

    _, model = tiny_clap
    embedder = ClapEmbedder(
        model, laion_feature_extractor(fusion), spec="clap:test", weights_id="test"
    )
    scale = render(
        notes_to_score(make_notes(range(8), [1.0] * 8, [60, 62, 64, 65, 67, 69, 71, 72]))
    )
    windows = [
        pad_window(scale.samples, WINDOW),
        pad_window(scale.samples[:1000], WINDOW),
        noise(10, 5),
        np.zeros(WINDOW, np.float32),
    ]
    ours = embedder.features(windows)
    reference = embedder.reference_features(windows)
    assert ours.shape == reference.shape == (4, 4 if fusion else 1, 1001, 64)
    assert float((ours - reference).abs().max()) < 1e-3  # dB


def test_full_clap_model_directory_loads_its_audio_tower(tmp_path):
    """Hugging Face repos hold the whole ClapModel (text tower too); only audio is loaded."""
    torch.manual_seed(1)
    text = transformers.ClapTextConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
    )
    config = transformers.ClapConfig(
        text_config=text.to_dict(), audio_config=tiny_clap_config().to_dict(), projection_dim=16
    )
    full = transformers.ClapModel(config).eval()
    full.save_pretrained(tmp_path)
    laion_feature_extractor().save_pretrained(tmp_path)
    embedder = load_embedder(f"clap:{tmp_path}")
    features = embedder.feature_extractor([noise(10, 2)], sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        expected = full.get_audio_features(input_features=features["input_features"])
    expected = expected if torch.is_tensor(expected) else expected.pooler_output
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    np.testing.assert_allclose(embedder.embed_audio([noise(10, 2)], SR), expected, atol=1e-5)


def test_directory_missing_weights_is_a_user_error(tiny_clap, tmp_path):
    """transformers would initialise the missing tensor at random; we refuse."""
    from safetensors.torch import load_file, save_file

    directory, model = tiny_clap
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    del weights["audio_projection.linear1.weight"]
    save_file(weights, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match=r"lacks 1 CLAP audio weights .*audio_projection\.linear1"):
        load_embedder(f"clap:{tmp_path}")


def test_embeddings_are_unit_rows_deterministic_and_batch_independent(tiny_clap):
    directory, _ = tiny_clap
    embedder = load_embedder(f"clap:{directory}", batch_size=4)
    clips = [noise(3, 1), noise(12, 2), noise(3, 1), noise(0.5, 3)]
    first = embedder.embed_audio(clips, SR)
    assert first.shape == (4, 16) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, embedder.embed_audio(clips, SR))
    assert float(first[0] @ first[2]) == pytest.approx(1.0, abs=1e-6)  # identical audio
    one_at_a_time = load_embedder(f"clap:{directory}", batch_size=1).embed_audio(clips, SR)
    np.testing.assert_allclose(one_at_a_time, first, atol=1e-5)


def test_long_clip_is_the_duration_weighted_mean_of_its_windows(tiny_clap):
    directory, _ = tiny_clap
    embedder = load_embedder(f"clap:{directory}")
    clip = noise(25, 4)
    windows = [pad_window(clip[a:b], WINDOW) for a, b in window_bounds(clip.size, WINDOW)]
    per_window = embedder.embed_windows(windows)
    assert per_window.shape == (3, 16)
    expected = per_window[0] + per_window[1] + 0.5 * per_window[2]
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(embedder.embed_audio([clip], SR)[0], expected, atol=1e-5)


def test_other_sample_rates_are_resampled(tiny_clap):
    directory, _ = tiny_clap
    embedder = load_embedder(f"clap:{directory}")
    clip = np.sin(2 * np.pi * 440 * np.arange(2 * 24000) / 24000).astype(np.float32)
    embedding = embedder.embed_audio([clip], 24000)
    assert embedding.shape == (1, 16) and np.isfinite(embedding).all()


# --- CLAP: LAION .pt checkpoints ----------------------------------------------------------------

HF_PREFIX = "audio_model.audio_encoder."


def to_laion_layout(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tiny HF model's weights under LAION-CLAP's names (the inverse of the converter)."""
    laion: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in hf_state.items():
        if name.startswith("audio_projection."):
            laion[name.replace("linear1", "0").replace("linear2", "2")] = tensor
            continue
        rest = name[len(HF_PREFIX) :]
        block = re.match(r"^(layers\.\d+\.blocks\.\d+)\.(.+)$", rest)
        if rest.startswith("batch_norm."):
            rest = "bn0." + rest[len("batch_norm.") :]
        elif block:
            stem, tail = block.groups()
            parts = re.match(r"^attention\.self\.(query|key|value)\.(weight|bias)$", tail)
            if parts:
                qkv.setdefault(f"{stem}.attn.qkv.{parts.group(2)}", {})[parts.group(1)] = tensor
                continue
            for hf_name, laion_name in (
                ("layernorm_before.", "norm1."),
                ("layernorm_after.", "norm2."),
                ("attention.output.dense.", "attn.proj."),
                ("attention.self.", "attn."),
                ("intermediate.dense.", "mlp.fc1."),
                ("output.dense.", "mlp.fc2."),
            ):
                if tail.startswith(hf_name):
                    tail = laion_name + tail[len(hf_name) :]
                    break
            rest = f"{stem}.{tail}"
        laion["audio_branch." + rest] = tensor
    for name, parts in qkv.items():
        laion["audio_branch." + name] = torch.cat([parts["query"], parts["key"], parts["value"]])
    # What else a real LAION checkpoint carries, all of which the converter must ignore.
    laion["audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    laion["audio_branch.logmel_extractor.melW"] = torch.zeros(1025, 64)
    laion["audio_branch.head.weight"] = torch.zeros(527, 64)
    laion["audio_branch.tscam_conv.weight"] = torch.zeros(527, 64, 2, 3)
    laion["audio_branch.layers.0.blocks.0.attn_mask"] = torch.zeros(64, 64, 64)
    laion["text_branch.embeddings.word_embeddings.weight"] = torch.zeros(10, 4)
    laion["text_projection.0.weight"] = torch.zeros(4, 4)
    laion["audio_transform.sequential.0.weight"] = torch.zeros(16, 16)
    laion["logit_scale_a"] = torch.zeros(())
    return laion


def save_laion_checkpoint(path, state):
    torch.save({"epoch": 15, "state_dict": {"module." + k: v for k, v in state.items()}}, path)


def test_laion_checkpoint_converts_to_the_same_model(tiny_clap, tmp_path):
    directory, model = tiny_clap
    laion = to_laion_layout(model.state_dict())
    assert "audio_branch.layers.0.blocks.0.attn.qkv.weight" in laion
    checkpoint = tmp_path / "630k-tiny.pt"
    save_laion_checkpoint(checkpoint, laion)
    from_pt = load_embedder(f"clap:{checkpoint}")
    assert isinstance(from_pt, ClapEmbedder) and from_pt.weights_real is True
    assert from_pt.feature_extractor.truncation == "rand_trunc"
    assert from_pt.feature_extractor.frequency_min == 50
    config = from_pt.model.config
    for field in ("patch_embeds_hidden_size", "hidden_size", "projection_dim", "window_size"):
        assert getattr(config, field) == getattr(model.config, field), field
    assert list(config.depths) == [1, 1, 1, 1]
    assert list(config.num_attention_heads) == [1, 1, 2, 2]
    clips = [noise(4, 7), noise(11, 8)]
    np.testing.assert_allclose(
        from_pt.embed_audio(clips, SR),
        load_embedder(f"clap:{directory}").embed_audio(clips, SR),
        atol=1e-5,
    )


def test_laion_checkpoint_with_numpy_scalars_loads_safely(tiny_clap, tmp_path):
    """LAION's files pickle numpy scalars: admitted by the weights-only loader, nothing else is."""
    _, model = tiny_clap
    state = {"module." + k: v for k, v in to_laion_layout(model.state_dict()).items()}
    checkpoint = tmp_path / "with_numpy.pt"
    torch.save({"epoch": np.float64(15.0), "state_dict": state}, checkpoint)
    embedder = load_embedder(f"clap:{checkpoint}")
    assert isinstance(embedder, ClapEmbedder) and embedder.weights_real is True


def test_htsat_base_shapes_are_inferred():
    """HTSAT-base (the music checkpoints): embed 128, depths 2-2-12-2, hidden 1024."""
    base = transformers.ClapAudioConfig(
        patch_embeds_hidden_size=128, depths=[2, 2, 12, 2], hidden_size=1024, projection_dim=512
    )
    with torch.device("meta"):  # shapes only
        state = transformers.ClapAudioModelWithProjection(base).state_dict()
    inferred = infer_audio_config(state)
    assert inferred["patch_embeds_hidden_size"] == 128
    assert inferred["depths"] == [2, 2, 12, 2]
    assert inferred["num_attention_heads"] == [4, 8, 16, 32]
    assert inferred["hidden_size"] == 1024 and inferred["projection_dim"] == 512
    assert inferred["window_size"] == 8 and inferred["enable_fusion"] is False


def test_laion_checkpoint_with_missing_or_unknown_keys_is_a_user_error(tiny_clap, tmp_path):
    _, model = tiny_clap
    laion = to_laion_layout(model.state_dict())
    missing = dict(laion)
    del missing["audio_branch.layers.1.blocks.0.mlp.fc1.weight"]
    save_laion_checkpoint(tmp_path / "missing.pt", missing)
    with pytest.raises(
        UserError, match=r"missing .*layers\.1\.blocks\.0\.intermediate\.dense\.weight"
    ):
        load_embedder(f"clap:{tmp_path / 'missing.pt'}")
    unknown = dict(laion)
    unknown["audio_branch.layers.0.blocks.0.attn.new_thing"] = torch.zeros(3)
    save_laion_checkpoint(tmp_path / "unknown.pt", unknown)
    with pytest.raises(UserError, match=r"unexpected .*attn\.new_thing"):
        load_embedder(f"clap:{tmp_path / 'unknown.pt'}")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pt.*not a torch checkpoint"):
        load_embedder(f"clap:{tmp_path / 'garbage.pt'}")


# --- CLAP: missing weights ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/nonexistent/music_audioset_epoch_15_esc_90.14.pt", "curricmusic-tests/no-such-model"],
)
def test_missing_weights_fall_back_to_audio_features(target):
    embedder = load_embedder(f"clap:{target}")
    assert isinstance(embedder, AudioFeaturesEmbedder)
    assert embedder.weights_real is None and embedder.kind == "no-weights"
    reason = embedder.fallback_reason
    assert target in reason and "hf download" in reason and ".pt" in reason
    assert "audio-features" in reason
    assert embedder.describe()["fallback_reason"] == reason
    assert embedder.describe()["requested_spec"] == f"clap:{target}"
    with pytest.raises(UserError, match="not found"):
        load_embedder(f"clap:{target}", fallback=False)


def test_missing_transformers_falls_back_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    embedder = load_embedder("clap:laion/larger_clap_music")
    assert isinstance(embedder, AudioFeaturesEmbedder)
    assert "pip install 'curricmusic[clap]'" in embedder.fallback_reason


@pytest.mark.parametrize(
    "spec", ["clip:foo", "clap", "clap:", "symbolic:x", "audio-features:y", ""]
)
def test_bad_specs_are_user_errors(spec):
    with pytest.raises(UserError):
        load_embedder(spec)


# --- audio features -----------------------------------------------------------------------------


def test_audio_features_are_unit_rows_and_batch_independent():
    from curricmusic.novelty.render import render

    embedder = load_embedder("audio-features")
    assert embedder.kind == "no-weights" and embedder.weights_real is None
    scale = notes_to_score(make_notes(range(8), [1.0] * 8, [60, 62, 64, 65, 67, 69, 71, 72]))
    chord = notes_to_score(make_notes([0, 0, 0], [4.0] * 3, [48, 52, 55]))
    clips = [render(scale).samples, render(chord).samples, np.zeros(SR, np.float32)]
    together = embedder.embed_audio(clips, SR)
    assert together.shape == (3, embedder.dim) and np.isfinite(together).all()
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(together, embedder.embed_audio(clips, SR))
    np.testing.assert_allclose(embedder.embed_audio(clips[:1], SR), together[:1], atol=1e-6)
    assert float(together[0] @ together[1]) < 0.99


# --- symbolic -----------------------------------------------------------------------------------


def melody(shift: int = 0) -> np.ndarray:
    pitches = np.array([60, 62, 64, 65, 67, 65, 64, 62, 60, 67, 64, 60]) + shift
    onsets = np.array([0, 1, 2, 3, 4, 5, 5.5, 6, 7, 8, 9, 10], dtype=float)
    return make_notes(onsets, np.diff(np.append(onsets, 12.0)), pitches)


def test_symbolic_embedding_is_transposition_invariant():
    embedder = SymbolicEmbedder()
    other = make_notes(
        np.arange(12) * 0.5, [0.25] * 12, [72, 71, 69, 66, 64, 62, 61, 59, 57, 54, 52, 50]
    )
    rows = embedder.embed_notes([melody(), melody(5), melody(-3), other])
    assert rows.shape == (4, embedder.dim) and rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)
    assert float(rows[0] @ rows[1]) > 0.999
    assert float(rows[0] @ rows[2]) > 0.999
    assert float(rows[0] @ rows[3]) < 0.9
    np.testing.assert_array_equal(
        rows, embedder.embed_notes([melody(), melody(5), melody(-3), other])
    )
    assert not np.any(embedder.embed_one(make_notes([], [], [])))


def test_symbolic_embedder_does_not_take_audio():
    with pytest.raises(UserError, match="note arrays"):
        SymbolicEmbedder().embed_audio([np.zeros(10)], SR)


# --- embed_midi_files ---------------------------------------------------------------------------


def midi_folder(tmp_path):
    paths = []
    for i, shift in enumerate([0, 2, 7]):
        path = tmp_path / f"piece{i}.mid"
        notes_to_score(melody(shift)).dump_midi(str(path))
        paths.append(path)
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\x10\x00")
    empty = tmp_path / "empty.mid"
    notes_to_score(make_notes([], [], [])).dump_midi(str(empty))
    return [paths[0], corrupt, paths[1], empty, paths[2], tmp_path / "missing.mid"]


class Counting:
    """Wraps an embedder's batch call to count how often the model runs."""

    def __init__(self, embedder, method):
        self.calls = 0
        original = getattr(embedder, method)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        setattr(embedder, method, counted)


def test_embed_midi_files_skips_bad_files_and_uses_the_cache(tmp_path):
    paths = midi_folder(tmp_path)
    embedder = SymbolicEmbedder()
    counter = Counting(embedder, "embed_notes")
    embeddings, skipped = embed_midi_files(paths, embedder, progress=False)
    assert embeddings.shape == (3, embedder.dim)
    assert [s["path"] for s in skipped] == [str(paths[1]), str(paths[3]), str(paths[5])]
    reasons = [s["reason"] for s in skipped]
    assert "not a readable MIDI file" in reasons[0]
    assert reasons[1] == "no notes"
    assert reasons[2].startswith("cannot read file")
    assert counter.calls == 1
    again, skipped_again = embed_midi_files(paths, embedder, progress=False)
    assert counter.calls == 1  # every good file came from the cache
    np.testing.assert_array_equal(again, embeddings)
    assert skipped_again == skipped
    direct = embedder.embed_notes([melody(0), melody(2), melody(7)])
    np.testing.assert_allclose(embeddings, direct, atol=1e-6)


def test_embed_midi_files_skips_scores_too_long_to_render(tmp_path):
    paths = midi_folder(tmp_path)
    far = tmp_path / "far.mid"
    notes_to_score(make_notes([0.0, 8000.0], [1.0, 1.0], [60, 62])).dump_midi(str(far))  # 4000 s
    embeddings, skipped = embed_midi_files(
        [paths[0], far], AudioFeaturesEmbedder(), renderer="sine", progress=False
    )
    assert embeddings.shape == (1, 80)
    assert skipped == [{"path": str(far), "reason": skipped[0]["reason"]}]
    assert "render limit" in skipped[0]["reason"]


def test_embed_midi_files_renders_for_audio_embedders(tiny_clap, tmp_path):
    directory, _ = tiny_clap
    paths = midi_folder(tmp_path)
    embedder = load_embedder(f"clap:{directory}")
    counter = Counting(embedder, "embed_audio")
    embeddings, skipped = embed_midi_files(paths, embedder, progress=False)
    assert embeddings.shape == (3, 16) and len(skipped) == 3
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert counter.calls == 1
    embed_midi_files(paths, embedder, progress=False)
    assert counter.calls == 1
    # Another renderer is another cache key: the sine renders are embedded afresh.
    sine, _ = embed_midi_files(paths, embedder, renderer="sine", progress=False)
    assert counter.calls == 2
    assert not np.allclose(sine, embeddings)
