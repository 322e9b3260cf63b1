"""The adaptation phase's figures, from ``results.json``'s ``adaptation`` entry alone (PNG bytes,
None when there is nothing to draw)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from curricmusic.reporting.plots import _COLORS, _png, _pyplot, _tokens_axis

if TYPE_CHECKING:  # annotations only: matplotlib loads when a plot is drawn
    from matplotlib.axes import Axes

__all__ = ["adaptation_curves", "shot_size_plot"]

_SCRATCH = "scratch"


def _style(models: list[str], model: str) -> dict[str, Any]:
    """Scratch in black and dashed, every arm in its colour."""
    if model == _SCRATCH:
        return {"color": "black", "ls": "--"}
    return {"color": _COLORS[models.index(model) % len(_COLORS)], "ls": "-"}


def _done(adaptation: dict[str, Any], model: str, shots: int) -> list[dict[str, Any]]:
    """The finished runs of a model and shot size at its chosen learning rate."""
    return [
        r
        for r in adaptation["runs"]
        if r["model"] == model and r["shots"] == shots and r["status"] == "done" and r.get("chosen", True)
    ]


def adaptation_curves(results: dict[str, Any], entry: dict[str, Any] | None = None) -> bytes | None:
    """One panel per shot size: validation loss on the new style against adaptation tokens, per
    model at its chosen learning rate (line: mean over seeds; band: min-max), with the adaptation
    target. ``entry``: one style's adaptation entry (default: ``results["adaptation"]``)."""
    adaptation = entry if entry is not None else results.get("adaptation") or {}
    shots, models = adaptation.get("shots") or [], adaptation.get("models") or []
    if not any(_done(adaptation, m, k) for m in models for k in shots):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(shots), figsize=(4.4 * len(shots), 3.8), sharey=True, squeeze=False, constrained_layout=True
    )
    target = (adaptation.get("target") or {}).get("loss")
    for ax, k in zip(axes[0], shots, strict=True):
        for model in models:
            runs = _done(adaptation, model, k)
            if not runs:
                continue
            length = min(len(r["curves"]["val"]) for r in runs)
            tokens = np.array(runs[0]["curves"]["eval_tokens"][:length], dtype=float)
            curves = np.array([[np.nan if v is None else v for v in r["curves"]["val"][:length]] for r in runs], dtype=float)
            style = _style(models, model)
            ax.plot(tokens, np.nanmean(curves, axis=0), lw=2, label=f"{model} ({len(runs)} seeds)", **style)
            if len(runs) > 1:
                ax.fill_between(tokens, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=style["color"], alpha=0.15)
        if isinstance(target, int | float) and math.isfinite(target):
            ax.axhline(target, color="grey", ls=":", lw=1, label="adaptation target")
        ax.set_title(f"{k} pieces", fontsize=10)
        ax.set_xlabel("adaptation tokens")
        _tokens_axis(ax)
        ax.grid(alpha=0.3)
    style_name = (adaptation.get("style") or {}).get("stage", "the new style")
    axes[0][0].set_ylabel(f"validation loss on {style_name} (nats/token)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("Adaptation to a new style (line: mean over seeds; band: min-max)", fontsize=10)
    return _png(fig)


def shot_size_plot(results: dict[str, Any], entry: dict[str, Any] | None = None) -> bytes | None:
    """Final test loss on the new style against the number of pieces adapted on, one line per
    model: the mean with its 95% t-interval (from 3 seeds; below that, each seed as a dot). With
    a from-scratch model beside pretrained ones, a second panel shows the pretrained ones alone,
    whose differences the first panel's scale would hide. ``entry``: one style's adaptation
    entry (default: ``results["adaptation"]``)."""
    adaptation = entry if entry is not None else results.get("adaptation") or {}
    shots, models = adaptation.get("shots") or [], adaptation.get("models") or []
    arms = adaptation.get("arms") or {}
    pretrained = [m for m in models if m != _SCRATCH]
    panels = [models, pretrained] if _SCRATCH in models and pretrained else [models]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.2), squeeze=False)
    drawn = False
    for ax, shown in zip(axes[0], panels, strict=True):
        drawn = _shot_lines(ax, shown, models, shots, arms) or drawn
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.minorticks_off()
        ax.set_xlabel("pieces of the new style adapted on")
        ax.set_ylabel("final test loss on the new style (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    axes[0][0].set_title("Test loss after adaptation, by number of pieces (bars: 95% t-interval; dots: seeds)", fontsize=9)
    if len(panels) > 1:
        axes[0][1].set_title("The pretrained models alone", fontsize=9)
    return _png(fig)


def _shot_lines(ax: Axes, shown: list[str], models: list[str], shots: list[int], arms: dict[str, Any]) -> bool:
    """One line per model of ``shown`` (colours by its place in ``models``); True if any was drawn."""
    drawn = False
    for offset, model in enumerate(shown):
        per_shot = (arms.get(model) or {}).get("shots") or {}
        xs, means = [], []
        style = _style(models, model)
        shift = 1 + 0.03 * (offset - (len(shown) - 1) / 2)  # side by side on the log axis
        for k in shots:
            stats = per_shot.get(str(k), {}).get("test") or {}
            mean = stats.get("mean")
            if not isinstance(mean, int | float) or not math.isfinite(mean):
                continue
            x = k * shift
            xs.append(x)
            means.append(mean)
            low, high = stats.get("ci_low"), stats.get("ci_high")
            if (
                not stats.get("too_few")
                and isinstance(low, int | float)
                and isinstance(high, int | float)
                and math.isfinite(low)
                and math.isfinite(high)
            ):
                ax.errorbar([x], [mean], yerr=[[mean - low], [high - mean]], color=style["color"], capsize=3, lw=1)
            else:
                values = [v for v in stats.get("values", []) if isinstance(v, int | float) and math.isfinite(v)]
                ax.scatter([x] * len(values), values, s=12, color=style["color"], zorder=3)
        if xs:
            ax.plot(xs, means, marker="o", lw=2, label=model, **style)
            drawn = True
    return drawn
