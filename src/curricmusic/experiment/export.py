"""``curricmusic export RUN_DIR --out DIR``: a trained run as a folder anyone's tools can load.

The folder (every file safetensors or JSON or text; nothing pickled)::

    DIR/config.json              GPT-NeoX config: AutoModelForCausalLM.from_pretrained(DIR)
    DIR/model.safetensors        the weights in GPT-NeoX layout, with the run's content hash
    DIR/generation_config.json   the run's [generate] defaults, as transformers' generate reads them
    DIR/tokenizer.json           the MidiTok tokenizer (its save_pretrained): miditok.REMI.from_pretrained(DIR)
    DIR/README.md                the model card (Hub format, YAML metadata first)
    DIR/curricmusic.json         what curricmusic needs back: the run's provenance, its [generate]
                                 section and tokenizer settings, the weights' content hash

The folder is built beside ``DIR`` and renamed into place, so it is either the old one or the
whole new one; only a new or empty folder, or an earlier export holding nothing else, is
replaced. Before the rename the export is read back and its weights' content hash compared
with the run's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import curricmusic
from curricmusic.common.atomic import write_json, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_replaceable, remove_stale, umask_mode
from curricmusic.common.run_folder import RUN_FILE, read_run
from curricmusic.config.generation import GenerationSettings
from curricmusic.config.run_settings import settings_for_run
from curricmusic.experiment.export_facts import run_facts
from curricmusic.generation.run import EXPORT_FILE, EXPORT_FORMAT, LoadedRun, load_run
from curricmusic.model.hf_folder import HF_CONFIG, HF_WEIGHTS, load_hf_model, save_hf_model
from curricmusic.model.transformer import weights_digest
from curricmusic.music.shared_tokenizer import MIDITOK_FILE, save_folder_tokenizer
from curricmusic.music.tokenizers import special_ids
from curricmusic.reporting.model_card import CARD_FILE, model_card

__all__ = ["GENERATION_CONFIG", "EXPORT_ENTRIES", "generation_config", "export_run"]

GENERATION_CONFIG = "generation_config.json"
EXPORT_ENTRIES = (HF_CONFIG, HF_WEIGHTS, GENERATION_CONFIG, MIDITOK_FILE, CARD_FILE, EXPORT_FILE)


def generation_config(settings: GenerationSettings, specials: dict[str, int]) -> dict[str, Any]:
    """transformers' ``generation_config.json`` for the run's sampling defaults.

    Temperature, top-k (0: off, as in curricmusic; transformers' own default would be 50),
    top-p, min-p and the token budget carry over. The grammar mask, key prior, pitch range and
    copy-blocking are curricmusic's own and have no transformers equivalent (the model card says
    so); ``curricmusic generate DIR`` applies them.
    """
    return {
        "bos_token_id": specials["BOS"],
        "eos_token_id": specials["EOS"],
        "pad_token_id": specials["PAD"],
        "do_sample": True,
        "temperature": settings.temperature,
        "top_k": settings.top_k,
        "top_p": settings.top_p,
        "min_p": settings.min_p or None,
        "max_new_tokens": settings.max_tokens,
    }


def _check_out(run_dir: Path, out_dir: Path) -> None:
    run, out = run_dir.resolve(), out_dir.resolve()
    if out == run or out in run.parents or run in out.parents:
        raise UserError(f"{out_dir}: --out overlaps the run folder {run_dir}; choose a folder outside it")
    check_replaceable(out_dir, "export", EXPORT_ENTRIES)


def _record(info: dict[str, Any], run: LoadedRun, settings: GenerationSettings, digest: str, facts: dict[str, Any]) -> dict[str, Any]:
    """``curricmusic.json``: what ``curricmusic generate DIR`` and ``init_from`` read back."""
    return {
        "made_by": "curricmusic",
        "format": EXPORT_FORMAT,
        "curricmusic_version": curricmusic.__version__,
        "weights_sha256": digest,
        "model": run.model.config.to_dict(),
        "tokenizer": {"kind": type(run.tokenizer).__name__, "hash": info.get("tokenizer_hash"), "vocab_size": len(run.tokenizer)},
        "generate": settings.model_dump(mode="json", exclude={"prompt"}),
        "run": {
            "experiment": info.get("experiment"),
            "experiment_hash": info.get("experiment_hash"),
            "arm": (info.get("arm") or {}).get("name"),
            "seed": info.get("seed"),
            "status": info.get("status"),
            "init_sha256": info.get("init_sha256"),
            "init_from": info.get("init_from"),
        },
        "facts": facts,
    }


def export_run(run_dir: str | Path, out_dir: str | Path, *, license: str | None = None) -> Path:
    """Write the shareable folder of ``run_dir`` into ``out_dir`` (see the module doc)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir}: not a run folder (no {RUN_FILE}); export a folder written by `curricmusic train`")
    _check_out(run_dir, out_dir)
    info = read_run(run_dir)
    run = load_run(run_dir, device="cpu")  # checks the weights' content hash and the tokenizer's size
    settings, _ = settings_for_run(info, {}, source=str(run_dir / RUN_FILE))
    facts = run_facts(run_dir, info, run.model, run.tokenizer, run.checkpoint_sha256, settings, license)
    facts["where"] = out_dir.name  # how the card's snippets name the folder
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out_dir.parent, f".{out_dir.name}.build-*")  # left by a killed export
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    try:
        os.chmod(build, umask_mode(0o777))
        specials = special_ids(run.tokenizer)
        digest = save_hf_model(run.model, build, specials)
        save_folder_tokenizer(run.tokenizer, build)
        write_json(build / GENERATION_CONFIG, generation_config(settings, specials))
        write_json(build / EXPORT_FILE, _record(info, run, settings, digest, facts))
        write_text(build / CARD_FILE, model_card(facts))
        if weights_digest(load_hf_model(build)) != run.checkpoint_sha256:  # read back before it replaces anything
            raise RuntimeError("the exported weights do not read back as the run's weights")
        _check_out(run_dir, out_dir)  # again: files may have appeared meanwhile
        _swap_into_place(build, out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    return out_dir


def _swap_into_place(build: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` (missing, empty, or an earlier export) by ``build`` with renames."""
    if not out_dir.exists():
        os.replace(build, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.rmdir(old)
    os.replace(out_dir, old)
    os.replace(build, out_dir)
    shutil.rmtree(old, ignore_errors=True)
