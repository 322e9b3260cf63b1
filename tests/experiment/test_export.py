"""Share a model (issue 22): a trained run exported as a Hugging Face folder, loaded by
transformers and MidiTok offline, sampled by curricmusic, and started from again with init_from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from curricmusic.common.errors import UserError
from curricmusic.common.run_folder import read_run
from curricmusic.config import SHARED, load_experiment
from curricmusic.config.generation import GenerationSettings
from curricmusic.config.run_settings import novelty_settings_for_run, settings_for_run
from curricmusic.experiment.export import export_run
from curricmusic.generation.generate import generate_samples, sample_tokens
from curricmusic.generation.run import load_run
from curricmusic.model.transformer import weights_digest
from curricmusic.novelty.pipeline import score_novelty
from curricmusic.reporting.style import fmt
from curricmusic.training.loop import train_run
from tests.helpers import REPO, melody_midi, run_cli

EXPERIMENT = f"""
name = "share"
curriculum = "{REPO / "curricula" / "debug.toml"}"
[model]
size = "tiny"
d_model = 64
n_layers = 2
n_heads = 2
dropout = 0.0
[train]
tokens = 4096           # 8 steps of 4 windows x 128 tokens
seq_len = 128
batch_size = 4
lr = 1e-3
eval_every = 4
log_every = 4
checkpoint_every = 4
[[arms]]
name = "curriculum"
pacing = "fixed"
stage_fractions = [0.2, 0.2, 0.2]
[[arms]]
name = "random"
pacing = "random"
[generate]
n = 2
max_bars = 4
max_tokens = 128
temperature = 0.9
[novelty]
embedder = "symbolic"
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A trained run with samples and their novelty report, and its export."""
    root = tmp_path_factory.mktemp("share")
    path = root / "share.toml"
    path.write_text(EXPERIMENT)
    run_dir = root / "run"
    train_run(load_experiment(path), "curriculum", 0, run_dir, show_progress=False)
    settings, sources = settings_for_run(read_run(run_dir), {})
    generate_samples(run_dir, run_dir / "samples", settings, sources=sources, show_progress=False)
    novelty, novelty_sources = novelty_settings_for_run(read_run(run_dir), {})
    score_novelty(run_dir / "samples", run_dir, run_dir / "novelty", novelty, sources=novelty_sources, show_progress=False)
    out = export_run(run_dir, root / "debug-model", license="mit")
    return {"root": root, "experiment": path, "run": run_dir, "out": out, "digest": load_run(run_dir, "cpu").checkpoint_sha256}


def hf_model(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()


# ---- transformers and MidiTok read the folder ---------------------------------------------------------


def test_transformers_loads_the_exported_run_offline_with_its_logits(shared, monkeypatch):
    from transformers import GenerationConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours = load_run(shared["run"], "cpu").model
    theirs = hf_model(shared["out"])
    idx = torch.randint(0, ours.config.vocab_size, (4, 128), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (theirs(idx).logits - ours(idx)[0]).abs().max().item()
    assert difference < 1e-4
    generation = GenerationConfig.from_pretrained(shared["out"], local_files_only=True)
    assert (generation.temperature, generation.top_p, generation.top_k, generation.max_new_tokens) == (0.9, 0.95, 0, 128)
    assert generation.do_sample and generation.eos_token_id == json.loads((shared["out"] / "config.json").read_text())["eos_token_id"]


def test_greedy_generate_in_transformers_equals_our_greedy_path_and_miditok_decodes_it(shared, monkeypatch, tmp_path):
    """64 greedy tokens after the opening of a training chorale: transformers' ``generate`` and
    curricmusic's sampler (top-k 1, no grammar or priors: the raw model) on the exported folder.
    An 8-step model's greedy path soon repeats one token; tests/model/test_hf_export.py checks a
    varied one (a model that memorized a sequence)."""
    from miditok import REMI
    from symusic import Score

    from curricmusic.music.tokenizers import decode_ids

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run = load_run(shared["out"], "cpu")  # the exported folder, read back by curricmusic
    data = load_run(shared["run"], "cpu").prepared()
    prompt = np.asarray(data.piece_tokens("chorales", "train", 0)[:24], dtype=np.int64)  # BOS, then the opening
    greedy = GenerationSettings(
        top_k=1, grammar=False, copy_blocking=False, pitch_range=[0, 127], max_tokens=65, min_tokens=64, max_bars=10_000
    )
    ours = sample_tokens(run.model, run.tokenizer, greedy, [0], prompt).tokens[0][:64]
    with torch.no_grad():
        out = hf_model(shared["out"]).generate(
            torch.from_numpy(prompt)[None], do_sample=False, max_new_tokens=64, min_new_tokens=64
        )  # fmt: skip
    theirs = out[0, len(prompt) :].numpy()
    assert len(ours) == len(theirs) == 64
    np.testing.assert_array_equal(ours, theirs)
    tokenizer = REMI.from_pretrained(shared["out"])  # MidiTok's own Hub method, on the local folder
    specials = {tokenizer.vocab[t] for t in ("BOS_None", "EOS_None", "PAD_None")}
    sequence = np.concatenate([prompt, theirs]).tolist()
    tokenizer.decode([[i for i in sequence if i not in specials]]).dump_midi(tmp_path / "greedy.mid")
    data_bytes = (tmp_path / "greedy.mid").read_bytes()
    assert data_bytes.startswith(b"MThd")
    score = Score.from_midi(data_bytes)  # a valid MIDI file: it parses back
    expected = decode_ids(run.tokenizer, np.asarray(sequence))
    assert score.note_num() == expected.note_num() >= decode_ids(run.tokenizer, prompt).note_num() > 0


def test_the_model_cards_snippet_runs_offline(shared, monkeypatch, tmp_path):
    from symusic import Score

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    card = (shared["out"] / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert len(code.strip().splitlines()) <= 10
    exec(compile(code.replace('"debug-model"', repr(str(shared["out"]))), "snippet", "exec"), {})  # noqa: S102
    assert Score.from_midi((tmp_path / "sample.mid").read_bytes()).ticks_per_quarter > 0


# ---- the model card -------------------------------------------------------------------------------------


def test_the_model_card_shows_the_runs_own_figures(shared):
    from huggingface_hub import ModelCard

    card = ModelCard.load(shared["out"] / "README.md")
    assert card.data.license == "mit" and card.data.library_name == "transformers" and "midi" in card.data.tags
    text, info = card.text, read_run(shared["run"])
    for stage in info["stages"]:  # every loss of every stage, as run.json holds it
        row = f"| {stage} | {fmt(info['final_val_loss'][stage])} | {fmt(info['best_val_loss'][stage])} | {fmt(info['test_loss'][stage])} |"
        assert row in text
    manifest = json.loads((Path(info["prepared"]) / "manifest.json").read_text())
    chorales = next(s for s in manifest["stages"] if s["name"] == "chorales")
    counts = " / ".join(str(len(chorales["splits"][s]["pieces"])) for s in ("train", "val", "test"))
    assert f"| chorales | music21 corpus: bach_chorales | {counts} | {info['stage_tokens']['chorales']:,} | music21's bundled corpus" in text
    assert "| scales | generated: scales |" in text and "no third-party music" in text
    summary = json.loads((shared["run"] / "novelty" / "novelty.json").read_text())["summary"]
    assert f"| copy-blocking on | 2 | {summary['n_flagged']} | {fmt(summary['copy_rate'])} | {summary['longest_copied_notes_max']} |" in text
    assert f"`{shared['digest']}`" in text and "`curriculum`: pacing fixed" in text
    assert f"{info['tokens_seen']:,} tokens, step 8 of 8 (finished)" in text
    record = json.loads((shared["out"] / "curricmusic.json").read_text())
    assert record["weights_sha256"] == shared["digest"] and record["run"]["seed"] == 0
    for published in (text, json.dumps(record)):  # the card is meant to be published: no local paths
        assert str(shared["root"]) not in published


def test_a_card_without_novelty_says_so_and_picks_only_this_models_samples(shared, tmp_path):
    from curricmusic.experiment.export_facts import novelty_facts

    assert set(novelty_facts(shared["run"], shared["digest"])) == {"blocked"}
    assert novelty_facts(shared["run"], "0" * 64) == {}  # samples of other weights are not this model's
    from curricmusic.reporting.model_card import model_card

    facts = json.loads((shared["out"] / "curricmusic.json").read_text())["facts"]
    assert "no novelty report of samples drawn from these weights" in model_card(facts | {"novelty": {}})


# ---- the command line -----------------------------------------------------------------------------------


def test_the_export_command_writes_replaces_its_own_and_refuses_others(shared, monkeypatch, capsys, tmp_path):
    out = tmp_path / "model"
    status, _, err = run_cli(monkeypatch, capsys, "export", shared["run"], "--out", out)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md", "curricmusic.json"]
    )
    assert 'license: "other"' in (out / "README.md").read_text()  # no --license: none chosen
    status, _, err = run_cli(monkeypatch, capsys, "export", shared["run"], "--out", out, "--license", "cc-by-4.0")
    assert status == 0 and 'license: "cc-by-4.0"' in (out / "README.md").read_text()
    (out / "notes.txt").write_text("mine")
    status, _, err = run_cli(monkeypatch, capsys, "export", shared["run"], "--out", out)
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "holds files curricmusic did not write (notes.txt)" in lines[0]
    assert (out / "notes.txt").read_text() == "mine"
    status, _, err = run_cli(monkeypatch, capsys, "export", tmp_path, "--out", tmp_path / "x")
    assert status == 2 and "not a run folder (no run.json)" in err and not (tmp_path / "x").exists()
    status, _, err = run_cli(monkeypatch, capsys, "export", shared["run"], "--out", shared["run"] / "inside")
    assert status == 2 and "--out overlaps the run folder" in err


def test_generate_samples_an_exported_folder_with_the_runs_defaults(shared, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(monkeypatch, capsys, "generate", shared["out"], "--n", "1", "--max-tokens", "64")
    assert status == 0, err
    manifest = json.loads((tmp_path / "samples" / "debug-model" / "manifest.json").read_text())
    assert manifest["checkpoint_sha256"] == shared["digest"] and manifest["run_seed"] == 0
    assert manifest["settings"]["temperature"] == 0.9 and manifest["settings_source"]["temperature"] == "experiment"
    assert not manifest["settings"]["copy_blocking"] and "carries no training data" in " ".join(manifest["constraints"]["notes"])
    assert manifest["samples"] and not (shared["out"] / "samples").exists()  # nothing written into the model folder


# ---- init_from: starting from the shared model -----------------------------------------------------------


def _experiment_with(shared, tmp_path, text: str):
    path = tmp_path / "exp.toml"
    path.write_text(EXPERIMENT + text)
    return path


def test_export_then_init_from_gives_identical_weights_to_every_arm(shared, tmp_path):
    from curricmusic.model.initial import initial_model
    from curricmusic.training.setup import build_model

    path = _experiment_with(shared, tmp_path, "")
    path.write_text(path.read_text().replace("checkpoint_every = 4\n", f'checkpoint_every = 4\ninit_from = "{shared["out"]}"\n'))
    experiment = load_experiment(path)
    assert experiment.config.train.init_from == shared["out"]
    for arm in ("curriculum", "random"):
        result = train_run(experiment, arm, 3, tmp_path / arm, show_progress=False, stop_after=0)
        info = read_run(result.run_dir)
        assert info["init_sha256"] == info["init_from"]["weights_sha256"] == shared["digest"]  # the same hash: the same weights
        assert weights_digest(initial_model(info, len(load_run(shared["out"], "cpu").tokenizer))) == shared["digest"]
    fresh = build_model(experiment, load_run(shared["out"], "cpu").model.config.vocab_size, 3)
    assert weights_digest(fresh) != shared["digest"]


def test_an_init_from_of_another_shape_or_vocabulary_is_one_line(shared, monkeypatch, capsys, tmp_path):
    from curricmusic.config import TokenizerSettings
    from curricmusic.music.tokenizers import build_tokenizer
    from curricmusic.training.init_from import start_from

    path = _experiment_with(shared, tmp_path, "")
    text = path.read_text().replace("d_model = 64", "d_model = 32").replace("checkpoint_every = 4\n", f'checkpoint_every = 4\ninit_from = "{shared["out"]}"\n')
    path.write_text(text)
    status, _, err = run_cli(monkeypatch, capsys, "train", path, "--out", tmp_path / "run")
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, err
    assert f"train.init_from: {shared['out']}: a model of another shape: d_model 64 where the experiment has 32" in lines[0]
    assert not (tmp_path / "run").exists()
    model = load_run(shared["run"], "cpu").model
    other = build_tokenizer(TokenizerSettings(num_velocities=4))
    with pytest.raises(UserError, match=r"its tokenizer is not the experiment's: 7\d\d tokens where the experiment's tokenizer has 7\d\d"):
        start_from(model, shared["out"], other, "x.toml: train.init_from")
    path.write_text(EXPERIMENT.replace("checkpoint_every = 4\n", f'checkpoint_every = 4\ninit_from = "{tmp_path / "nowhere"}"\n'))
    with pytest.raises(UserError, match=r"train.init_from: '.*nowhere' is not a model folder \(no config.json\)"):
        load_experiment(path)


def test_adapt_an_exported_model_to_a_tiny_midi_folder(shared, tmp_path):
    from curricmusic.common.run_folder import read_metrics
    from curricmusic.experiment.adapt_results import adaptation_results
    from curricmusic.experiment.adaptation import adapt_dir, adapt_shared, model_dir

    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(16):
        (folder / f"tune{i}.mid").write_bytes(melody_midi(100 + i, n_notes=32))
    adapt = f"""
[adapt]
shots = [4]
tokens = 2048
lr = 1e-3
eval_every = 2
log_every = 2
checkpoint_every = 2
init_from = "{shared["out"]}"
style = {{ source = "midi_dir", path = "{folder}" }}
"""
    experiment = load_experiment(_experiment_with(shared, tmp_path, adapt))
    assert adapt_shared(experiment, tmp_path / "out", show_progress=False) == []
    run_dir = adapt_dir(model_dir(tmp_path / "out", SHARED, 0), 4)
    info = read_run(run_dir)
    assert info["status"] == "finished" and info["init_sha256"] == shared["digest"] and info["adapt"]["init"] == str(shared["out"])
    evaluations = [row["val_loss"]["style"] for row in read_metrics(run_dir) if "val_loss" in row]
    assert len(evaluations) == 3 and all(np.isfinite(evaluations))
    by_style = adaptation_results(experiment, tmp_path / "out", [])
    assert len(by_style) == 1  # the one style of [adapt]
    results = by_style[0]
    assert results["models"] == ["curriculum", "random", SHARED, "scratch"] and results["shared_model"] == "debug-model"
    assert [r["status"] for r in results["runs"] if r["model"] == SHARED] == ["done"]
    assert not any(SHARED in (row["arm"], row["baseline"]) for row in results["comparisons"])  # shown, never compared
