"""The figures of the experiment report, drawn with matplotlib from ``results.json`` alone.

Each function returns PNG bytes (or None when there is nothing to draw), so the report can embed
them in a self-contained HTML page that works offline.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # annotations only: matplotlib loads when a plot is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["validation_curves", "stage_panels", "tokens_to_target", "metric_distributions", "novelty_histograms"]

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
    """One panel per arm: validation loss of every stage, the stage being learned shaded."""
    arms = [a for a in results["arms"] if _done(results, a)]
    if not arms:
        return None
    plt = _pyplot()
    stages = results["curriculum"]["stages"]
    names = [s["name"] for s in stages]
    fig, axes = plt.subplots(
        1, len(arms), figsize=(4.2 * len(arms), 3.6), sharey=True, squeeze=False, constrained_layout=True
    )
    for ax, arm in zip(axes[0], arms, strict=True):
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
    axes[0][0].set_ylabel("validation loss per stage")
    axes[0][-1].legend(fontsize=7, title="stage (shading: being learned)", title_fontsize=7)
    return _png(fig)


def tokens_to_target(results: dict[str, Any], metric: str = "tokens_to_target") -> bytes | None:
    """Mean and 95% t-interval per arm of a summary metric (seeds as dots; for tokens to target,
    open circles are seeds that never reached it, drawn at the budget)."""
    arms = [a for a, v in results["arms"].items() if _finite(v["summary"].get(metric, {}).get("values", []))]
    if not arms:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(arms) + 1.4))
    for y, arm in enumerate(arms):
        stats = results["arms"][arm]["summary"][metric]
        mean, low, high = stats["mean"], stats["ci_low"], stats["ci_high"]
        color = _COLORS[y % len(_COLORS)]
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            ax.errorbar([mean], [y], xerr=[[mean - low], [high - mean]], fmt="o", color=color, capsize=4)
        elif mean is not None:
            ax.scatter([mean], [y], color=color, s=30, zorder=2)
        reached = stats.get("reached") or [True] * len(stats["values"])
        for value, hit in zip(stats["values"], reached, strict=False):
            if value is not None and math.isfinite(value):
                ax.scatter([value], [y], s=14, zorder=3, color="black" if hit else "none", edgecolors="black")
    ax.set_yticks(range(len(arms)), arms)
    ax.set_ylim(-0.6, len(arms) - 0.4)
    if metric == "tokens_to_target":
        _tokens_axis(ax)
    label = {"tokens_to_target": f"tokens to reach validation loss {results.get('target_loss')}",
             "final_val_target": "final target-stage validation loss"}.get(metric, metric)  # fmt: skip
    ax.set_xlabel(label)
    ax.set_title(f"{metric}: mean and 95% t-interval over seeds (dots: seeds)")
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def metric_distributions(results: dict[str, Any], metrics: list[str]) -> bytes | None:
    """Box plots of per-sample musical metrics for each arm beside the held-out real pieces."""
    heldout = results.get("heldout_music") or {}
    metrics = [m for m in metrics if _finite(heldout.get(m, []))]
    if not metrics:
        return None
    plt = _pyplot()
    arms = list(results["arms"])
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False, constrained_layout=True)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        data = [_finite(results["arms"][a]["music"].get(metric, {}).get("values", [])) for a in arms]
        data.append(_finite(heldout[metric]))
        labels = arms + ["held-out"]
        keep = [i for i, d in enumerate(data) if d]
        ax.boxplot([data[i] for i in keep], tick_labels=[labels[i] for i in keep])
        overlaps = [results["arms"][a]["music"].get(metric, {}).get("overlap") for a in arms]
        subtitle = ", ".join(f"{a}: {o:.2f}" for a, o in zip(arms, overlaps, strict=True) if o is not None)
        ax.set_title(f"{metric}\noverlap with held-out: {subtitle}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7, rotation=20)
        ax.grid(alpha=0.3, axis="y")
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.suptitle("Musical metrics of the samples against held-out real pieces", fontsize=10)
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
