"""The evaluation report's figures, as pure functions from numbers to a matplotlib `Figure`.

Drawn with matplotlib's object-oriented API on the Agg backend (no display, no global pyplot
state); `svhn_jax.report` computes the numbers and writes the files.
"""
from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.figure import Figure

from svhn_jax.tasks import metrics

GRID = (4, 8)  # rows, columns of the example grids


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def fig_distribution(title: str, classes: list[str], series: dict[str, np.ndarray]) -> Figure:
    """Grouped bars of the fraction of each class, one bar group per data set."""
    fig = Figure(figsize=(7, 3.5))
    ax = fig.add_subplot()
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(classes))
    for i, (name, counts) in enumerate(series.items()):
        total = max(int(counts.sum()), 1)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, counts / total, width, label=f"{name} (n={total:,})")
    ax.set_xticks(x, classes)
    ax.set_ylabel("fraction")
    ax.set_title(title)
    ax.legend()
    return fig


def _curve_name(key: str) -> str | None:
    """metrics.jsonl key -> panel name: train "loss" and eval "eval_loss" share the panel "loss"."""
    name = key.removeprefix("eval_")
    skip = name in ("step", "split", "num_eval_examples", "digits_missed") or name.startswith("threshold_at_")
    return None if skip else name


def fig_curves(history: list[dict[str, Any]]) -> Figure:
    """One panel per logged scalar (train and eval of the same quantity together), one line per split."""
    series: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in history:
        for k, v in r.items():
            name = _curve_name(k)
            if name and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                series.setdefault(name, {}).setdefault(str(r.get("split", "")), []).append((r["step"], v))
    order = ["loss", "sequence_accuracy", "digit_accuracy", "length_accuracy", "learning_rate"]
    names = sorted(series, key=lambda n: (order.index(n) if n in order else len(order), n))
    cols = min(3, max(len(names), 1))
    rows = max(math.ceil(len(names) / cols), 1)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows), layout="constrained")
    if not names:
        _note(fig.add_subplot(), "no metrics.jsonl records")
        return fig
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for split, points in sorted(series[name].items(), key=lambda kv: (kv[0] != "train", kv[0])):
            steps, values = zip(*sorted(points))
            ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=split)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend()
    return fig


def fig_confusion(confusion: np.ndarray, labels: list[str], title: str, xlabel: str, ylabel: str) -> Figure:
    """Heat map normalised per row (true class), with the counts written in each cell."""
    rows = confusion.sum(1, keepdims=True)
    share = confusion / np.maximum(rows, 1)
    fig = Figure(figsize=(0.55 * len(labels) + 2.5, 0.5 * len(labels) + 1.5))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="fraction of the row")
    for (i, j), n in np.ndenumerate(confusion):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def fig_accuracy_per_length(accuracy: np.ndarray, count: np.ndarray) -> Figure:
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    lengths = [k for k in range(1, len(count)) if count[k]]
    ax.bar(range(len(lengths)), [accuracy[k] for k in lengths], color="tab:blue")
    ax.set_xticks(range(len(lengths)), [str(k) for k in lengths])
    for i, k in enumerate(lengths):
        ax.text(i, accuracy[k], f"{accuracy[k]:.1%}\nn={count[k]:,}", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("true length")
    ax.set_ylabel("sequence accuracy")
    return fig


def fig_coverage(confidence: np.ndarray, correct: np.ndarray, targets: tuple[float, ...]) -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    coverage, accuracy, _ = metrics.coverage_curve(confidence, correct)
    ax.plot(np.r_[0.0, coverage], np.r_[accuracy[:1], accuracy], drawstyle="steps-pre")
    for target in targets:
        cov, _ = metrics.coverage_at_accuracy(confidence, correct, target)
        ax.axhline(target, color="grey", lw=0.8, ls="--")
        ax.plot([cov], [target], "o", label=f"{cov:.1%} coverage at {target:.0%} accuracy")
    ax.set_xlim(0, 1)
    ax.set_xlabel("coverage (most confident answered first)")
    ax.set_ylabel("accuracy of the answered")
    ax.legend(loc="lower left")
    return fig


def fig_examples(images: np.ndarray, true: list[str], pred: list[str], confidence: np.ndarray,
                 title: str) -> Figure:
    """A grid of examples drawn as one mosaic (one axes: fast), each titled true / read / confidence."""
    rows, cols = GRID
    fig = Figure(figsize=(1.3 * cols, 1.55 * rows + 0.4))
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_axis_off()
    if len(images) == 0:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        return fig
    n, h, w, c = images.shape
    rows = min(rows, math.ceil(n / cols))
    pad_h, pad_w = h // 2, w // 8  # room above each image for its caption
    mosaic = np.full((rows * (h + pad_h), cols * (w + pad_w), 3), 255, np.uint8)
    for i in range(min(n, rows * cols)):
        r, k = divmod(i, cols)
        top, left = r * (h + pad_h) + pad_h, k * (w + pad_w)
        mosaic[top:top + h, left:left + w] = images[i] if c == 3 else images[i][..., :1]
        ax.text(left + w / 2, top - 1, f"true {true[i]}\nread {pred[i] or '-'} {confidence[i]:.2f}",
                ha="center", va="bottom", fontsize=7, color="black" if true[i] == pred[i] else "tab:red")
    ax.imshow(mosaic, interpolation="nearest")
    return fig
