"""An experiment folder's own record: the configuration its runs were trained with, and the
reports rebuilt from its finished runs.

``run`` writes ``experiment.json`` (the config as validated, with absolute paths) before any
training. :func:`rebuild_reports` reads it back, so results.json and the reports of a folder can
be written again without its TOML, after ``curricmusic probe`` added ``probe.json`` files, or with
a newer curricmusic whose reports say more: nothing is trained, and cells that are not finished
are reported as they stand. Keys that a newer curricmusic added to the config take their defaults.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pydantic import ValidationError

from curricmusic.common.errors import UserError
from curricmusic.common.frozen import format_validation_error
from curricmusic.common.lock import folder_lock
from curricmusic.common.readback import read_json
from curricmusic.config import Experiment, ExperimentConfig, experiment_from_config
from curricmusic.experiment.runner import RECORD_SCHEMA, cells_of

__all__ = ["RECORD_FILE", "load_recorded", "rebuild_reports"]

RECORD_FILE = "experiment.json"


def load_recorded(out_dir: Path) -> Experiment:
    """The experiment an experiment folder was run with (one-line error when it holds none)."""
    record = out_dir / RECORD_FILE
    if not out_dir.is_dir():
        raise UserError(f"{out_dir}: no such folder")
    if not record.is_file():
        raise UserError(f"{out_dir}: not an experiment folder (no {RECORD_FILE}; `curricmusic run` writes one)")
    snapshot = read_json(record, RECORD_SCHEMA, hint="the folder's record is lost: run the experiment again into a new --out")
    assert snapshot is not None
    data = snapshot["config"]
    try:  # JSON mode: the record holds paths as strings, as `run` wrote them
        config = ExperimentConfig.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, str(record))) from None
    experiment = experiment_from_config(config, str(record))  # messages name the record
    return dataclasses.replace(experiment, source=snapshot.get("source", str(record)))  # the TOML it came from


def rebuild_reports(out_dir: Path) -> dict:
    """Aggregate the folder's runs again and rewrite results.json, report.md and report.html."""
    from curricmusic.experiment.results import aggregate
    from curricmusic.reporting.report import write_reports

    experiment = load_recorded(out_dir)
    with folder_lock(out_dir, "folder"):  # not while `run` writes it
        cells = cells_of(experiment, out_dir)
        results = aggregate(experiment, out_dir, cells)
        write_reports(results, out_dir)
    return results
