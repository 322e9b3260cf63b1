"""Novelty reranking in generation: keep, for each output, the best of K candidates.

A candidate's score is its mean token log-likelihood minus ``W * p(x)``, with ``p`` the novelty
penalty of :mod:`curricmusic.novelty.score`; a flagged candidate is never kept while an
unflagged one exists for the same output.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from curricmusic.common.run_folder import RUN_FILE
from curricmusic.config.run_settings import novelty_settings_for_run
from curricmusic.generation.run import LoadedRun

__all__ = ["pick", "choose_candidates"]


def pick(logprob: list[float], penalty: list[float], flagged: list[bool], weight: float) -> int:
    """Index of the kept candidate: unflagged first, then the highest ``logprob - weight * penalty``."""
    scores = [lp - weight * p for lp, p in zip(logprob, penalty, strict=True)]
    pool = [i for i, f in enumerate(flagged) if not f] or list(range(len(scores)))
    return max(pool, key=lambda i: (scores[i], -i))


def choose_candidates(
    run: LoadedRun, scores: list[Any], candidates: list[dict[str, Any]], k: int, weight: float, show_progress: bool
) -> tuple[list[int], list[dict[str, Any]]]:
    """Score every candidate (``scores``: symusic Scores) for novelty against the run's data, as
    the run's ``[novelty]`` section says, and pick one per group of ``k``.

    Returns the chosen candidate indices and, per candidate, what the choice was based on.
    """
    from curricmusic.novelty.pipeline import score_files

    settings, _ = novelty_settings_for_run(run.info, {}, source=str(run.run_dir / RUN_FILE))
    with tempfile.TemporaryDirectory(prefix="curricmusic-rerank-") as tmp:
        files = []
        for i, score in enumerate(scores):
            path = Path(tmp) / f"candidate_{i:04d}.mid"
            score.dump_midi(str(path))
            files.append(path)
        result = score_files(files, run.prepared(), settings, show_progress=show_progress)
    by_file = {row["file"]: row for row in result.rows}
    info = []
    for i, candidate in enumerate(candidates):
        row = by_file.get(f"candidate_{i:04d}.mid")
        penalty = row["penalty"] if row else 1.0
        flagged = row["flagged"] if row else True  # an unreadable candidate is never preferred
        info.append(
            {
                "penalty": penalty,
                "flagged": flagged,
                "rho": row["rho"] if row else None,
                "copied_notes": row["copied_span"]["notes"] if row else None,
                "rerank_score": candidate["mean_logprob"] - weight * penalty,
            }
        )
    chosen = []
    for start in range(0, len(candidates), k):
        group = range(start, start + k)
        best = pick(
            [candidates[i]["mean_logprob"] for i in group],
            [info[i]["penalty"] for i in group],
            [info[i]["flagged"] for i in group],
            weight,
        )
        chosen.append(start + best)
    for i in range(len(candidates)):
        info[i]["kept"] = i in chosen
    return chosen, info
