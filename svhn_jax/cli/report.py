"""Evaluation report of a finished run: figures plus a markdown summary.

  python -m svhn_jax.report --workdir=W

Reads W/eval_predictions.npz (required), W/metrics.jsonl, W/final_metrics.json and W/config.json
(optional), and writes W/report.md with the PNG figures in W/figures/: data distributions (digit
classes, sequence lengths; evaluation set, plus the training set when its split file is at hand),
training and evaluation curves, digit and length confusion, accuracy per length, the
coverage-accuracy curve, and grids of correct and incorrect examples. Every metric is recomputed
from the predictions with `svhn_jax.tasks.metrics`. Each file is written whole (temporary file, then
renamed), so a failure never leaves a half-written one.
"""
from __future__ import annotations

import json
import os
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from absl import flags
from matplotlib.figure import Figure

from svhn_jax.core.cli import cli, run_program
from svhn_jax.core.errors import UserError, one_line
from svhn_jax.core.fileio import atomic_write
from svhn_jax.data.store import decode_labels
from svhn_jax.tasks import metrics
from svhn_jax.tasks.report_figures import (
    GRID,
    fig_accuracy_per_length,
    fig_confusion,
    fig_coverage,
    fig_curves,
    fig_distribution,
    fig_examples,
)

FIGURES = ("digit_distribution.png", "length_distribution.png", "training_curves.png", "digit_confusion.png",
           "length_confusion.png", "accuracy_per_length.png", "coverage.png", "examples_correct.png",
           "examples_incorrect.png")  # written into W/figures/


class ReportError(UserError):
    """The workdir cannot be reported on; the message is one line for the user."""


# ----------------------------------------------------------------------------- inputs

def read_history(path: Path) -> list[dict[str, Any]]:
    """metrics.jsonl -> records; a line that does not parse (a crash mid-write) is skipped."""
    records = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "step" in record:
                records.append(record)
    return records


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    keys = ("pred_lengths", "pred_digits", "confidence", "true_lengths", "true_digits")
    if not path.exists():
        raise ReportError(f"{path} is missing: the run has not finished its final evaluation")
    try:
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # truncated or damaged
        raise ReportError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise ReportError(f"{path}: missing arrays {missing}")
    return data


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON ({e})") from None


def training_labels(config: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(lengths, digits) of the training split files when they are on disk, else None."""
    import h5py
    import ml_collections

    from svhn_jax.data import paths
    try:
        files, _ = paths.split_files(ml_collections.ConfigDict(config))
        if not files or not all(p.is_file() for p in files):
            return None
        parts = []
        for p in files:
            with h5py.File(p, "r") as f:
                parts.append((f["lengths"][...], f["digits"][...]))
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
    except Exception:  # the training distribution is optional
        return None


# ----------------------------------------------------------------------------- report

def _save(fig: Figure, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_report(workdir: str | os.PathLike, targets: tuple[float, ...] = metrics.COVERAGE_TARGETS) -> Path:
    """Writes W/report.md and W/figures/*.png; returns the report's path."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise ReportError(f"{workdir}: no such workdir")
    preds = read_predictions(workdir / "eval_predictions.npz")
    config = read_json(workdir / "config.json")
    final = read_json(workdir / "final_metrics.json")
    history = read_history(workdir / "metrics.jsonl")

    p_len, p_dig, conf = preds["pred_lengths"], preds["pred_digits"], preds["confidence"]
    t_len, t_dig = preds["true_lengths"], preds["true_digits"]
    m = metrics.evaluation_metrics(p_len, p_dig, conf, t_len, t_dig, targets)
    correct = metrics.sequence_correct(p_dig, t_dig)
    per_length, count = metrics.accuracy_per_length(correct, t_len)

    def digit_counts(lengths: np.ndarray, digits: np.ndarray) -> np.ndarray:
        inside = np.arange(digits.shape[1])[None, :] < lengths[:, None]
        return np.bincount(digits[inside], minlength=10)[:10]

    digit_series = {"eval": digit_counts(t_len, t_dig)}
    length_series = {"eval": np.bincount(t_len, minlength=6)[1:6]}
    train = training_labels(config) if config else None
    if train is not None:
        digit_series = {"train": digit_counts(*train), **digit_series}
        length_series = {"train": np.bincount(train[0], minlength=6)[1:6], **length_series}

    true_text = decode_labels(t_len, t_dig)
    pred_text = decode_labels(p_len, p_dig)
    images = preds.get("images", np.zeros((0, 1, 1, 1), np.uint8))
    shown = len(images)
    ok = np.flatnonzero(correct[:shown])
    bad = np.flatnonzero(~correct[:shown])
    bad = bad[np.argsort(-conf[bad], kind="stable")]  # the most confident mistakes first

    def grid(index: np.ndarray, title: str) -> Figure:
        index = index[: GRID[0] * GRID[1]]
        return fig_examples(images[index], [true_text[i] for i in index], [pred_text[i] for i in index],
                            conf[index], title)

    builders: dict[str, Callable[[], Figure]] = {
        "digit_distribution.png": lambda: fig_distribution("Digit classes", [str(d) for d in range(10)],
                                                           digit_series),
        "length_distribution.png": lambda: fig_distribution("Sequence lengths", [str(k) for k in range(1, 6)],
                                                            length_series),
        "training_curves.png": lambda: fig_curves(history),
        "digit_confusion.png": lambda: fig_confusion(np.array(m["eval_digit_confusion"]),
                                                     [str(d) for d in range(10)], "Digit confusion",
                                                     "predicted digit", "true digit"),
        "length_confusion.png": lambda: fig_confusion(np.array(m["eval_length_confusion"]),
                                                      [str(k) for k in range(6)], "Length confusion",
                                                      "predicted length", "true length"),
        "accuracy_per_length.png": lambda: fig_accuracy_per_length(per_length, count),
        "coverage.png": lambda: fig_coverage(conf, correct, targets),
        "examples_correct.png": lambda: grid(ok, "Correct (in evaluation order)"),
        "examples_incorrect.png": lambda: grid(bad, "Incorrect (most confident first)"),
    }
    figures = workdir / "figures"
    figures.mkdir(exist_ok=True)
    for name in FIGURES:
        _save(builders[name](), figures / name)

    text = _markdown(workdir, config, final, m, per_length, count, targets, shown, train is not None)
    path = workdir / "report.md"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def _markdown(workdir: Path, config: dict[str, Any], final: dict[str, Any], m: dict[str, Any],
              per_length: np.ndarray, count: np.ndarray, targets: tuple[float, ...], shown: int,
              have_train: bool) -> str:
    key = metrics.target_key
    lines = [f"# Evaluation report: {workdir.resolve().name}", ""]
    if config:
        lines += [f"Model `{config.get('model')}` (head `{config.get('head')}`), dataset "
                  f"`{config.get('dataset')}`, recipe `{config.get('recipe')}`, evaluated on split "
                  f"`{config.get('eval_split')}` after {final.get('step', config.get('num_train_steps'))} steps.", ""]
    lines += ["## Results", "", "| metric | value |", "|---|---|",
              f"| sequence accuracy | {m['eval_sequence_accuracy']:.2%} |",
              f"| digit accuracy | {m['eval_digit_accuracy']:.2%} |",
              f"| length accuracy | {m['eval_length_accuracy']:.2%} |",
              f"| examples evaluated | {m['num_eval_examples']:,} |"]
    for t in targets:
        thr = m[f"eval_threshold_at_{key(t)}"]
        lines.append(f"| coverage at {t:.0%} accuracy | {m[f'eval_coverage_at_{key(t)}']:.2%} "
                     f"(confidence ≥ {_fmt(thr)}) |")
    for k in ("eval_loss", "train_images_per_second", "wall_seconds", "device_kind", "device_count",
              "params_sha256"):
        if k in final:
            lines.append(f"| {k} | {_fmt(final[k])} |")
    lines += ["", "Coverage: answering the most confident examples first, the largest fraction that can "
              "be answered with the accuracy of the answered ones at the target; confidence is the "
              "probability of the decoded sequence.", "",
              "## Accuracy per length", "", "| true length | examples | sequence accuracy |", "|---|---|---|"]
    lines += [f"| {k} | {count[k]:,} | {per_length[k]:.2%} |" for k in range(1, 6) if count[k]]
    lines += ["", "![accuracy per length](figures/accuracy_per_length.png)", "",
              "## Coverage", "", "![coverage](figures/coverage.png)", "",
              "## Confusion", "",
              "Digit confusion: rows the true digit, columns the predicted one, over the positions inside "
              f"the true length where a digit was predicted ({m['eval_digits_missed']:,} true digits fell "
              "after the end of the predicted sequence and are not counted). Cells are shaded by the "
              "fraction of their row and show counts.", "",
              "![digit confusion](figures/digit_confusion.png)", "",
              "![length confusion](figures/length_confusion.png)", "",
              "## Data", "",
              "Evaluation set" + (" and training set" if have_train else
                                   " (the training split files are not on this machine)") + ".", "",
              "![digit classes](figures/digit_distribution.png)", "",
              "![sequence lengths](figures/length_distribution.png)", "",
              "## Training", "", "![curves](figures/training_curves.png)", "",
              "## Examples", "",
              f"From the first {shown:,} evaluation images: correct ones in order, incorrect ones most "
              "confident first (titles: true label, what was read, confidence).", "",
              "![correct](figures/examples_correct.png)", "", "![incorrect](figures/examples_incorrect.png)", ""]
    return "\n".join(lines)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (importing this module defines none)."""
    flags.DEFINE_string("workdir", None, "The run's working directory.")


@cli
def main(argv: list[str]) -> int:
    if len(argv) > 1 or not FLAGS.workdir:
        print("usage: python -m svhn_jax.report --workdir=W", file=sys.stderr)
        return 2
    try:
        path = write_report(FLAGS.workdir)
    except (UserError, OSError) as e:
        print(f"report: {one_line(e)}", file=sys.stderr)
        return 1
    print(f"wrote {path} and {len(FIGURES)} figures in {path.parent / 'figures'}")
    return 0


def run_as_program() -> None:
    """Runs the command (`python -m svhn_jax.report`)."""
    define_flags()
    run_program(main)

