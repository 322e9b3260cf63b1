"""Every number FINDINGS.md cites, recomputed from the committed ``results.json`` (and
``timing.json`` for the wall time), in the order FINDINGS.md uses them.

    python studies/mastery/recompute.py [STUDY_DIR]
    python studies/mastery/recompute.py --timing RUN_FOLDER RESUMED_AT > studies/mastery/timing.json
    python studies/mastery/recompute.py --timing RUN_FOLDER RUN_LOG > studies/mastery_v2/timing.json

The second form reads the study's own run folder (not committed: checkpoints) for the wall time:
each cell from its folder's mark (written when the cell starts) to its ``cell.json`` (written when
it ends), a cell that a stop interrupted counted from ``RESUMED_AT`` (``HH:MM:SS``, the resume's
start, same day), and the median training throughput that ``metrics.jsonl`` logged.

Means are over seeds; intervals are 95% t-intervals unless a line says otherwise; paired
differences use :func:`curricmusic.evaluation.stats.paired_effect`, as the report does.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from curricmusic.evaluation.stats import paired_effect

STAGES = ("scales", "hanon", "etudes", "chorales")


def _ci(stat: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean [low, high] (n)`` of a summary entry of results.json; the values when too few."""
    if not stat or stat.get("mean") is None:
        return "-"
    mean = f"{stat['mean']:.{digits}f}"
    if stat.get("ci_low") is not None:
        return f"{mean} [{stat['ci_low']:.{digits}f}, {stat['ci_high']:.{digits}f}] (n={stat['n']})"
    return f"{mean} (values {', '.join(f'{v:.{digits}f}' for v in stat.get('values', []))})"


def _effect(treatment: list[float], control: list[float], digits: int = 3) -> str:
    effect = paired_effect(treatment, control)
    if effect["n_pairs"] == 0:
        return "-"
    text = f"{effect['diff']:+.{digits}f}"
    if _finite(effect.get("diff_ci_low")):
        text += f" [{effect['diff_ci_low']:+.{digits}f}, {effect['diff_ci_high']:+.{digits}f}]"
    if _finite(effect.get("p_value")):
        text += f", p {effect['p_value']:.2g}"
    return text + f" (n={effect['n_pairs']})"


def _sides(row: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The (arm, control) values of a comparison row's seed pairs."""
    return [pair[0] for pair in row["pairs"]], [pair[1] for pair in row["pairs"]]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _done(results: dict[str, Any], arm: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in results["runs"] if r["arm"] == arm and r["status"] == "done"),
        key=lambda r: r["seed"],
    )


def mastery(results: dict[str, Any]) -> None:
    print(
        "## Mastery of the basics (criterion at the stage's end; key share on held-out pieces there)"
    )
    for arm, entry in results["arms"].items():
        stages = (entry.get("mastery") or {}).get("stages") or {}
        for stage, s in stages.items():
            print(
                f"- {arm} / {stage}: mastered {s['n_mastered']}/{s['n_runs']}, cap hit {s['n_cap_hit']}; "
                f"stage tokens {_ci(s['stage_tokens'], 0)}; criterion value {_ci(s['value'])}; "
                f"key share (evaluation subset) {_ci(s['key_share'])}; key share (probe, every held-out piece) "
                f"{_ci(s['probe_key_share'])}"
            )


def forgetting(results: dict[str, Any]) -> None:
    """The scales' key share at the scales' boundary against the end of pretraining, paired by
    seed, on the in-training evaluation subset (the same pieces at both points)."""
    print(
        "\n## Forgetting the scales: key share on held-out scale pieces (evaluation subset), boundary -> end"
    )
    for arm in results["arms"]:
        at, end, loss_at, loss_end = [], [], [], []
        for run in _done(results, arm):
            boundary = next(
                (b for b in run.get("stage_boundaries") or [] if b["from"] == "scales"), None
            )
            shares = (run["curves"].get("key_share") or {}).get("scales")
            losses = (run["curves"].get("val") or {}).get("scales")
            if boundary is None or not shares:
                continue
            steps = run["curves"]["eval_steps"]
            i = max(
                k for k, step in enumerate(steps) if step <= boundary["step"]
            )  # the last evaluation in the stage
            at.append(shares[i])
            end.append(shares[-1])
            loss_at.append(losses[i])
            loss_end.append(losses[-1])
        if at:
            print(
                f"- {arm}: key share {sum(at) / len(at):.3f} -> {sum(end) / len(end):.3f}, end minus boundary "
                f"{_effect(end, at)}; scales validation loss {sum(loss_at) / len(loss_at):.3f} -> "
                f"{sum(loss_end) / len(loss_end):.3f}, {_effect(loss_end, loss_at)}"
            )
    print(
        "\n## Key share by stage at the end of pretraining (probe: every held-out piece, validation + test)"
    )
    for arm, entry in results["arms"].items():
        trained = ((entry.get("probe") or {}).get("key_share_by_stage") or {}).get("trained") or {}
        print(
            f"- {arm}: " + "; ".join(f"{s} {_ci(trained.get(s))}" for s in STAGES if s in trained)
        )


def pretraining(results: dict[str, Any]) -> None:
    print(f"\n## Pretraining: test loss on {results['target_stage']} (every held-out token)")
    for arm, entry in results["arms"].items():
        print(f"- {arm}: {_ci(entry['summary'].get('test_target'))}")
    for row in results.get("comparisons") or []:
        if row["metric"] == "test_target" and row.get("pairs"):
            print(f"- {row['arm']} minus {row['baseline']}: {_effect(*_sides(row))}")
    print("\n## Distance to the new styles at the end of pretraining (zero-shot validation loss)")
    for arm in results["arms"]:
        runs = _done(results, arm)
        styles = sorted({s for r in runs for s in r.get("final_style_loss") or {}})
        parts = []
        for style in styles:
            values = [
                r["final_style_loss"][style]
                for r in runs
                if style in (r.get("final_style_loss") or {})
            ]
            parts.append(f"{style} {sum(values) / len(values):.3f} (n={len(values)})")
        print(f"- {arm}: " + "; ".join(parts))
    for arm in results["arms"]:
        if arm == "random-matched" or "random-matched" not in results["arms"]:
            continue
        mine = {r["seed"]: r.get("final_style_loss") or {} for r in _done(results, arm)}
        theirs = {
            r["seed"]: r.get("final_style_loss") or {} for r in _done(results, "random-matched")
        }
        seeds = sorted(set(mine) & set(theirs))
        for style in sorted({s for losses in mine.values() for s in losses}):
            effect = _effect([mine[k][style] for k in seeds], [theirs[k][style] for k in seeds])
            print(f"- {arm} minus random-matched, {style}: {effect}")


def pilots(study: Path) -> None:
    """Where each basics stage of the pilots (``pilots/*``) ended, and why: from a pilot's
    ``results.json``, or from the ``run.json`` of each of its runs when it was stopped before its
    results were aggregated."""
    for run_file in sorted((study / "pilots").glob("*/*/run.json")):
        info = json.loads(run_file.read_text())
        print(f"\n## Pilot {run_file.parent.parent.name}, {run_file.parent.name}")
        for event in (info.get("schedule") or {}).get("events") or []:
            how = "criterion held" if event["mastered"] else "cap hit"
            print(f"- {event['stage']}: {how} after {event['steps']} steps, value {event['value']:.4f}")
    for folder in sorted((study / "pilots").glob("*/results.json")):
        results = json.loads(folder.read_text())
        print(f"\n## Pilot {folder.parent.name}")
        for run in _done(results, "pedagogy"):
            events = ((run.get("schedule") or {}).get("events")) or []
            for event in events:
                how = "criterion held" if event["mastered"] else "cap hit"
                print(
                    f"- seed {run['seed']}, {event['stage']}: {how} after {event['steps']} steps, value {event['value']:.4f}"
                )


def claims(results: dict[str, Any]) -> None:
    family = results.get("claims") or {}
    print(
        f"\n## Declared claims ({family.get('correction')}; corrected level {family.get('corrected_level', 0):.4f})"
    )
    for row in family.get("rows") or []:
        low, high = row.get("diff_ci_low_corrected"), row.get("diff_ci_high_corrected")
        corrected = f"[{low:+.3f}, {high:+.3f}]" if _finite(low) else "no interval"
        p = (
            f"p {row['p_value']:.3g}, Holm {row['p_holm']:.3g}"
            if _finite(row.get("p_holm"))
            else "no p"
        )
        diff = f"{row['diff']:+.3f}" if _finite(row.get("diff")) else "-"
        detectable = row.get("detectable_diff_corrected")
        print(
            f"- {row['label']}: n={row['n_pairs']}, difference {diff} {corrected} (corrected), {p}, "
            f"detectable at the corrected level {f'{detectable:.3f}' if _finite(detectable) else '-'}, "
            f"holds: {row.get('significant')}"
        )


def adaptation(results: dict[str, Any]) -> None:
    for style in results.get("adaptations") or []:
        name = (
            style["style"].get("stage")
            if isinstance(style.get("style"), dict)
            else style.get("style")
        )
        print(
            f"\n## Adaptation to {name}: validation loss on the style, each model at its chosen learning rate"
        )
        for model, entry in style["arms"].items():
            for shots, s in (entry.get("shots") or {}).items():
                if not s.get("n_done"):
                    continue
                print(
                    f"- {model}, {shots} pieces (lr {s.get('lr')}): step 0 {_ci(s.get('start_val'))}; after 4 steps "
                    f"{_ci(s.get('early_val'))}; final {_ci(s.get('final_val'))}; area {_ci(s.get('auc_val'))}; "
                    f"test {_ci(s.get('test'))}"
                )
        for row in style.get("comparisons") or []:
            if row["metric"] in ("auc_val", "test") and row.get("pairs"):
                print(
                    f"- {row['arm']} minus {row['baseline']}, {row['shots']} pieces, {row['metric']}: {_effect(*_sides(row))}"
                )


def timing(study: Path) -> None:
    path = study / "timing.json"
    if not path.is_file():
        return
    info = json.loads(path.read_text())
    print(f"\n## Wall time: {info['wall_minutes']:.0f} minutes of running for {info['cells']} cells; "
          f"training throughput median {info['median_tokens_per_s']:,.0f} tokens/s on {info['threads']} thread(s)")  # fmt: skip


def _last_write(folder: Path, after, before):  # (datetime, datetime) -> datetime
    """The latest modification time in ``folder`` between two times: where a session the log does
    not close ended, at the earliest (a file it wrote and the next session rewrote is not seen)."""
    import datetime as dt

    times = [dt.datetime.fromtimestamp(f.stat().st_mtime, dt.UTC) for f in folder.rglob("*") if f.is_file()]
    inside = [t for t in times if after < t < before]
    return max(inside) if inside else after


def collect_timing(run_folder: Path, clock: str) -> dict[str, Any]:
    """Wall time and throughput of a run folder. ``clock`` is either ``HH:MM:SS`` (the first
    study: one process, one cell at a time, stopped once and resumed at that time of day; the
    wall time is the sum of the cells' times) or the path of the run's log, whose ``start
    <ISO time>`` and ``exit <status> at <ISO time>`` lines bracket each session (the re-sized
    study: two cells at once, so the wall time is the sessions' time, not the cells' sum)."""
    import datetime as dt
    import re
    import statistics

    sessions: list[tuple[dt.datetime, dt.datetime]] = []
    if Path(clock).is_file():
        text = Path(clock).read_text()
        marks = [(kind, dt.datetime.fromisoformat(t.replace("Z", "+00:00")))
                 for kind, t in re.findall(r"^(start|exit \d+ at) (\S+)", text, re.M)]  # fmt: skip
        for i, (kind, at) in enumerate(marks):
            if kind != "start":
                continue
            following = marks[i + 1] if i + 1 < len(marks) else None
            if following and following[0] != "start":
                sessions.append((at, following[1]))
            elif following:  # killed without an exit line (the machine's session ended)
                sessions.append((at, _last_write(run_folder, at, following[1])))
    cells, speeds, cell_minutes = [], [], 0.0
    for run in sorted((run_folder / "runs").iterdir()):
        end_file = run / "cell.json"
        if not end_file.is_file():
            continue
        start = dt.datetime.fromtimestamp((run / ".curricmusic").stat().st_mtime, dt.UTC)
        end = dt.datetime.fromtimestamp(end_file.stat().st_mtime, dt.UTC)
        if sessions:
            resumes = [s for s, _ in sessions[1:] if start < s < end]
        else:
            resume = dt.datetime.combine(end.date(), dt.time.fromisoformat(clock), dt.UTC)
            resumes = [resume] if start < resume < end else []
        seconds = (end - (resumes[-1] if resumes else start)).total_seconds()
        cell_minutes += seconds / 60
        cells.append({"cell": run.name, "minutes": round(seconds / 60, 2), "interrupted": bool(resumes)})
        metrics = run / "metrics.jsonl"  # none for the from-scratch model's folder: adaptation only
        for line in metrics.read_text().splitlines() if metrics.is_file() else []:
            row = json.loads(line)
            if "tokens_per_s" in row:
                speeds.append(row["tokens_per_s"])
    if sessions:
        wall = sum((b - a).total_seconds() for a, b in sessions) / 60
        rule = ("the sessions' time in the run's log (start to exit; a session with no exit line, killed, to the "
                "last write in the run folder before the next start); each cell from its folder's mark to its cell.json")
    else:
        wall = cell_minutes
        rule = "each cell from its folder's mark to its cell.json; an interrupted cell from the resume"
    return {
        "cells": len(cells),
        "wall_minutes": round(wall, 1),
        "cell_minutes": round(cell_minutes, 1),
        "median_tokens_per_s": round(statistics.median(speeds)),
        "threads": 1,
        "processes": 2 if sessions else 1,
        "per_cell": cells,
        "rule": rule,
    }


def main() -> None:
    if sys.argv[1:2] == ["--timing"]:
        print(json.dumps(collect_timing(Path(sys.argv[2]), sys.argv[3]), indent=1))
        return
    study = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    results = json.loads((study / "results.json").read_text())
    mastery(results)
    forgetting(results)
    pretraining(results)
    claims(results)
    adaptation(results)
    pilots(study)
    timing(study)


if __name__ == "__main__":
    main()
