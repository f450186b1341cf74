"""Figures every replication writes: training curves, confusion matrix, ROC curves, reliability diagram.

Uses matplotlib's object API (Figure + Agg canvas) instead of pyplot: no global state, no GUI backend,
no figures left open in long runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_auc_score, roc_curve

from .metrics import ECE_BINS, as_labels, as_probabilities, calibration_bins, ece_from_bins, row_normalised

DPI = 120


def _save(figure: Figure, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_training_curves(history: Mapping[str, Sequence[float]], path: Path | str, title: str) -> Path:
    """One panel per metric (loss, accuracy, ...), training and validation (`val_` keys) overlaid."""
    bases = list(dict.fromkeys(key.removeprefix("val_") for key in history if len(history[key])))
    if not bases:
        raise ValueError("history is empty: nothing to plot")
    figure = Figure(figsize=(5.0 * len(bases), 4.0))
    for i, base in enumerate(bases):
        axis = figure.add_subplot(1, len(bases), i + 1)
        for key, label, style in ((base, "training", "-"), (f"val_{base}", "validation", "--")):
            values = history.get(key)
            if values is not None and len(values):
                axis.plot(np.arange(1, len(values) + 1), values, style, label=label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axis.set_xlabel("epoch")
        axis.set_ylabel(base.replace("_", " "))
        axis.set_title(base.replace("_", " "))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    return _save(figure, path)


def plot_confusion_matrix(
    matrix, class_names: Sequence[str], path: Path | str, title: str, normalized: bool = True
) -> Path:
    """Annotated heat map, rows = true class. normalized=True shows row rates (counts are normalised here)."""
    m = np.asarray(matrix, dtype=np.float64)
    k = len(class_names)
    if m.shape != (k, k):
        raise ValueError(f"confusion matrix shape {m.shape} does not match {k} class names")
    values = row_normalised(m) if normalized else m
    size = max(4.0, 0.6 * k + 2.5)
    figure = Figure(figsize=(size + 1.0, size))
    axis = figure.add_subplot()
    vmax = 1.0 if normalized else max(values.max(), 1.0)
    image = axis.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of true class" if normalized else "count")
    for i in range(k):
        for j in range(k):
            text = f"{values[i, j]:.0%}" if normalized else f"{int(round(values[i, j]))}"
            # Dark cells get white text so the number stays readable.
            colour = "white" if values[i, j] > 0.6 * vmax else "black"
            axis.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
    axis.set_xticks(range(k), class_names, rotation=45, ha="right")
    axis.set_yticks(range(k), class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title)
    return _save(figure, path)


def plot_roc_curves(y_true, probabilities, class_names: Sequence[str], path: Path | str, title: str) -> Path:
    """One-vs-rest ROC curve per class with its AUC; classes without both outcomes are listed as undefined."""
    k = len(class_names)
    y = as_labels(y_true, k)
    p = as_probabilities(probabilities, len(y), k)
    figure = Figure(figsize=(6.0, 5.5))
    axis = figure.add_subplot()
    for i, name in enumerate(class_names):
        target = y == i
        if target.all() or not target.any():
            axis.plot([], [], " ", label=f"{name} (AUC undefined)")
            continue
        fpr, tpr, _ = roc_curve(target, p[:, i])
        axis.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(target, p[:, i]):.3f})")
    axis.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


def plot_reliability(y_true, probabilities, path: Path | str, title: str, n_bins: int = ECE_BINS) -> Path:
    """Reliability diagram (accuracy per confidence bin vs the diagonal) with ECE, and confidence counts."""
    bins = calibration_bins(y_true, probabilities, n_bins)
    ece = ece_from_bins(bins)
    centres = np.array([(b["lo"] + b["hi"]) / 2 for b in bins])
    width = 1.0 / n_bins
    accuracy = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins])
    counts = np.array([b["count"] for b in bins])

    figure = Figure(figsize=(5.5, 6.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.bar(centres, accuracy, width=width, edgecolor="black", alpha=0.8, label="accuracy in bin")
    top.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}\nECE = {ece:.3f} ({n_bins} bins)")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.bar(centres, counts, width=width, edgecolor="black", color="tab:grey")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("images")
    return _save(figure, path)
