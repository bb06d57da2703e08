"""Evaluation metrics as pure functions of decoded predictions and true labels.

`sequence_correct`, `digit_accuracy` and `batch_accuracies` take numpy or jax arrays (they also run
inside a jitted training step, for the logged batch accuracies); the rest is numpy.

Predictions and labels use the data contract's encoding: lengths int [N], digits int [N, 5] with
PAD (10) after the last digit. A predicted length of 0 (an empty answer, possible with the
``length`` head) is allowed; true lengths are 1-5.

Definitions:

- *sequence accuracy*: the fraction of examples whose whole padded sequence is right (length and
  every digit); no partial credit.
- *digit accuracy*: the fraction of true digits (positions inside the true length) predicted right.
- *accuracy per length*: sequence accuracy over the examples of each true length.
- *digit confusion* ``[10, 10]``: rows the true digit, columns the predicted digit, counted over the
  positions inside the true length where the prediction holds a digit (not PAD). Positions inside
  the true length where the prediction has already ended are not in the matrix; they are counted
  as ``digits_missed``. Digits predicted beyond the true length are not counted either.
- *length confusion* ``[6, 6]``: rows the true length, columns the predicted length, both 0-5
  (row 0 is empty because true lengths are 1-5).
- *coverage at accuracy a*: answer the examples most confident first; the coverage is the largest
  fraction of the examples that can be answered with the accuracy of the answered ones still
  >= a. Examples of equal confidence are answered together (a confidence threshold cannot split
  them). The threshold reported is the smallest confidence answered (answer when
  ``confidence >= threshold``); when nothing can be answered, coverage is 0 and threshold None.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from svhn_jax.data.labels import MAX_DIGITS, PAD

COVERAGE_TARGETS = (0.98, 0.95)
Array = Any  # a numpy or jax array


def sequence_correct(pred_digits: Array, true_digits: Array) -> Array:
    """Whole-sequence correctness per example (length and every digit right), bool [N]."""
    return (pred_digits == true_digits).all(axis=-1)


def _inside(true_lengths: Array, width: int = MAX_DIGITS) -> Array:
    """bool [N, width]: the positions inside each true length."""
    return true_lengths[:, None] > np.arange(width)[None, :]


def digit_accuracy(pred_digits: Array, true_lengths: Array, true_digits: Array) -> Array:
    """Fraction of the true digits (positions inside the true length) predicted right (0 with none)."""
    inside = _inside(true_lengths, true_digits.shape[1])
    hits = (pred_digits == true_digits) & inside
    return hits.sum() / inside.sum().clip(1)


def batch_accuracies(pred_digits: Array, true_lengths: Array, true_digits: Array) -> dict[str, Array]:
    """{"sequence_accuracy", "digit_accuracy"} of a batch, as 0-d arrays (works under jit)."""
    return {"sequence_accuracy": sequence_correct(pred_digits, true_digits).mean(),
            "digit_accuracy": digit_accuracy(pred_digits, true_lengths, true_digits)}


def accuracy_per_length(correct: np.ndarray, true_lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sequence accuracy and example count per true length.

    Returns (accuracy float [6], count int [6]) indexed by length 0-5; accuracy is NaN where a
    length has no example.
    """
    lengths = np.asarray(true_lengths)
    count = np.bincount(lengths, minlength=MAX_DIGITS + 1)[: MAX_DIGITS + 1]
    hits = np.bincount(lengths, weights=np.asarray(correct, np.float64), minlength=MAX_DIGITS + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(count > 0, hits[: MAX_DIGITS + 1] / count, np.nan)
    return accuracy, count.astype(np.int64)


def digit_confusion(pred_digits: np.ndarray, true_lengths: np.ndarray,
                    true_digits: np.ndarray) -> tuple[np.ndarray, int]:
    """(confusion int [10, 10] rows true / columns predicted, digits_missed) — see module doc."""
    pred, true = np.asarray(pred_digits), np.asarray(true_digits)
    inside = _inside(np.asarray(true_lengths), true.shape[1])
    counted = inside & (pred != PAD)
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (true[counted], pred[counted]), 1)
    return confusion, int((inside & (pred == PAD)).sum())


def length_confusion(pred_lengths: np.ndarray, true_lengths: np.ndarray) -> np.ndarray:
    """Confusion of the sequence length, int [6, 6]: rows true length, columns predicted, 0-5."""
    confusion = np.zeros((MAX_DIGITS + 1, MAX_DIGITS + 1), np.int64)
    np.add.at(confusion, (np.asarray(true_lengths), np.asarray(pred_lengths)), 1)
    return confusion


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy of the answered examples as the confidence threshold falls.

    Returns (coverage, accuracy, threshold), one point per distinct confidence, most confident
    first: answering every example with ``confidence >= threshold[i]`` covers ``coverage[i]`` of
    the examples with accuracy ``accuracy[i]``.
    """
    conf = np.asarray(confidence, np.float64)
    order = np.argsort(-conf, kind="stable")
    conf, hits = conf[order], np.asarray(correct, np.float64)[order]
    if conf.size == 0:
        empty = np.zeros((0,), np.float64)
        return empty, empty, empty
    # The last example of each run of equal confidences closes a point of the curve.
    last = np.flatnonzero(np.r_[conf[1:] != conf[:-1], True])
    answered = last + 1
    return answered / conf.size, np.cumsum(hits)[last] / answered, conf[last]


def coverage_at_accuracy(confidence: np.ndarray, correct: np.ndarray,
                         target: float) -> tuple[float, float | None]:
    """(coverage, threshold): the largest fraction answerable with accuracy >= target (module doc)."""
    coverage, accuracy, threshold = coverage_curve(confidence, correct)
    ok = np.flatnonzero(accuracy >= target - 1e-12)
    if ok.size == 0:
        return 0.0, None
    best = ok[-1]
    return float(coverage[best]), float(threshold[best])


def target_key(target: float) -> str:
    """0.98 -> "98", 0.995 -> "99_5": the suffix of the coverage keys."""
    return f"{100 * target:g}".replace(".", "_")


def evaluation_metrics(pred_lengths: np.ndarray, pred_digits: np.ndarray, confidence: np.ndarray,
                       true_lengths: np.ndarray, true_digits: np.ndarray,
                       coverage_targets: Sequence[float] = COVERAGE_TARGETS) -> dict[str, Any]:
    """Every evaluation figure, JSON-serialisable.

    Scalars: ``eval_sequence_accuracy``, ``eval_digit_accuracy``, ``eval_length_accuracy``,
    ``num_eval_examples``, ``eval_digits_missed``, and per target a (e.g. 0.98 -> "98")
    ``eval_coverage_at_98`` and ``eval_threshold_at_98`` (None when nothing can be answered).
    Nested: ``eval_accuracy_per_length`` / ``eval_count_per_length`` ({"1": ..., ..., "5": ...},
    lengths with examples only), ``eval_digit_confusion`` (10 x 10 lists),
    ``eval_length_confusion`` (6 x 6 lists).
    """
    pred_lengths, pred_digits, true_lengths, true_digits = map(
        np.asarray, (pred_lengths, pred_digits, true_lengths, true_digits))
    correct = sequence_correct(pred_digits, true_digits)
    n = int(correct.size)
    per_length, count = accuracy_per_length(correct, true_lengths)
    confusion, missed = digit_confusion(pred_digits, true_lengths, true_digits)
    metrics: dict[str, Any] = {
        "eval_sequence_accuracy": float(correct.mean()) if n else 0.0,
        "eval_digit_accuracy": float(digit_accuracy(pred_digits, true_lengths, true_digits)),
        "eval_length_accuracy": float(np.mean(pred_lengths == true_lengths)) if n else 0.0,
        "num_eval_examples": n,
        "eval_digits_missed": missed,
    }
    for target in coverage_targets:
        cov, thr = coverage_at_accuracy(confidence, correct, target)
        metrics[f"eval_coverage_at_{target_key(target)}"] = cov
        metrics[f"eval_threshold_at_{target_key(target)}"] = thr
    present = [k for k in range(1, MAX_DIGITS + 1) if count[k]]
    metrics["eval_accuracy_per_length"] = {str(k): float(per_length[k]) for k in present}
    metrics["eval_count_per_length"] = {str(k): int(count[k]) for k in present}
    metrics["eval_digit_confusion"] = confusion.tolist()
    metrics["eval_length_confusion"] = length_confusion(pred_lengths, true_lengths).tolist()
    return metrics
