"""Mastery of the basics over seeds: per arm and basics stage, whether each run mastered the stage
(its criterion held) or spent its cap, after how many tokens, and the key share there.

Read from each run's ``run.json`` (``schedule``: the pacing's record, one event per finished
basics stage; ``stage_boundaries``: the run's tokens per stage where the stage being learned
changed), its evaluation curves (the key share measured at each evaluation) and, with ``[probe]
at_boundaries``, its ``probe.json`` (the expectation reader on the model saved at each boundary).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from curricmusic.evaluation.stats import mean_ci

__all__ = ["arm_mastery", "run_mastery"]


def _key_share_at(curves: dict[str, Any], stage: str, step: int) -> float:
    """The key share of ``stage`` measured at the last evaluation at or before ``step``."""
    values = (curves.get("key_share") or {}).get(stage)
    if not values:
        return math.nan
    steps = curves["eval_steps"]
    before = [i for i, s in enumerate(steps) if s <= step and values[i] is not None]
    return float(values[before[-1]]) if before else math.nan


def run_mastery(run: dict[str, Any], tokens_per_step: int) -> list[dict[str, Any]]:
    """One row per basics stage of a run with a mastery record (empty for other runs): the
    event, the tokens at its end (all, and the stage's own) and the key share there."""
    record = run.get("schedule") or {}
    boundaries = {b["step"]: b for b in run.get("stage_boundaries") or []}
    probes = {b.get("stage"): b for b in (run.get("boundary_probes") or [])}
    rows = []
    events = {e["stage"]: e for e in record.get("events", [])}
    for stage in record.get("basics", []):
        event = events.get(stage)
        if event is None:  # the run ended before the stage did
            rows.append({"stage": stage, "seed": run["seed"], "mastered": False, "cap_hit": False, "ended": False})
            continue
        step = int(event["end_step"])
        boundary = boundaries.get(step, {})
        probe = probes.get(stage, {})
        rows.append(
            {
                "stage": stage,
                "seed": run["seed"],
                "ended": True,
                "mastered": bool(event["mastered"]),
                "cap_hit": bool(event["cap_hit"]),
                "criterion": event["criterion"],
                "value": event.get("value"),
                "step": step,
                "tokens": step * tokens_per_step,
                "stage_tokens": (boundary.get("stage_tokens") or {}).get(stage, math.nan),
                "key_share": _key_share_at(run.get("curves") or {}, stage, step),
                "probe_key_share": probe.get("key_share", math.nan),
                "probe_key_accuracy": probe.get("key_accuracy", math.nan),
            }
        )
    return rows


def arm_mastery(done: Sequence[dict[str, Any]], tokens_per_step: int) -> dict[str, Any] | None:
    """Per basics stage over the arm's finished runs: how many mastered it, hit the cap or never
    finished it, and the tokens and key share at the boundary (mean and t-interval over the runs
    that finished it); None for an arm without mastery records."""
    records = [r for r in done if (r.get("schedule") or {}).get("basics")]
    if not records:
        return None
    first = records[0]["schedule"]
    rows = [row for r in records for row in run_mastery(r, tokens_per_step)]
    stages: dict[str, Any] = {}
    for stage in first["basics"]:
        mine = [row for row in rows if row["stage"] == stage]
        ended = [row for row in mine if row["ended"]]
        stages[stage] = {
            "n_runs": len(mine),
            "n_mastered": sum(row["mastered"] for row in mine),
            "n_cap_hit": sum(row["cap_hit"] for row in mine),
            "n_not_ended": len(mine) - len(ended),
            **{key: mean_ci([row[key] for row in ended]) for key in ("tokens", "stage_tokens", "value", "key_share", "probe_key_share")},
            "per_seed": mine,
        }
    return {"criteria": first["criteria"], "end": first["end"], "stages": stages}

