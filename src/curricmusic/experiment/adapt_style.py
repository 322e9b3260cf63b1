"""What a new style of the adaptation phase is, and how far it is from pretraining: its pieces per
split, and how many of them a pretraining stage holds exactly (same notes) or as the same *tune*
(the top line's interval 5-grams linked at the tune threshold, :func:`curricmusic.data.tunes.tune_links`:
in any key and rhythm, as the splits group tunes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curricmusic.config import Experiment

if TYPE_CHECKING:  # annotations only
    from curricmusic.data.prepared import PreparedData

__all__ = ["style_info"]

_SPLITS = ("train", "val", "test")


def _pretraining_roots(out_dir: Path, style_root: str) -> list[str]:
    """The prepared folders the experiment's pretraining runs read (from their run.json)."""
    roots = {json.loads(f.read_text()).get("prepared") for f in sorted((out_dir / "runs").glob("*/run.json"))}
    return sorted(r for r in roots if r and r != style_root and Path(r).is_dir())


def _tune_links(data: PreparedData, stage: str, others: list[PreparedData]) -> dict[str, int]:
    """Per pretraining stage, how many of the style's pieces share a tune with one of its pieces."""
    from curricmusic.data.tunes import LINK_THRESHOLD, tune_fingerprint, tune_links

    mine = [tune_fingerprint(n) for split in _SPLITS if data.pieces(stage, split) for n in data.piece_notes(stage, split)]
    out: dict[str, int] = {}
    for other in others:
        threshold = float((other.manifest.get("curriculum") or {}).get("split", {}).get("tune_threshold", LINK_THRESHOLD))
        for name in other.stage_names:
            theirs = [tune_fingerprint(n) for sp in _SPLITS if other.pieces(name, sp) for n in other.piece_notes(name, sp)]
            out[name] = out.get(name, 0) + int((tune_links(mine, theirs, threshold) >= 0).sum())
    return out


def style_info(experiment: Experiment, out_dir: Path, name: str, infos: list[dict[str, Any]]) -> dict[str, Any]:
    """The new style ``name``: its settings, pieces per split (from its prepared manifest, read
    where a finished run says it was prepared), its exact duplicates in pretraining and its
    pieces that share a tune with a pretraining stage's (per stage)."""
    from curricmusic.data.prepared import PreparedData

    adapt = experiment.config.adapt
    assert adapt is not None
    style = adapt.style_named(name)
    info: dict[str, Any] = {"stage": name, "config": style.model_dump(mode="json")}
    prepared = next((i["prepared"] for i in infos if Path(i.get("prepared", "")).is_dir()), None)
    if prepared is None:
        return info
    data = PreparedData.open(prepared)
    info["n_pieces"] = {split: len(data.pieces(name, split)) for split in _SPLITS}
    info["n_tune_groups"] = data.stage(name).get("n_tune_groups")
    hashes = {p["content_hash"] for split in _SPLITS for p in data.pieces(name, split)}
    others = [PreparedData.open(root) for root in _pretraining_roots(out_dir, prepared)]
    pretraining = {p["content_hash"] for o in others for s in o.stage_names for sp in _SPLITS for p in o.pieces(s, sp)}
    info["n_exact_duplicates_of_pretraining"] = len(hashes & pretraining)
    info["tune_links_to_pretraining"] = _tune_links(data, name, others)
    return info
