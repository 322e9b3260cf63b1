"""``curricmusic compare``: the figures of several novelty reports side by side."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from curricmusic.common.atomic import write_json, write_text
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, writing_folder
from curricmusic.common.readback import DamagedFile, read_json
from curricmusic.novelty.pipeline import NOVELTY_SCHEMA

__all__ = ["load_report", "compare_reports"]


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


def _name(path: Path, taken: set[str]) -> str:
    """A short label: the samples folder's name (made unique)."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    parts = [p for p in folder.parts if p not in ("novelty",)]
    name = "/".join(parts[-2:]) if parts else str(path)
    while name in taken:
        name += "'"
    return name


def compare_reports(paths: list[Path], out_dir: Path) -> Table:
    """Write ``compare.json`` and ``compare.html``; return a rich table of the figures."""
    from curricmusic.reporting.novelty_page import compare_html

    if len(paths) < 1:
        raise UserError("compare needs at least one novelty report")
    check_folder(out_dir, kind="compare")
    reports: dict[str, dict] = {}
    for path in paths:
        reports[_name(path, set(reports))] = load_report(path)
    with writing_folder(out_dir, "compare"):  # only once every report is known to be good
        write_json(out_dir / "compare.json", {name: r["summary"] | {"embedder": r["embedder"]} for name, r in reports.items()})
        write_text(out_dir / "compare.html", compare_html(reports))
    table = Table(title="novelty, side by side")
    table.add_column("figure")
    for name in reports:
        table.add_column(name, justify="right")
    for label, key in (("samples", "n"), ("copy rate", "copy_rate"), ("median rho", "rho_median"), ("C_T", "data_copying_C_T"), ("longest copied notes", "longest_copied_notes_max")):
        values = [r["summary"].get(key) for r in reports.values()]
        table.add_row(label, *("-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)) for v in values))
    table.add_row("embedder", *(f"{r['embedder'].get('spec')}{'' if r['embedder'].get('weights_real') else ' (no real weights)'}" for r in reports.values()))
    return table
