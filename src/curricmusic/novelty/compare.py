"""``curricmusic compare``: the figures of several novelty reports side by side.

Each sample set is named by what it is, read from the files beside its report: the arm and seed
of the run it was drawn from and whether copy-blocking was on (the samples' ``manifest.json``),
and what it was scored against (the run or prepared folder, the bank's stages). Sets whose sample
files are byte for byte the same are marked: comparing them says nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from curricmusic.common.atomic import write_json, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, writing_folder
from curricmusic.common.numbers import fmt, sig
from curricmusic.common.readback import DamagedFile, read_json
from curricmusic.common.run_folder import is_run_folder
from curricmusic.novelty.pipeline import NOVELTY_SCHEMA

__all__ = ["load_report", "compare_reports", "describe_set", "set_digest", "mark_identical"]


def load_report(path: Path) -> dict:
    """A novelty.json, given as the file or a folder holding it."""
    path = Path(path)
    file = path / "novelty.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{path}: no novelty.json (run `curricmusic novelty` first)")
    hint = "not a novelty report written by `curricmusic novelty`? (score the samples again)"
    try:
        report = read_json(file, NOVELTY_SCHEMA, hint=hint)
    except DamagedFile as exc:
        raise DamagedFile(str(exc).replace(": damaged (", ": damaged or not a novelty report (", 1)) from None
    assert report is not None
    summary = report["summary"]
    for key in ("n", "copy_rate"):
        if key not in summary:
            raise UserError(f"{file}: not a novelty report (summary has no {key!r})")
    if not all(isinstance(s, dict) and "rho" in s for s in report["samples"]):
        raise UserError(f"{file}: not a novelty report (every sample needs a 'rho')")
    return report


def _read_optional_json(path: Path) -> dict[str, Any]:
    """A JSON object beside a report that helps name it; ``{}`` when absent or unreadable (a
    label is then taken from the folder names)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def set_digest(samples_dir: Path, report: dict[str, Any]) -> str:
    """A digest of the sample set: the bytes of every sample file the report scored (in name
    order), or, where the files are gone, the report's per-sample scores."""
    digest = hashlib.sha256()
    names = sorted(Path(str(s.get("file", ""))).name for s in report["samples"])
    files = [samples_dir / name for name in names if name]
    if files and all(f.is_file() for f in files):
        for file in files:
            digest.update(file.name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).digest())
        return "files:" + digest.hexdigest()[:16]
    scores = [{k: s.get(k) for k in ("file", "rho", "copied_span", "hit_rates")} for s in report["samples"]]
    digest.update(json.dumps(scores, sort_keys=True).encode())
    return "scores:" + digest.hexdigest()[:16]


def _against(report: dict[str, Any]) -> str:
    """What the set was scored against, in words: the run or prepared folder, and the bank."""
    against = Path(str(report.get("against", "?")))
    if is_run_folder(against):
        where = f"run {against.name}"
    elif (against / "manifest.json").is_file():
        where = f"prepared data {against.name}"
    else:
        where = str(against.name or against)
    bank = report.get("bank") or {}
    stages = ", ".join(bank.get("stages") or [])
    if stages:
        where += f" (bank: {bank.get('n_train', '?')} training pieces of {stages})"
    return where


def describe_set(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Who a sample set is: ``arm``, ``seed``, ``copy_blocking`` (True, False or None when the
    samples' manifest does not say), ``against`` (in words), ``samples_dir``, ``page`` (its
    novelty.html or None), ``digest``, ``same_as_blocked`` (the runner's note) and a ``label``."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    samples_dir = Path(str(report.get("samples_dir") or folder.parent))
    manifest = _read_optional_json(samples_dir / "manifest.json")
    recorded = manifest.get("settings")
    settings: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    blocking = settings.get("copy_blocking") if isinstance(settings.get("copy_blocking"), bool) else None
    arm, seed = manifest.get("arm"), manifest.get("run_seed", manifest.get("seed"))
    page = folder / "novelty.html"
    parts = [str(arm)] if arm else [samples_dir.name or str(samples_dir)]
    if seed is not None:
        parts.append(f"seed {seed}")
    if blocking is not None:
        parts.append("copy-blocking on" if blocking else "copy-blocking off")
    return {
        "label": ", ".join(parts),
        "arm": arm,
        "seed": seed,
        "copy_blocking": blocking,
        "against": _against(report),
        "samples_dir": str(samples_dir),
        "page": str(page) if page.is_file() else None,
        "digest": set_digest(samples_dir, report),
        "same_as_blocked": manifest.get("same_as_blocked"),
    }


def mark_identical(sets: list[dict[str, Any]]) -> None:
    """Give each set ``identical_to``: the labels of the other sets with the same digest."""
    for one in sets:
        one["identical_to"] = [other["label"] for other in sets if other is not one and other["digest"] == one["digest"]]


def _unique_labels(sets: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for one in sets:
        label = one["label"]
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            one["label"] = f"{label} ({seen[label]})"


def compare_reports(paths: list[Path], out_dir: Path) -> Table:
    """Write ``compare.json`` and ``compare.html``; return a rich table of the figures."""
    from curricmusic.reporting.compare_page import compare_html

    if len(paths) < 1:
        raise UserError("compare needs at least one novelty report")
    check_folder(out_dir, kind="compare")
    reports = [load_report(path) for path in paths]
    sets = [describe_set(path, report) for path, report in zip(paths, reports, strict=True)]
    _unique_labels(sets)
    mark_identical(sets)
    with writing_folder(out_dir, "compare"):  # only once every report is known to be good
        write_json(
            out_dir / "compare.json",
            {one["label"]: r["summary"] | {"embedder": r["embedder"], "set": one} for one, r in zip(sets, reports, strict=True)},
        )
        write_text(out_dir / "compare.html", compare_html(sets, reports, out_dir))
    return _table(sets, reports)


def _table(sets: list[dict[str, Any]], reports: list[dict[str, Any]]) -> Table:
    table = Table(title="novelty, side by side")
    table.add_column("figure")
    for one in sets:
        table.add_column(one["label"], justify="right")
    table.add_row("scored against", *(one["against"] for one in sets))
    rows = (("samples", "n", str), ("copy rate", "copy_rate", fmt), ("median rho", "rho_median", sig),
            ("C_T", "data_copying_C_T", sig), ("longest copied notes", "longest_copied_notes_max", str))  # fmt: skip
    for label, key, show in rows:
        values = [r["summary"].get(key) for r in reports]
        table.add_row(label, *("-" if v is None else show(v) for v in values))
    table.add_row("embedder", *(f"{r['embedder'].get('spec')}{'' if r['embedder'].get('weights_real') else ' (no learned weights)'}" for r in reports))
    if any(one["identical_to"] for one in sets):
        table.add_row("identical samples", *(", ".join(one["identical_to"]) or "-" for one in sets))
    return table
