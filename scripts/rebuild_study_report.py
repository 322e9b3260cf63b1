"""Write a committed study's report.md and figures again from its results.json.

    python scripts/rebuild_study_report.py studies/learning_order

A study folder keeps what its experiment folder's ``curricmusic report`` wrote, without the runs
(checkpoints and samples stay out of the repository). ``curricmusic report`` needs the runs, so a
study is rebuilt from its ``results.json`` alone: every number recomputes from it, and
results.json itself is left as it is. report.html is not kept (its "Listen" section would link to
samples the study does not hold); report.md links the PNG files in ``figures/``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from curricmusic.reporting.report import FIGURES_DIR, write_reports


def rebuild(study: Path) -> Path:
    results = json.loads((study / "results.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        md, _ = write_reports(results, tmp)
        figures = study / FIGURES_DIR
        figures.mkdir(exist_ok=True)
        drawn = {png.name for png in (Path(tmp) / FIGURES_DIR).glob("*.png")}
        for old in figures.glob("*.png"):  # a figure the report now replaces by a sentence goes
            if old.name not in drawn:
                old.unlink()
        for name in sorted(drawn):
            shutil.copyfile(Path(tmp) / FIGURES_DIR / name, figures / name)
        shutil.copyfile(md, study / "report.md")
    return study / "report.md"


if __name__ == "__main__":
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "results.json").is_file():
        sys.exit("usage: python scripts/rebuild_study_report.py STUDY_DIR  (a folder holding results.json)")
    print(rebuild(Path(sys.argv[1])))
