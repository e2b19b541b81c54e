"""Matplotlib figures that tasks return from ``charts(results)`` (Agg backend, never shown)."""
from __future__ import annotations

import numpy as np


def subplots(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def confusion_matrices(matrices: dict[str, np.ndarray], labels=("not", "rel"), xlabel="predicted", ylabel="label"):
    """One 2x2 confusion matrix per grader, side by side."""
    fig, axes = subplots(1, len(matrices), figsize=(3.2 * len(matrices), 3), squeeze=False)
    for ax, (name, cm) in zip(axes[0], matrices.items()):
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center")
        ax.set(title=name, xticks=[0, 1], yticks=[0, 1], xticklabels=list(labels), yticklabels=list(labels),
               xlabel=xlabel, ylabel=ylabel)
    return fig


def reliability(curves: dict[str, tuple[list, list]]):
    """Reliability diagram: {grader: (labels, scores)}; graders without scores are skipped."""
    from sklearn.calibration import calibration_curve

    fig, ax = subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], ":", color="grey")
    for name, (y, scores) in curves.items():
        if scores and all(s is not None for s in scores) and len(set(y)) == 2 and all(0 <= s <= 1 for s in scores):
            frac, mean = calibration_curve(y, scores, n_bins=8, strategy="quantile")
            ax.plot(mean, frac, "o-", label=name)
    ax.set(xlabel="mean P(relevant)", ylabel="fraction relevant", title="reliability", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def lines(curves: dict[str, tuple[list, list]], xlabel: str, ylabel: str, title: str, dashed=(), ylim=(0, 1.02)):
    fig, ax = subplots(figsize=(5, 3.5))
    for name, (x, y) in curves.items():
        ax.plot(x, y, "k--" if name in dashed else "o-", label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=ylim)
    ax.legend(fontsize=8)
    return fig


def distributions(values: dict[str, list[float]], ylabel: str, title: str):
    """Box plots with the per-unit points jittered over them, one per system."""
    fig, ax = subplots(figsize=(max(4.0, 1.3 * len(values) + 1.5), 3.8))
    names = list(values)
    ax.boxplot([values[n] for n in names], showmeans=True, widths=0.5)
    rng = np.random.default_rng(0)
    for i, n in enumerate(names, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values[n])), values[n], s=8, alpha=0.4)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right")
    ax.set(ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
    return fig
