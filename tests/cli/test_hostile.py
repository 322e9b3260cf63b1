"""The package tried as a hostile or careless user would (issue 11), one section per numbered case:

1. no data loss: a folder curricmusic did not make is never deleted, replaced or written into;
2. checkpoints load with ``weights_only=True``: a pickle payload in a run folder never runs;
3. LAION ``.pt`` files load with ``weights_only=True`` too;
4. names that become paths are validated; nothing is written outside ``--out`` and the cache;
5. ``run`` exits non-zero when a run failed, and checks its settings before training;
6. every failure is one line (exit 1 or 2), the traceback only under ``--debug``;
7. no leftovers: pool workers die with their parent, stale build folders go, old samples go;
8. integrity: weights carry a content hash, checked on load; the hash is the same in every process;
9. links in HTML pages are quoted relative paths, never a scheme;
10. the install text says which PyTorch build each spec brings.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from curricmusic.common.errors import UserError
from curricmusic.config import CurriculumConfig, NoveltySection, load_curriculum, load_experiment
from curricmusic.config.generation import GenerationSettings
from curricmusic.data.prepare import prepare
from curricmusic.training.loop import train_run
from tests.conftest import REPO
from tests.helpers import (
    DEBUG_ENV,
    HANG_S,
    TINY,
    TOOL_CACHES,
    broken_midis,
    melody_midi,
    one_line_error,
    tiny_experiment,
)

DEBUG_CURRICULUM = REPO / "curricula" / "debug.toml"
MARKER = ".curricmusic"  # the mark of a folder curricmusic made

def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))
    }


def users_folder(path: Path) -> Path:
    """A folder of the user's own: a thesis and a MIDI file."""
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work")
    (path / "tune.mid").write_bytes(melody_midi(0))
    return path


# ---- 1. data loss ------------------------------------------------------------------------


def test_1_prepare_never_replaces_a_folder_it_did_not_make(tmp_path, midi_folder):
    config = load_curriculum(DEBUG_CURRICULUM)
    mine = users_folder(tmp_path / "k")
    before = snapshot(mine)
    for force in (False, True):
        with pytest.raises(UserError, match="not made by curricmusic"):
            prepare(config, mine, show_progress=False, force=force)
    assert snapshot(mine) == before


def test_1_prepare_of_a_midi_folder_into_itself_or_the_current_folder_deletes_nothing(cli, tmp_path, midi_folder, monkeypatch):
    before = snapshot(midi_folder)
    status, err = cli("data", "prepare", midi_folder, "--out", midi_folder)
    one_line_error(status, err, 2, str(midi_folder))
    status, err = cli("data", "prepare", midi_folder, "--out", midi_folder / "prepared")  # inside the source
    one_line_error(status, err, 2, "overlaps the MIDI folder")
    assert snapshot(midi_folder) == before
    work = users_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    status, err = cli("data", "prepare", midi_folder, "--out", ".")
    one_line_error(status, err, 2, "current folder")
    assert snapshot(work)["thesis.txt"] == b"three years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    status, err = cli("data", "prepare", midi_folder, "--out", ".")
    one_line_error(status, err, 2, "current folder")
    assert snapshot(midi_folder) == before


def test_1_force_replaces_only_a_prepared_folder_of_ours_and_modes_follow_the_umask(tmp_path, midi_folder):
    config = CurriculumConfig.model_validate(
        {"name": "tunes", "stages": [{"name": "tunes", "source": "midi_dir", "path": midi_folder}]}
    )
    out = tmp_path / "prep"
    old = os.umask(0o022)
    try:
        first = prepare(config, out, show_progress=False)
        assert not first.reused and (out / MARKER).is_file()
        assert stat.S_IMODE(out.stat().st_mode) == 0o755  # mkdtemp's 0700 is gone
        assert stat.S_IMODE((out / "manifest.json").stat().st_mode) == 0o644
        assert prepare(config, out, show_progress=False).reused
        assert not prepare(config, out, show_progress=False, force=True).reused
        (out / "thesis.txt").write_text("mine")  # the user's file in our folder: never replaced
        with pytest.raises(UserError, match="files curricmusic did not write .*thesis.txt"):
            prepare(config, out, show_progress=False, force=True)
        assert (out / "thesis.txt").read_text() == "mine"
    finally:
        os.umask(old)


def test_1_every_command_that_writes_a_folder_refuses_one_it_did_not_make(trained, tmp_path):
    from curricmusic.experiment.runner import run_experiment
    from curricmusic.generation.generate import generate_samples
    from curricmusic.novelty.compare import compare_reports
    from curricmusic.novelty.pipeline import score_novelty

    mine = users_folder(tmp_path / "mine")
    before = snapshot(mine)
    experiment = load_experiment(tiny_experiment(tmp_path / "exp"))
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "a.mid").write_bytes(melody_midi(1))
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"summary": {"n": 1, "copy_rate": 0.0}, "samples": [{"rho": 1.0}], "embedder": {"spec": "symbolic"}}))
    attempts = {
        "train": lambda: train_run(experiment, "random", 0, mine, show_progress=False),
        "generate": lambda: generate_samples(trained, mine, GenerationSettings(n=1, max_tokens=16, copy_blocking=False), show_progress=False),
        "novelty": lambda: score_novelty(samples, trained, mine, NoveltySection(embedder="symbolic"), show_progress=False),
        "compare": lambda: compare_reports([report], mine),
        "run": lambda: run_experiment(experiment, mine, show_progress=False),
    }
    for command, attempt in attempts.items():
        with pytest.raises(UserError, match="was not made by curricmusic"):
            attempt()
        assert snapshot(mine) == before, command


def test_1_a_folder_of_ours_of_another_kind_is_not_written_into(trained, tmp_path, midi_folder):
    from curricmusic.generation.generate import generate_samples

    config = CurriculumConfig.model_validate(
        {"name": "tunes", "stages": [{"name": "tunes", "source": "midi_dir", "path": midi_folder}]}
    )
    prepared = prepare(config, tmp_path / "prep", show_progress=False).data.root
    before = snapshot(prepared)
    experiment = load_experiment(tiny_experiment(tmp_path / "exp"))
    with pytest.raises(UserError, match="is a curricmusic prepared folder, not a samples one"):
        generate_samples(trained, prepared, GenerationSettings(n=1, max_tokens=16, copy_blocking=False), show_progress=False)
    with pytest.raises(UserError, match="not a run one"):
        train_run(experiment, "random", 0, prepared, show_progress=False)
    with pytest.raises(UserError, match="not a prepared one"):
        prepare(config, trained, show_progress=False)
    assert snapshot(prepared) == before


# ---- 2. checkpoints never unpickle -------------------------------------------------------

EVIL = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"step": 4, "model": {}, "evil": Payload()}, sys.argv[1])
"""


def write_evil(path: Path, marker: Path) -> None:
    subprocess.run([sys.executable, "-c", EVIL, str(path), str(marker)], check=True, timeout=HANG_S)


def test_2_a_pickle_payload_in_a_run_folder_never_runs(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    marker = tmp_path / "payload-ran"
    write_evil(run_dir / "checkpoint.pt", marker)
    experiment = load_experiment(tiny_experiment(tmp_path / "exp"))
    with pytest.raises(UserError, match="checkpoint.pt: refused"):
        train_run(experiment, "random", 0, run_dir, resume=True, show_progress=False)
    assert not marker.exists()


def test_2_our_checkpoints_hold_only_tensors_and_plain_values(trained, tmp_path):
    from curricmusic.training.checkpoint import load_checkpoint, save_checkpoint

    payload = torch.load(trained / "checkpoint.pt", weights_only=True)  # would raise otherwise
    assert payload["step"] == 8 and len(payload["content_sha256"]) == 64
    assert load_checkpoint(trained / "checkpoint.pt")["step"] == 8
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint(tmp_path / "x.pt", {"rng": np.random.default_rng(0)})


# ---- 3. LAION checkpoints never unpickle -------------------------------------------------


def test_3_a_pickle_payload_in_a_laion_checkpoint_never_runs(tmp_path):
    from curricmusic.novelty.embedders.laion_convert import read_checkpoint

    marker = tmp_path / "payload-ran"
    write_evil(tmp_path / "music_audioset.pt", marker)
    with pytest.raises(UserError, match="refused LAION checkpoint .*posix.system"):
        read_checkpoint(tmp_path / "music_audioset.pt")
    assert not marker.exists()
    torch.save({"epoch": np.float64(15.0), "state_dict": {"module.x": torch.ones(2)}}, tmp_path / "plain.pt")
    assert read_checkpoint(tmp_path / "plain.pt")["x"].tolist() == [1.0, 1.0]  # numpy scalars are fine


# ---- 4. names and paths ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", ".hidden", "a/b", ""])
def test_4_a_curriculum_name_that_would_leave_the_cache_is_refused_at_load(tmp_path, name):
    text = DEBUG_CURRICULUM.read_text().replace('name = "debug"', f"name = {json.dumps(name)}", 1)
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=r"c\.toml: name: "):
        load_curriculum(path)


def test_4_a_run_writes_nothing_outside_its_folder_and_the_cache(tmp_path):
    home, temp, work, cache = (tmp_path / name for name in ("home", "tmp", "work", "cache"))
    for folder in (home, temp, cache):
        folder.mkdir()
    experiment = tiny_experiment(work)
    watched = [home, temp, work, REPO]

    def files() -> set[str]:
        found = set()
        for root in watched:
            for path in root.rglob("*"):
                parts = path.relative_to(root).parts
                if root == REPO and parts[0] in (".git", ".venv", ".pytest_cache", ".ruff_cache"):
                    continue
                if "__pycache__" in parts:
                    continue
                found.add(str(path))
        return found

    before = files()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(temp), CURRICMUSIC_CACHE=str(cache))
    for variable in TOOL_CACHES:
        env.pop(variable, None)
    done = subprocess.run(
        [sys.executable, "-m", "curricmusic", "run", str(experiment), "--out", "runs/tiny"],
        cwd=work, env=env, capture_output=True, text=True, timeout=HANG_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    new = sorted(path for path in files() - before if not path.startswith(str(work / "runs")))
    assert new == []
    assert (work / "runs" / "tiny" / "report.html").is_file()


# ---- 5. run: failures and up-front checks ------------------------------------------------


def test_5_run_exits_non_zero_and_names_the_failed_runs(cli, tmp_path, monkeypatch):
    import curricmusic.experiment.runner as runner

    def fail(experiment, cell, show_progress):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(runner, "_train_cell", fail)
    status, err = cli("run", tiny_experiment(tmp_path), "--out", tmp_path / "out")
    assert status == 1, err
    assert "Traceback" not in err
    assert "random seed 0: RuntimeError: out of memory (simulated)" in err
    assert "1 of 1 runs failed" in err


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[novelty]\nembedder = "bogus"', "novelty.embedder: unknown embedder 'bogus'"),
        ("[generate]\nmax_copy_notes = 2", "generate.max_copy_notes: Input should be greater than or equal to 3"),
        ('[novelty]\nembedder = "symbolic"\nbank_stages = ["nope"]', "novelty.bank_stages: no stage 'nope'"),
    ],
)
def test_5_run_checks_what_it_needs_before_the_first_step_trains(cli, tmp_path, monkeypatch, section, expected):
    import curricmusic.experiment.runner as runner

    trained_cells = []
    monkeypatch.setattr(runner, "_train_cell", lambda *args: trained_cells.append(args))
    head = TINY.split("[generate]")[0]
    text = head + ("[novelty]\nembedder = \"symbolic\"\n" if "[novelty]" not in section else "") + section + "\n"
    status, err = cli("run", tiny_experiment(tmp_path, text), "--out", tmp_path / "out")
    one_line_error(status, err, 2, expected)
    assert trained_cells == [] and not (tmp_path / "out").exists()


# ---- 6. one line per failure -------------------------------------------------------------


def read_only(path: Path, monkeypatch) -> Path:
    """Make ``path`` a folder nobody may write into (simulated for root, whom modes do not stop)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    if os.geteuid() != 0:
        return path
    import builtins
    import io

    root = str(path)

    def inside(target) -> bool:
        try:
            return os.path.abspath(os.fspath(target)).startswith(root + os.sep)
        except TypeError:
            return False

    def refuse(target):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(target))

    real_mkdir, real_open, real_os_open = os.mkdir, builtins.open, os.open

    def mkdir(target, *args, **kwargs):
        return refuse(target) if inside(target) else real_mkdir(target, *args, **kwargs)

    def os_open(target, flags, *args, **kwargs):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        return refuse(target) if writing and inside(target) else real_os_open(target, flags, *args, **kwargs)

    def open_(target, mode="r", *args, **kwargs):
        writing = any(c in mode for c in "wax+")
        return refuse(target) if writing and inside(target) else real_open(target, mode, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    return path


def test_6_a_read_only_out_or_cache_is_one_line(cli, tmp_path, monkeypatch):
    locked = read_only(tmp_path / "locked", monkeypatch)
    status, err = cli("train", tiny_experiment(tmp_path / "exp"), "--out", locked / "run")
    one_line_error(status, err, 1, str(locked / "run"), "Permission denied")
    monkeypatch.setenv("CURRICMUSIC_CACHE", str(locked / "cache"))
    status, err = cli("data", "prepare", DEBUG_CURRICULUM)
    one_line_error(status, err, 1, str(locked / "cache"), "CURRICMUSIC_CACHE")


def test_6_a_full_disk_while_saving_a_checkpoint_is_one_line(cli, tmp_path, monkeypatch):
    def full(payload, handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    status, err = cli("train", tiny_experiment(tmp_path / "exp"), "--out", tmp_path / "run")
    one_line_error(status, err, 1, str(tmp_path / "run" / "checkpoint.pt"), "No space left on device", "disk is full")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".checkpoint.pt")]  # no torn file


def test_6_negative_seeds_are_refused(cli, tmp_path):
    experiment = tiny_experiment(tmp_path / "exp")
    status, err = cli("train", experiment, "--seed", "-1", "--out", tmp_path / "run")
    assert status == 2 and "Traceback" not in err and "--seed" in err
    negative = tiny_experiment(tmp_path / "neg", TINY.replace("seeds = [0]", "seeds = [-1]"))
    status, err = cli("train", negative, "--out", tmp_path / "run")
    one_line_error(status, err, 2, "seeds: seeds must be >= 0")


@pytest.mark.parametrize("name", ["Études", ".hidden", "曲"])
def test_6_prepare_a_midi_folder_with_any_name(cli, tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    for i in range(6):
        (folder / f"t{i}.mid").write_bytes(melody_midi(i))
    status, err = cli("data", "prepare", folder, "--out", tmp_path / "prep")
    assert status == 0, err
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert manifest["curriculum"]["name"].isascii() and not manifest["curriculum"]["name"].startswith(".")


def test_6_compare_of_a_wav_or_a_report_without_embedder_is_one_line_and_writes_nothing(cli, tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF\xff\xff\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\xbb\x00\x00")
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"summary": {"n": 1, "copy_rate": 0.0}, "samples": []}))
    for bad, fragment in ((wav, "not a novelty report"), (partial, "no 'embedder'")):
        status, err = cli("compare", bad, "--out", tmp_path / "cmp")
        one_line_error(status, err, 2, str(bad), fragment)
        assert not (tmp_path / "cmp").exists()


def test_6_the_traceback_only_under_debug(cli, tmp_path, monkeypatch):
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"summary": {}, "samples": []}))
    assert "Traceback" not in cli("compare", partial)[1]
    assert "Traceback" in cli("compare", partial, "--debug")[1]
    assert "Traceback" in cli("--debug", "compare", partial)[1]
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert "Traceback" in cli("compare", partial)[1]


# ---- 7. leftovers ------------------------------------------------------------------------

SLOW_PREPARE = """
import sys, time
import curricmusic.data.prepare as prepare_module
from curricmusic.config import curriculum_from_midi_dir

def slow(items):
    time.sleep(3600)  # killed long before
    return []

prepare_module._process_chunk = slow  # the forked workers inherit it
config = curriculum_from_midi_dir(sys.argv[1])
items = prepare_module._collect_items(config, 2, False)
list(prepare_module._process_all(items, config, 2, False))
"""


def test_7_pool_workers_die_with_a_killed_prepare(tmp_path):
    import psutil

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(40):  # three chunks: two workers busy
        (folder / f"t{i}.mid").write_bytes(melody_midi(i))
    parent = subprocess.Popen([sys.executable, "-c", SLOW_PREPARE, str(folder)])
    try:
        deadline = time.monotonic() + HANG_S
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = psutil.Process(parent.pid).children()
        assert len(workers) >= 2, "the pool did not start"
        time.sleep(1.0)  # let the workers reach their task
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=HANG_S)
        deadline = time.monotonic() + 120  # the kernel kills them at once; the watcher within a second

        def alive(process) -> bool:
            try:
                return process.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        while time.monotonic() < deadline and any(alive(w) for w in workers):
            time.sleep(0.2)
        left = [w.pid for w in workers if alive(w)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert left == [], "orphaned workers kept running"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_7_stale_build_folders_are_removed_by_the_next_prepare(tmp_path, midi_folder):
    config = CurriculumConfig.model_validate(
        {"name": "tunes", "stages": [{"name": "tunes", "source": "midi_dir", "path": midi_folder}]}
    )
    stale, fresh = tmp_path / ".prep.build-old1", tmp_path / ".prep.build-new1"
    for folder in (stale, fresh):
        (folder / "stages").mkdir(parents=True)
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    prepare(config, tmp_path / "prep", show_progress=False)
    assert not stale.exists() and fresh.exists()  # a build of today may be running elsewhere


def test_7_generate_again_replaces_its_own_earlier_samples_only(trained, tmp_path):
    from curricmusic.generation.generate import generate_samples

    out = tmp_path / "samples"
    settings = GenerationSettings(n=3, max_tokens=24, copy_blocking=False)
    generate_samples(trained, out, settings, show_progress=False)
    (out / "my_notes.txt").write_text("keep me")
    manifest = generate_samples(trained, out, settings.model_copy(update={"n": 1}), show_progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "manifest.json", "my_notes.txt", "sample_000.mid"])
    assert [row["file"] for row in manifest["samples"]] == ["sample_000.mid"]
    (out / "sample_001.mid").write_bytes(melody_midi(3))  # not ours: never overwritten
    with pytest.raises(UserError, match="sample_001.mid"):
        generate_samples(trained, out, settings, show_progress=False)
    assert (out / "sample_001.mid").read_bytes() == melody_midi(3)


# ---- 8. integrity ------------------------------------------------------------------------


def flip_a_weight_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + 10] ^= 0x10  # inside the first tensor's values
    path.write_bytes(bytes(data))


def test_8_a_bit_flipped_model_is_one_clear_error(trained, tmp_path, cli):
    from curricmusic.model.transformer import load_model

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    flip_a_weight_bit(run_dir / "model" / "model.safetensors")
    with pytest.raises(UserError, match="model.safetensors: damaged"):
        load_model(run_dir / "model")
    status, err = cli("generate", run_dir, "--n", "1", "--out", tmp_path / "samples")
    one_line_error(status, err, 2, "damaged")


def test_8_a_bit_flipped_checkpoint_is_one_clear_error(trained, tmp_path):
    from curricmusic.training.checkpoint import load_checkpoint

    data = bytearray((trained / "checkpoint.pt").read_bytes())
    at = data.find(b"data/0") + 200  # inside the first tensor's bytes
    data[at] ^= 0x01
    (tmp_path / "checkpoint.pt").write_bytes(bytes(data))
    with pytest.raises(UserError, match="checkpoint.pt: (damaged|unreadable)"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_8_the_weights_hash_is_the_same_whatever_the_file_metadata_order(trained, tmp_path):
    from curricmusic.generation.generate import load_run

    other = tmp_path / "run"
    shutil.copytree(trained, other)
    weights = other / "model" / "model.safetensors"
    data = weights.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))  # as another process may write it
    text = json.dumps(header, separators=(",", ":")).encode().ljust(size)
    weights.write_bytes(data[:8] + text + data[8 + size :])
    assert weights.read_bytes() != (trained / "model" / "model.safetensors").read_bytes()
    assert load_run(other, "cpu").checkpoint_sha256 == load_run(trained, "cpu").checkpoint_sha256


def test_8_novelty_skips_a_zero_tempo_file_as_prepare_does(tmp_path):
    from curricmusic.novelty.embed import embed_midi_files
    from curricmusic.novelty.embedders import SymbolicEmbedder

    good, zero = tmp_path / "good.mid", tmp_path / "zero.mid"
    good.write_bytes(melody_midi(0))
    zero.write_bytes(broken_midis()["zero_tempo.midi"][0])
    embeddings, skipped = embed_midi_files([good, zero], SymbolicEmbedder.from_spec(None), use_cache=False, progress=False)
    assert embeddings.shape[0] == 1
    assert [(Path(s["path"]).name, "tempo" in s["reason"]) for s in skipped] == [("zero.mid", True)]


# ---- 9. links ----------------------------------------------------------------------------


def test_9_links_are_quoted_relative_paths_that_cannot_be_a_scheme(tmp_path):
    from curricmusic.reporting.novelty_page import novelty_html

    names = ["javascript:alert(1).mid", "a#b.mid", "100%.mid", "it's <b>.mid"]
    sample = {
        "nearest": {"id": "x"}, "cosine": 0.5, "rho": 1.0, "penalty": 0.0,
        "copied_span": {"notes": 0, "bars": 0.0, "piece_id": None}, "hit_rates": {"4": 0.0},
        "flagged": False, "flag_reasons": [],
    }  # fmt: skip
    report = {
        "samples_dir": str(tmp_path), "against": "run", "embedder": {"spec": "symbolic", "weights_real": False},
        "settings": {"rho_threshold": 0.5, "max_copied_bars": 4},
        "bank": {"n_train": 1, "stages": ["s"], "n_heldout": 1},
        "summary": {"n": 4, "n_flagged": 0, "copy_rate": 0.0},
        "samples": [{**sample, "file": name} for name in names],
    }  # fmt: skip
    page = novelty_html(report, tmp_path, tmp_path / "novelty")
    hrefs = [part.split('"', 1)[0] for part in page.split('href="')[1:]]
    assert hrefs == ["../javascript%3Aalert%281%29.mid", "../a%23b.mid", "../100%25.mid", "../it%27s%20%3Cb%3E.mid"]
    page = novelty_html(report, tmp_path, tmp_path)  # the page beside the samples
    assert 'href="./javascript%3Aalert%281%29.mid"' in page
    assert "href='javascript" not in page and 'href="javascript' not in page


# ---- 10. install text --------------------------------------------------------------------


def test_10_the_install_text_says_which_build_each_torch_spec_brings():
    makefile = (REPO / "Makefile").read_text()
    readme = (REPO / "README.md").read_text()
    install = (REPO / "docs" / "getting-started.md").read_text()
    guarantees = (REPO / "docs" / "reference" / "guarantees.md").read_text()
    comment = [line for line in makefile.splitlines() if line.startswith("#") and "TORCH" in line.upper()]
    assert not any("The CPU build of PyTorch" in line for line in comment)
    for text in (makefile, readme, install):
        assert "https://download.pytorch.org/whl/cpu" in text
        assert "CUDA" in text
    assert "docs/reference/guarantees.md" in readme and DEBUG_ENV in guarantees
