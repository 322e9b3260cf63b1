"""Writing generated samples: MIDI (and WAV) files and ``manifest.json``, after optional reranking."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from curricmusic.common.atomic import atomic_path, write_json
from curricmusic.common.progress import progress_bar

__all__ = ["write_outputs", "MANIFEST_NAME"]

MANIFEST_NAME = "manifest.json"


def _bars(tokens: np.ndarray, bar_id: int) -> int:
    return int(np.sum(tokens == bar_id))


def write_outputs(run, out_dir: Path, settings, seeds, prompt, tokens, scores, logprob, blocked, eos, show_progress) -> dict:
    """Choose one candidate per output (reranking), write files, return the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    k = settings.rerank
    candidates = [
        {
            "seed": int(seeds[i]),
            "n_tokens": int(tokens[i].shape[0]),
            "n_notes": int(scores[i].note_num()),
            "mean_logprob": float(logprob[i]),
            "copy_blocked_tokens": int(blocked[i]),
            "reached_eos": bool(eos[i]),
        }
        for i in range(len(tokens))
    ]
    chosen = list(range(0, len(tokens), k)) if k == 1 else None
    rerank_info = None
    if k > 1:
        from curricmusic.generation.rerank import choose_candidates

        chosen, rerank_info = choose_candidates(run, scores, candidates, k, settings.novelty_weight, show_progress)
    renderer = None
    rows = []
    bar_id = run.tokenizer.vocab["Bar_None"]
    with progress_bar("Writing samples", len(chosen), show_progress) as update:
        for out_index, cand in enumerate(chosen):
            name = f"sample_{out_index:03d}"
            score = scores[cand]
            with atomic_path(out_dir / f"{name}.mid", suffix=".mid") as tmp:
                score.dump_midi(str(tmp))
            row = {"file": f"{name}.mid", **candidates[cand], "n_bars": _bars(tokens[cand], bar_id)}
            if settings.wav:
                from curricmusic.novelty.render import render, write_wav

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
        "settings": settings.model_dump(mode="json"),
        "seed": settings.seed,
        "constraints": {
            "grammar": settings.grammar,
            "copy_blocking": settings.copy_blocking,
            "max_copy_notes": settings.max_copy_notes if settings.copy_blocking else None,
            "key": settings.key,
            "pitch_range": settings.pitch_range,
        },
        "prompt_tokens": int(len(prompt)),
        "renderer": renderer,
        "samples": rows,
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest
