"""What each arm learned and forgot over pretraining, from ``results.json`` alone: one panel per
measure (each stage's validation loss, each new style's loss, each stage's key share), one line per
arm (mean over seeds, against training tokens), with each run's boundaries marked."""

from __future__ import annotations

from typing import Any

import numpy as np

from curricmusic.reporting.plots import _COLORS, _done, _png, _pyplot, _tokens_axis

__all__ = ["measure_curves", "measures_of"]


def measures_of(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(curve key, name, panel title)`` of every measure some run logged, in panel order:
    the stages' validation losses, the styles' losses, the stages' key shares (stages in the
    curriculum's order)."""
    runs = [r for r in results["runs"] if r["status"] == "done"]
    stages = [s["name"] if isinstance(s, dict) else s for s in (results.get("curriculum") or {}).get("stages") or []]
    panels: list[tuple[str, str, str]] = []
    for key, title in (("val", "validation loss: {}"), ("style_val", "zero-shot loss on {}"), ("key_share", "key share: {}")):
        names = list(dict.fromkeys(n for r in runs for n in (r["curves"].get(key) or {})))
        names.sort(key=lambda n: stages.index(n) if n in stages else len(stages))  # the curriculum's order, then the rest
        panels += [(key, name, title.format(name)) for name in names]
    return panels


def measure_curves(results: dict[str, Any]) -> bytes | None:
    """The panels of :func:`measures_of` (None when only the validation losses were measured:
    the report's stage plot already shows them)."""
    panels = measures_of(results)
    if not any(key != "val" for key, _, _ in panels):
        return None
    plt = _pyplot()
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False, constrained_layout=True)
    for ax, (key, name, title) in zip(axes.ravel(), panels, strict=False):
        for index, arm in enumerate(results["arms"]):
            runs = [r for r in _done(results, arm) if (r["curves"].get(key) or {}).get(name)]
            if not runs:
                continue
            length = min(len(r["curves"][key][name]) for r in runs)
            tokens = np.mean([np.array(r["curves"]["eval_tokens"][:length], dtype=float) for r in runs], axis=0)
            values = np.array([[np.nan if v is None else v for v in r["curves"][key][name][:length]] for r in runs], dtype=float)
            color = _COLORS[index % len(_COLORS)]
            ax.plot(tokens, np.nanmean(values, axis=0), color=color, lw=1.6, label=f"{arm} ({len(runs)})")
            for run in runs:  # where each run left a stage
                for boundary in run.get("stage_boundaries") or []:
                    ax.axvline(boundary["tokens_seen"], color=color, lw=0.5, alpha=0.25)
        if key == "key_share":
            ax.axhline(7 / 12, color="grey", ls=":", lw=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training tokens", fontsize=8)
        _tokens_axis(ax)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7, title="arm (seeds); thin lines: stage boundaries", title_fontsize=7)
    return _png(fig)
