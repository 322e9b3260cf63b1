"""The probe over seeds: per arm and task, trained and initial accuracy with intervals, and the gain.

``results.json`` holds, per arm, ``probe``: for each task the mean over seeds (t-interval) of the
trained model's accuracy, of its seed's initial weights' (the control), and of their paired
difference ``gain``, beside the majority-class rate (``chance``) and the bag-of-tokens reference;
for key and mode, ``expectation``: the same three for the probe of the predicted pitch classes,
beside ``heard`` (its ceiling) and ``neighbour`` (the key-blind control).
``curricmusic probe DIR`` prints the same table for an experiment folder, or one run's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curricmusic.common.errors import UserError
from curricmusic.common.readback import read_json
from curricmusic.common.run_folder import MODEL_DIR, RUN_FILE, is_run_folder
from curricmusic.evaluation.probe_run import PROBE_TASKS, probe_run, read_probe
from curricmusic.evaluation.stats import mean_ci

__all__ = ["arm_probe", "summarize_probes", "probe_folder", "probe_rows"]


def summarize_probes(probes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per task over the given runs' ``probe.json``: ``trained``, ``initial`` and ``gain`` as
    :func:`~curricmusic.evaluation.stats.mean_ci`, and ``chance``, ``bag_of_tokens``,
    ``n_pieces``, ``n_classes`` (the same pieces for every run of an experiment)."""
    if not probes:
        return {}
    tasks = {}
    for task in PROBE_TASKS:
        entries = [p["tasks"][task] for p in probes if task in p.get("tasks", {})]
        if not entries:
            continue
        first = entries[0]
        tasks[task] = {
            "n_pieces": first["n_pieces"],
            "n_classes": first["n_classes"],
            "chance": first["chance"],
            "bag_of_tokens": first.get("bag_of_tokens", math.nan),
            "trained": mean_ci([e["trained"] for e in entries]),
            "initial": mean_ci([e["initial"] for e in entries]),
            "gain": mean_ci([e["trained"] - e["initial"] for e in entries]),
        }
        expected = [e["expectation"] for e in entries if "expectation" in e]
        if expected:
            tasks[task]["expectation"] = {
                "heard": expected[0]["heard"],
                "neighbour": expected[0].get("neighbour", math.nan),
                "trained": mean_ci([e["trained"] for e in expected]),
                "initial": mean_ci([e["initial"] for e in expected]),
                "gain": mean_ci([e["trained"] - e["initial"] for e in expected]),
            }
            masses = [e["scale_mass"] for e in expected if "scale_mass" in e]
            if masses:
                tasks[task]["expectation"]["scale_mass"] = {
                    "heard": masses[0]["heard"],
                    "neighbour": masses[0]["neighbour"],
                    "trained": mean_ci([m["trained"] for m in masses]),
                    "initial": mean_ci([m["initial"] for m in masses]),
                }
        layers = [e["layers"] for e in entries if "layers" in e]
        if layers:
            tasks[task]["layers"] = {
                model: {layer: float(np.mean([entry[model][layer] for entry in layers])) for layer in layers[0][model]}
                for model in layers[0]
            }
    out = {"n_runs": len(probes), "pieces": probes[0].get("pieces", {}), "tasks": tasks}
    by_stage = [p["key_share_by_stage"] for p in probes if "key_share_by_stage" in p]
    if by_stage:  # the key share of each stage's held-out pieces, per model (trained, initial, heard)
        out["key_share_by_stage"] = {
            model: {stage: mean_ci([b[model].get(stage) for b in by_stage]) for stage in by_stage[0][model]}
            for model in by_stage[0]
        }
    return out


def arm_probe(done: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """The probe of an arm's finished runs (``probe.json`` in each run folder; none: empty)."""
    probes = [p for p in (read_probe(out_dir / r["run_dir"]) for r in done) if p is not None]
    return summarize_probes(probes)


def _run_dirs(folder: Path) -> list[Path]:
    if is_run_folder(folder):
        return [folder]
    runs = sorted(p.parent for p in (folder / "runs").glob(f"*/{RUN_FILE}"))
    if not runs:
        raise UserError(f"{folder}: neither a run folder (run.json) nor an experiment folder (runs/*/run.json)")
    return runs


def _stale(probe: dict, layers: bool) -> bool:
    """Whether a stored ``probe.json`` lacks what is asked: every layer, or the expectation
    probe (written before it existed)."""
    tasks = probe.get("tasks", {}).values()
    return (layers and not any("layers" in t for t in tasks)) or not any("expectation" in t for t in tasks)


def probe_folder(folder: str | Path, *, layers: bool = False, force: bool = False, show_progress: bool = True) -> dict[str, dict]:
    """Probe every finished run under ``folder`` (a run folder or an experiment folder) that has
    no ``probe.json`` yet (all with ``force``); returns the summary per arm (per arm and learning
    rate when an arm swept several)."""
    from curricmusic.common.lock import folder_lock
    from curricmusic.common.progress import progress_bar

    folder = Path(folder)
    runs = _run_dirs(folder)
    hint = "`curricmusic train --resume` writes it again"
    infos = {run: read_json(run / RUN_FILE, {"status": str}, hint=hint) or {} for run in runs}  # only the status here
    finished = [run for run in runs if infos[run].get("status") == "finished" and (run / MODEL_DIR).is_dir()]
    if not finished:
        raise UserError(f"{folder}: no finished run to probe (run.json status 'finished' and a model/ folder)")
    probes: dict[Path, dict] = {}
    with progress_bar("Probing runs", len(finished), show_progress) as update:
        for run in finished:
            existing = None if force else read_probe(run)
            if existing is None or _stale(existing, layers):
                with folder_lock(run, "run folder"):  # not while `train` or `run` writes it
                    existing = probe_run(run, layers=layers)
            probes[run] = existing
            update()
    rates: dict[str, set] = {}
    for run in finished:
        rates.setdefault(infos[run]["arm"]["name"], set()).add(infos[run].get("lr"))
    groups: dict[str, list[dict]] = {}
    for run in finished:
        name = infos[run]["arm"]["name"]
        if len(rates[name]) > 1:
            name = f"{name} (lr {infos[run].get('lr'):g})"
        groups.setdefault(name, []).append(probes[run])
    return {name: summarize_probes(group) for name, group in groups.items()}


def probe_rows(summaries: dict[str, dict], reader: str = "hidden") -> list[dict[str, Any]]:
    """One row per (arm, task) for tables: seeds, chance, and the reader's initial, trained, gain;
    ``hidden`` (pooled hidden states, with the bag of tokens) or ``expectation`` (predicted pitch
    classes, with ``heard``; only the tasks it answers)."""
    if reader not in ("hidden", "expectation"):
        raise ValueError(f"reader must be 'hidden' or 'expectation', got {reader!r}")
    rows = []
    for arm, summary in summaries.items():
        for task, entry in summary.get("tasks", {}).items():
            base = {
                "arm": arm,
                "task": task,
                "n": summary["n_runs"],
                "n_classes": entry["n_classes"],
                "chance": entry["chance"],
            }
            if reader == "hidden":
                rows.append({**entry, **base})
            elif "expectation" in entry:
                rows.append({**base, **entry["expectation"]})
    return rows
