"""The figures of the experiment report, drawn with matplotlib from ``results.json`` alone.

Each function returns PNG bytes (or None when there is nothing to draw), so the report can embed
them in a self-contained HTML page that works offline; :func:`tokens_to_target` returns a
sentence instead when the figure would carry no information. Intervals follow the report's rule
(:mod:`~curricmusic.reporting.intervals`): below 3 seeds, only the seeds are drawn. Numbers in
labels go through :mod:`curricmusic.common.numbers`; panels are laid out in a grid of at most
:data:`GRID_COLUMNS` columns, so a figure stays legible at a page's width.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from curricmusic.common.numbers import count, fmt, sig
from curricmusic.reporting.intervals import has_interval

if TYPE_CHECKING:  # annotations only: matplotlib loads when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "validation_curves",
    "stage_panels",
    "tokens_to_target",
    "metric_distributions",
    "novelty_histograms",
    "grid",
    "GRID_COLUMNS",
]

#: Panels per row of a multi-panel figure.
GRID_COLUMNS = 3

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
_STAGE_COLORS = ["#fde0dd", "#deebf7", "#e5f5e0", "#fff7bc", "#efedf5", "#fee6ce"]


def _pyplot() -> Any:  # the matplotlib.pyplot module, on the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _tokens_axis(ax: Axes) -> None:
    """Token counts as 250k / 1.5M instead of 250000."""
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _position: object) -> str:
        if abs(value) >= 1e6:
            return f"{value / 1e6:g}M"
        if abs(value) >= 1e3:
            return f"{value / 1e3:g}k"
        return f"{value:g}"

    ax.xaxis.set_major_formatter(FuncFormatter(label))


def grid(n_panels: int, width: float = 4.4, height: float = 3.3, columns: int = GRID_COLUMNS, **options: Any) -> tuple[Figure, list[Axes]]:
    """``(figure, axes)`` with ``n_panels`` panels in rows of at most ``columns``; unused
    panels are hidden. ``axes`` is the flat list of the panels in use."""
    plt = _pyplot()
    columns = max(1, min(columns, n_panels))
    rows = math.ceil(n_panels / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(width * columns, height * rows), squeeze=False, constrained_layout=True, **options
    )
    flat = list(axes.flat)
    for ax in flat[n_panels:]:
        ax.axis("off")
    return fig, flat[:n_panels]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _done(results: dict[str, Any], arm: str) -> list[dict]:
    return [r for r in results["runs"] if r["arm"] == arm and r["status"] == "done"]


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


X_AXES = {
    "tokens": ("eval_tokens", "training tokens (real, all stages)"),
    "target_tokens": ("eval_target_tokens", "training tokens of the target stage"),
}


def validation_curves(results: dict[str, Any], x: str = "tokens") -> bytes | None:
    """Target-stage validation loss against tokens (``x = "tokens"``) or target-stage tokens
    (``"target_tokens"``): mean over seeds (x too: seeds of a plateau arm differ), band min-max."""
    key, xlabel = X_AXES[x]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = False
    for index, arm in enumerate(results["arms"]):
        runs = [r for r in _done(results, arm) if all(v is not None for v in r["curves"].get(key, [None]))]
        if not runs:
            continue
        length = min(len(r["curves"]["val_target"]) for r in runs)
        tokens = np.mean([np.array(r["curves"][key][:length], dtype=float) for r in runs], axis=0)
        curves = np.array([[np.nan if v is None else v for v in r["curves"]["val_target"][:length]] for r in runs], dtype=float)
        color = _COLORS[index % len(_COLORS)]
        ax.plot(tokens, np.nanmean(curves, axis=0), color=color, lw=2, label=f"{arm} ({len(runs)} seeds)")
        if len(runs) > 1:
            ax.fill_between(tokens, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=color, alpha=0.18)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    if results.get("target_loss"):
        ax.axhline(results["target_loss"], color="grey", ls="--", lw=1, label="target loss")
    ax.set_xlabel(xlabel)
    _tokens_axis(ax)
    ax.set_ylabel(f"validation loss on '{results['target_stage']}' (nats/token)")
    ax.set_title("Target-stage validation loss (line: mean over seeds; band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def stage_panels(results: dict[str, Any]) -> bytes | None:
    """One panel per arm (a grid of them): validation loss of every stage, the stage being
    learned shaded."""
    arms = [a for a in results["arms"] if _done(results, a)]
    if not arms:
        return None
    stages = results["curriculum"]["stages"]
    names = [s["name"] for s in stages]
    fig, axes = grid(len(arms), sharey=True)
    for ax, arm in zip(axes, arms, strict=True):
        run = _done(results, arm)[0]
        curves = run["curves"]
        tokens = np.array(curves["train_tokens"], dtype=float)
        current = curves["current_stage"]
        start = 0
        for i in range(1, len(current) + 1):
            if i == len(current) or current[i] != current[start]:
                color = _STAGE_COLORS[names.index(current[start]) % len(_STAGE_COLORS)] if current[start] in names else "#eeeeee"
                left = tokens[start - 1] if start else 0.0
                ax.axvspan(left, tokens[i - 1], color=color, alpha=0.9, lw=0)
                start = i
        for index, stage in enumerate(names):
            values = curves["val"].get(stage)
            if values:
                ys = [np.nan if v is None else v for v in values]
                ax.plot(curves["eval_tokens"], ys, color=_COLORS[index % len(_COLORS)], lw=1.5, label=stage)
        ax.set_title(f"{arm} (seed {run['seed']})", fontsize=10)
        ax.set_xlabel("training tokens")
        _tokens_axis(ax)
        ax.grid(alpha=0.3)
    for index, ax in enumerate(axes):
        if index % GRID_COLUMNS == 0:
            ax.set_ylabel("validation loss per stage")
    from matplotlib.patches import Patch

    lines = dict(zip(*reversed(axes[0].get_legend_handles_labels()), strict=True))  # label -> line
    handles, labels = [], []
    for i, stage in enumerate(names):  # the legend fills column by column: each stage's line above its shading
        if stage in lines:
            handles += [lines[stage], Patch(color=_STAGE_COLORS[i % len(_STAGE_COLORS)])]
            labels += [stage, f"learning {stage}"]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(names) or 1, fontsize=8,
               title="validation loss of each stage (lines) and the stage being learned (shading)", title_fontsize=8)  # fmt: skip
    return _png(fig)


def _same_evaluation(results: dict[str, Any], arms: list[str]) -> str | None:
    """Why the tokens-to-target figure would say nothing: every seed of every arm reached the
    target at the same evaluation (None when they differ)."""
    values = {v for a in arms for v in _finite(results["arms"][a]["summary"]["tokens_to_target"].get("values", []))}
    reached = [r for a in arms for r in results["arms"][a]["summary"]["tokens_to_target"].get("reached") or []]
    if len(values) != 1 or not all(reached):
        return None
    value = next(iter(values))
    return (
        f"every seed of every arm reached the target loss ({sig(results.get('target_loss'))}) at the same evaluation, "
        f"{count(value)} tokens: the evaluations are too far apart to tell the arms apart by this measure, so there is "
        "nothing to plot (the validation curves show how each arm approached it)"
    )


def tokens_to_target(results: dict[str, Any], metric: str = "tokens_to_target") -> bytes | str | None:
    """Mean and 95% t-interval per arm of a summary metric (seeds as dots; for tokens to target,
    open circles are seeds that never reached it, drawn at the budget). Below 3 seeds no
    interval is drawn. For tokens to target, a sentence instead of a figure when every seed of
    every arm reached the target at the same evaluation."""
    arms = [a for a, v in results["arms"].items() if _finite(v["summary"].get(metric, {}).get("values", []))]
    if not arms:
        return None
    if metric == "tokens_to_target":
        why = _same_evaluation(results, arms)
        if why:
            return why
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(arms) + 1.4))
    intervals = 0
    for y, arm in enumerate(arms):
        stats = results["arms"][arm]["summary"][metric]
        mean, low, high = stats["mean"], stats.get("ci_low"), stats.get("ci_high")
        color = _COLORS[y % len(_COLORS)]
        if has_interval(stats):
            ax.errorbar([mean], [y], xerr=[[mean - low], [high - mean]], fmt="o", color=color, capsize=4)
            intervals += 1
        elif mean is not None:
            ax.scatter([mean], [y], color=color, marker="|", s=200, zorder=2)
        reached = stats.get("reached") or [True] * len(stats["values"])
        for value, hit in zip(stats["values"], reached, strict=False):
            if value is not None and math.isfinite(value):
                ax.scatter([value], [y], s=14, zorder=3, color="black" if hit else "none", edgecolors="black")
    ax.set_yticks(range(len(arms)), arms)
    ax.set_ylim(-0.6, len(arms) - 0.4)
    if metric == "tokens_to_target":
        _tokens_axis(ax)
    label = {"tokens_to_target": f"tokens to reach validation loss {sig(results.get('target_loss'))}",
             "final_val_target": "final target-stage validation loss (nats/token)"}.get(metric, metric)  # fmt: skip
    ax.set_xlabel(label)
    what = "mean and 95% t-interval over seeds (dots: seeds)" if intervals else "each seed (too few seeds for an interval; bar: mean)"
    ax.set_title(f"{label.split(' (')[0]}: {what}", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def metric_distributions(results: dict[str, Any], metrics: list[str]) -> bytes | None:
    """Box plots of per-sample musical metrics for each arm beside the held-out real pieces, a
    grid of panels; each arm's overlap with the held-out pieces is printed above its box."""
    heldout = results.get("heldout_music") or {}
    metrics = [m for m in metrics if _finite(heldout.get(m, []))]
    if not metrics:
        return None
    arms = list(results["arms"])
    fig, axes = grid(len(metrics), width=0.55 * (len(arms) + 1) + 1.6, height=3.0)
    for ax, metric in zip(axes, metrics, strict=True):
        data = [_finite(results["arms"][a]["music"].get(metric, {}).get("values", [])) for a in arms]
        data.append(_finite(heldout[metric]))
        labels = arms + ["held-out"]
        keep = [i for i, d in enumerate(data) if d]
        ax.boxplot([data[i] for i in keep], tick_labels=[labels[i] for i in keep])
        for position, i in enumerate(keep, start=1):
            overlap = results["arms"][labels[i]]["music"].get(metric, {}).get("overlap") if i < len(arms) else None
            if overlap is not None:
                ax.annotate(fmt(overlap, 2), (position, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=6.5, color="#555")  # fmt: skip
        ax.set_title(metric.replace("_", " "), fontsize=9, pad=12)
        ax.tick_params(axis="x", labelsize=7, rotation=35)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Musical metrics of the samples against held-out real pieces (grey numbers: overlap with held-out, 1 = alike)", fontsize=10)
    return _png(fig)


def novelty_histograms(results: dict[str, Any]) -> bytes | None:
    """Distance ratio rho of each arm's samples, against the held-out pieces' own rho."""
    arms = [a for a, v in results["arms"].items() if v.get("novelty", {}).get("rho")]
    if not arms:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    heldout: list[float] = []
    for run in results["runs"]:
        heldout = run.get("novelty", {}).get("summary", {}).get("heldout_rho") or heldout
    values = [_finite(results["arms"][a]["novelty"]["rho"]) for a in arms]
    every = [v for vs in values for v in vs] + _finite(heldout)
    bins = np.linspace(0, max(2.0, max(every) * 1.05), 25)
    for index, (arm, rho) in enumerate(zip(arms, values, strict=True)):
        ax.hist(rho, bins=bins, alpha=0.45, color=_COLORS[index % len(_COLORS)], label=f"{arm} samples", density=True)
    if heldout:
        ax.hist(_finite(heldout), bins=bins, histtype="step", color="black", lw=1.5, label="held-out real pieces", density=True)
    ax.axvline(1.0, color="grey", ls=":", lw=1)
    ax.set_xlabel("distance ratio rho = d_NN(sample, train) / median d_NN(held-out, train)")
    ax.set_ylabel("density")
    ax.set_title("Novelty: rho well below 1 means closer to the training data than unseen music is")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)
