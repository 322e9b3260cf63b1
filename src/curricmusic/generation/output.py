"""Writing generated samples: MIDI (and WAV) files and ``manifest.json``, after optional reranking.

The output folder follows the rule of :mod:`curricmusic.common.folders` (only a new, empty or
curricmusic folder). Generating again into a folder of ours first removes the files its
manifest lists (earlier samples), and nothing else, so the folder never mixes two runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from symusic import Score, TextMeta

from curricmusic.common.atomic import atomic_path, write_json
from curricmusic.common.errors import UserError
from curricmusic.common.folders import check_folder, claim_folder
from curricmusic.common.numbers import count
from curricmusic.common.progress import progress_bar
from curricmusic.config.generation import GenerationSettings
from curricmusic.generation.run import LoadedRun
from curricmusic.music.notes import seconds_at

__all__ = ["Samples", "write_outputs", "check_output_dir", "samples_line", "MANIFEST_NAME", "SEAM_MARKER"]

MANIFEST_NAME = "manifest.json"
SEAM_MARKER = "prompt end"


def _output_names(n: int, wav: bool) -> list[str]:
    return [f"sample_{i:03d}.{ext}" for i in range(n) for ext in (("mid", "wav") if wav else ("mid",))]


def _earlier_outputs(out_dir: Path) -> set[str]:
    """File names an earlier ``generate`` into ``out_dir`` listed in its manifest (ours to remove)."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return set()
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return set()
    if not isinstance(manifest, dict):
        return set()
    names = set(manifest.get("writing") or [])
    for row in manifest.get("samples") or []:
        if isinstance(row, dict):
            names.update(str(row[key]) for key in ("file", "wav") if row.get(key))
    # only plain names inside the folder: a manifest cannot point us anywhere else
    return {name for name in names if name and "/" not in name and "\\" not in name and name not in (".", "..")}


def check_output_dir(out_dir: Path, n: int, wav: bool) -> set[str]:
    """One UserError line unless ``out_dir`` may receive ``n`` samples; returns the earlier outputs
    to remove. Run before sampling, so a refusal costs nothing."""
    out_dir = Path(out_dir)
    check_folder(out_dir, kind="samples")
    earlier = _earlier_outputs(out_dir)
    clash = [name for name in _output_names(n, wav) if (out_dir / name).exists() and name not in earlier]
    if clash:
        raise UserError(
            f"{out_dir}: --out holds {', '.join(clash[:3])}, which no earlier `curricmusic generate` "
            "listed in its manifest; nothing was changed; choose another --out"
        )
    return earlier


@dataclass
class Samples:
    """Every candidate drawn, in seed order (``n * rerank`` of them), decoded."""

    seeds: list[int]
    prompt: np.ndarray  # (P,) BOS first
    tokens: list[np.ndarray]  # generated ids per candidate (prompt excluded)
    scores: list[Score]  # prompt + continuation, decoded
    mean_logprob: np.ndarray  # (N,)
    copy_blocked: np.ndarray  # (N,)
    reached_eos: np.ndarray  # (N,) bool
    n_bars: list[int]  # bars of each continuation, counted from its tokens
    seam_quarters: float | None = None  # time where the prompt ends (None: no prompt)
    notes: list[str] = field(default_factory=list)  # what was switched off, and why
    prompt_notes: int = 0  # notes of the prompt itself (in every score)
    prompt_bars: int = 0  # bars of the prompt file continued
    warnings: list[str] = field(default_factory=list)  # what the prompt loses, said when it was read
    redraws: list[int] = field(default_factory=list)  # (N,) rounds each candidate was drawn again

    def candidate(self, i: int) -> dict[str, Any]:
        notes = int(self.scores[i].note_num())
        return {
            "seed": int(self.seeds[i]),
            "n_tokens": int(self.tokens[i].shape[0]),
            "n_notes": notes,
            "n_new_notes": notes - self.prompt_notes,
            "mean_logprob": float(self.mean_logprob[i]),
            "copy_blocked_tokens": int(self.copy_blocked[i]),
            "reached_eos": bool(self.reached_eos[i]),
            "redraws": int(self.redraws[i]) if self.redraws else 0,
        }


def _mark_seam(score: Score, quarters: float) -> dict[str, Any]:
    """Add the "prompt end" MIDI marker at ``quarters``; return where it is (ticks, seconds)."""
    tick = int(round(quarters * score.tpq))
    score.markers.append(TextMeta(tick, SEAM_MARKER))
    return {"tick": tick, "seconds": seconds_at(score, tick)}


def write_outputs(
    run: LoadedRun,
    out_dir: Path,
    settings: GenerationSettings,
    samples: Samples,
    *,
    sources: dict[str, str] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Choose one candidate per output (reranking), write files, return the manifest."""
    earlier = check_output_dir(out_dir, settings.n, settings.wav)
    claim_folder(out_dir, "samples")
    names = _output_names(settings.n, settings.wav)
    # list everything that may be on disk before touching it: a killed write is cleaned up next time
    write_json(out_dir / MANIFEST_NAME, {"writing": sorted(earlier | set(names)), "samples": []})
    for name in sorted(earlier - set(names)):
        (out_dir / name).unlink(missing_ok=True)
    k = settings.rerank
    n = len(samples.tokens)
    candidates = [samples.candidate(i) for i in range(n)]
    chosen = list(range(0, n, k))
    rerank_info: list[dict[str, Any]] = []
    if k > 1:
        from curricmusic.generation.rerank import choose_candidates  # scores novelty: heavy

        chosen, rerank_info = choose_candidates(run, samples.scores, candidates, k, settings.novelty_weight, show_progress)
    renderer = None
    rows = []
    seam: dict[str, Any] | None = None
    with progress_bar("Writing samples", len(chosen), show_progress) as update:
        for out_index, cand in enumerate(chosen):
            name = f"sample_{out_index:03d}"
            score = samples.scores[cand]
            if samples.seam_quarters is not None:
                where = _mark_seam(score, samples.seam_quarters)
                seam = seam or {"token_index": int(len(samples.prompt) - 1), "quarters": samples.seam_quarters, **where}
            with atomic_path(out_dir / f"{name}.mid", suffix=".mid") as tmp:
                score.dump_midi(str(tmp))
            row = {"file": f"{name}.mid", **candidates[cand], "n_bars": int(samples.n_bars[cand])}
            if settings.wav:
                from curricmusic.novelty.render import render, write_wav  # audio stack: heavy

                audio = render(score)
                write_wav(out_dir / f"{name}.wav", audio)
                renderer = audio.renderer
                row["wav"] = f"{name}.wav"
            if k > 1:
                group = range(out_index * k, (out_index + 1) * k)
                row["candidates"] = [{**candidates[i], **rerank_info[i]} for i in group]
            rows.append(row)
            update()
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_dir": str(run.run_dir.resolve()),
        "experiment": run.info.get("experiment"),
        "arm": run.info.get("arm", {}).get("name"),
        "run_seed": run.info.get("seed"),
        "checkpoint_sha256": run.checkpoint_sha256,
        "prepared": run.info.get("prepared"),
        "tokenizer": type(run.tokenizer).__name__,
        "settings": settings.model_dump(mode="json"),
        "settings_source": sources or {},
        "seed": settings.seed,
        "constraints": {
            "grammar": settings.grammar,
            "copy_blocking": settings.copy_blocking,
            "max_copy_notes": settings.max_copy_notes if settings.copy_blocking else None,
            "key": settings.key,
            "pitch_range": settings.pitch_range,
            "notes": samples.notes,
        },
        "prompt_tokens": int(len(samples.prompt)),
        "prompt_bars": samples.prompt_bars if settings.prompt else None,
        "warnings": samples.warnings,
        "n_empty": sum(1 for row in rows if row["n_new_notes"] == 0),
        "seam": seam,
        "renderer": renderer,
        "samples": rows,
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def samples_line(manifest: dict) -> str:
    """What ``generate`` drew, counting the samples that hold no new note: "8 samples (1 of 8
    empty: no new note; --min-notes 1 draws such samples again), 120 new notes"."""
    rows = manifest["samples"]
    new = sum(row.get("n_new_notes", row["n_notes"]) for row in rows)
    empty = manifest.get("n_empty", sum(1 for row in rows if row.get("n_new_notes", row["n_notes"]) == 0))
    redrawn = sum(1 for row in rows if row.get("redraws"))
    parts = [f"{len(rows)} sample{'s' if len(rows) != 1 else ''}"]
    notes = []
    if empty:
        hint = "" if manifest["settings"].get("min_notes") else "; --min-notes 1 draws such samples again"
        notes.append(f"{empty} of {len(rows)} empty: no new note{hint}")
    if redrawn:
        notes.append(f"{redrawn} drawn again for having fewer than {manifest['settings']['min_notes']} new notes")
    if notes:
        parts[0] += f" ({'; '.join(notes)})"
    parts.append(f"{count(new)} {'new ' if manifest.get('prompt_tokens', 1) > 1 else ''}notes")
    return ", ".join(parts)
