"""Plots for evaluating classifiers and training runs. Introduced in lesson 02.

Every function draws on `ax` (or on a new figure when `ax` is None) and returns the Axes, so a notebook cell
can end on it. pyplot is used only to create figures; nothing here calls `plt.show()`.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

_SUMMARY_ROWS = {"accuracy", "macro avg", "weighted avg", "micro avg", "samples avg"}  # sklearn report extras


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def _f1(row: dict[str, float]) -> float:
    return row["f1"] if "f1" in row else row["f1-score"]  # camp.metrics / sklearn classification_report


def training_curves(history: list[dict] | dict[str, list[dict]], keys: tuple[str, ...] | str = ("loss/train",
                    "eval/macro_f1"), x: str = "step", ax: Axes | None = None, logy: tuple[str, ...] = (),
                    hlines: dict[str, float] | None = None) -> Axes | np.ndarray:
    """One panel per metric, side by side, with one line per run.

    Args:
        history: one run's records, such as {"step": 10, "loss/train": 0.9, "eval/macro_f1": 0.4}, or several
            runs as {label: records} (drawn in one colour each, with a legend). A metric may be absent from some
            records (evaluation runs less often than logging).
        keys: metric names to plot, one panel each.
        x: the record key for the horizontal axis: "step" (every camp history has it), or "samples" to compare
            runs that see data at different rates.
        ax: where to draw; only allowed with a single key.
        logy: keys whose panel gets a log scale.
        hlines: a dotted reference line per label, drawn on every panel (e.g. {"chance": 1 / 6}).

    Returns:
        The Axes for a single key, else a 1-D array of Axes in the order of `keys`.

    Raises:
        ValueError: a key is in no record (the message lists the keys there are), a record lacks `x`, or `ax`
            with several keys.
    """
    runs = history if isinstance(history, dict) else {"": history}
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if not keys:
        raise ValueError("keys is empty; name at least one metric to plot")
    records = [record for run in runs.values() for record in run]
    available = sorted({k for record in records for k in record} - {x})
    for key in keys:
        if not any(key in record for record in records):
            raise ValueError(f"no record in history has {key!r}; available keys: {available}")
    if ax is not None and len(keys) > 1:
        raise ValueError(f"ax was given but {len(keys)} keys need one panel each; pass ax=None or one key")
    if any(x not in record for record in records):
        raise ValueError(f"every record in history needs {x!r} (the x axis); available keys: {available}")
    axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)[1][0] if ax is None \
        else np.array([ax], dtype=object)
    for key, panel in zip(keys, axes, strict=True):
        for label, run in runs.items():
            points = [(record[x], record[key]) for record in run if key in record]
            panel.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=label or None)
        for label, value in (hlines or {}).items():
            panel.axhline(value, color="grey", ls=":", label=label)
        panel.set(title=key, xlabel=x, yscale="log" if key in logy else "linear")
        panel.grid(alpha=0.3)
        if len(runs) > 1 or hlines:
            panel.legend(fontsize=8)
    return axes[0] if len(keys) == 1 else axes


def confusion_matrix(cm: list[list[int]] | np.ndarray, labels: list[str], normalize: bool = True,
                     ax: Axes | None = None) -> Axes:
    """Heat map of a confusion matrix, every cell annotated with its value.

    Args:
        cm: counts, rows = true label, columns = predicted label (sklearn's layout).
        labels: class names, in the order of the rows.
        normalize: divide each row by its total, so a cell is the share of that true class (an empty row
            stays 0).
        ax: where to draw; a new figure when None.

    Returns:
        The Axes.

    Raises:
        ValueError: `cm` is not square with one row per label.
    """
    cm = np.asarray(cm, dtype=float)
    n = len(labels)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix has shape {cm.shape}, expected {(n, n)} for {n} labels")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
    vmax = 1.0 if normalize else max(cm.max(initial=0.0), 1.0)
    ax = _axes(ax, (max(5.5, 0.8 * n + 1.0), max(4.5, 0.7 * n + 0.6)))
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=vmax)
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]:.2f}" if normalize else f"{round(cm[i, j]):d}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > 0.5 * vmax else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set(xlabel="predicted", ylabel="true")
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax


def per_class_f1(per_class: dict[str, dict[str, float]], ax: Axes | None = None,
                 baseline: dict[str, dict[str, float]] | None = None) -> Axes:
    """Bars of each class's F1, paired with a baseline's when given.

    Args:
        per_class: {class: {"precision": .., "recall": .., "f1": .., "support": ..}}, as in the "per_class"
            entry of camp.metrics.evaluate. sklearn's classification_report(output_dict=True) works too: its
            "f1-score" is read and its summary rows ("accuracy", "macro avg", ...) are skipped.
        ax: where to draw; a new figure when None.
        baseline: the same format for a baseline model, drawn next to each class's bar.

    Returns:
        The Axes (model bars first in `ax.patches`, then the baseline's).

    Raises:
        ValueError: the baseline lacks a class that `per_class` has.
    """
    names = [n for n, row in per_class.items() if isinstance(row, dict) and n not in _SUMMARY_ROWS]
    if baseline is not None and (missing := [n for n in names if n not in baseline]):
        raise ValueError(f"baseline has no entry for {missing}; it has {list(baseline)}")
    x = np.arange(len(names))
    width = 0.4 if baseline is not None else 0.7
    shift = width / 2 if baseline is not None else 0.0
    ax = _axes(ax, (max(4.0, 0.9 * len(names) + 1), 3.2))
    ax.bar(x - shift, [_f1(per_class[n]) for n in names], width, label="model")
    if baseline is not None:
        ax.bar(x + shift, [_f1(baseline[n]) for n in names], width, label="baseline", alpha=0.7)
        ax.legend()
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set(ylim=(0, 1), ylabel="F1")
    return ax


def _calibration_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int):
    """Validate, then bin by confidence: bin b holds [b/n_bins, (b+1)/n_bins), the last one also 1.0.

    Returns (edges, count, accuracy, confidence) with one entry per bin (accuracy and confidence are NaN in
    empty bins) and edges of length n_bins + 1.
    """
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    if not isinstance(n_bins, int | np.integer) or isinstance(n_bins, bool) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty 2-D array (N samples, C classes), got shape {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},) to match probs {probs.shape}, "
                         f"got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1} for {probs.shape[1]} classes, "
                         f"got values from {labels.min()} to {labels.max()}")
    if not np.all((probs >= 0) & (probs <= 1)):
        raise ValueError("probs must be probabilities in [0, 1] (apply softmax to logits first)")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(float)
    # floor(conf * n) puts k/n exactly on bin k; np.linspace edges would misplace 0.3, 0.6, 0.7 for n=10.
    which = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(which, weights=confidence, minlength=n_bins) / count
    return np.arange(n_bins + 1) / n_bins, count, accuracy, mean_conf


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> float:
    """ECE = sum over non-empty bins b of (n_b / N) * |accuracy_b - mean confidence_b|.

    Args:
        probs: class probabilities, shape (N, C); confidence is the largest one in each row.
        labels: true class indices, shape (N,).
        n_bins: number of equal-width confidence bins on [0, 1].

    Returns:
        The ECE, in [0, 1]; 0 when, in every bin, the accuracy equals the mean confidence.

    Raises:
        ValueError: probs not 2-D, labels not matching N or out of 0..C-1, probs outside [0, 1], bad n_bins.
    """
    _, count, accuracy, confidence = _calibration_bins(probs, labels, n_bins)
    filled = count > 0
    return float(np.sum(count[filled] / count.sum() * np.abs(accuracy[filled] - confidence[filled])))


def reliability_diagram(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10,
                        ax: Axes | None = None) -> tuple[Axes, float]:
    """Accuracy per confidence bin against the diagonal of perfect calibration, ECE in the title.

    Args:
        probs: class probabilities, shape (N, C).
        labels: true class indices, shape (N,).
        n_bins: number of equal-width confidence bins on [0, 1].
        ax: where to draw; a new figure when None.

    Returns:
        (Axes, ECE). Bars below the diagonal mean over-confidence. Empty bins get no bar.

    Raises:
        ValueError: as `expected_calibration_error` does.
    """
    edges, count, accuracy, _ = _calibration_bins(probs, labels, n_bins)
    ece = expected_calibration_error(probs, labels, n_bins)
    filled = count > 0
    centres = (edges[:-1] + edges[1:]) / 2
    ax = _axes(ax, (4, 4))
    ax.bar(centres[filled], accuracy[filled], width=np.diff(edges)[filled], edgecolor="black", alpha=0.7,
           label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    ax.set_title(f"ECE = {ece:.3f}")
    ax.legend(loc="upper left")
    return ax, ece


def overoptimisation(curves: dict[str, list[dict]], proxy: str = "reward_model", gold: str = "judge",
                     axes: tuple[Axes, Axes] | None = None) -> tuple[Axes, Axes]:
    """Proxy and gold score against sqrt(KL to the reference), one line per run (Gao et al. 2022, figure 1).

    Each curve is a list of points with `kl`, `proxy` and `gold` keys (by default `reward_model` and `judge`:
    the reward being optimised and the judge nobody trains against), ordered along training. The proxy rising
    while the gold score stalls or falls is over-optimisation.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, points in curves.items():
        x = [math.sqrt(max(p["kl"], 0.0)) for p in points]
        for ax, key in zip(axes, (proxy, gold), strict=True):
            ax.plot(x, [p[key] for p in points], marker="o", label=name)
    for ax, key, what in zip(axes, (proxy, gold), ("optimised", "never optimised"), strict=True):
        ax.set_xlabel("sqrt(KL to the reference), nats^0.5")
        ax.set_ylabel(key)
        ax.set_title(f"{key} ({what})")
        ax.legend(fontsize="small")
    return axes
