"""Evaluation metrics as pure numpy functions of decoded predictions and true labels.

Predictions and labels use the data contract's encoding: lengths int [N], digits int [N, 5] with
PAD (10) after the last digit.
"""
from __future__ import annotations

from typing import Any

import numpy as np

PAD = 10


def sequence_correct(pred_digits: np.ndarray, true_digits: np.ndarray) -> np.ndarray:
    """Whole-sequence correctness per example (length and every digit right), bool [N]."""
    return np.all(np.asarray(pred_digits) == np.asarray(true_digits), axis=-1)


def digit_accuracy(pred_digits: np.ndarray, true_lengths: np.ndarray, true_digits: np.ndarray) -> float:
    """Fraction of the true digits (positions inside the true length) predicted right."""
    inside = np.arange(true_digits.shape[1])[None, :] < np.asarray(true_lengths)[:, None]
    return float(np.sum((pred_digits == true_digits) & inside) / max(int(inside.sum()), 1))


def evaluation_metrics(pred_lengths: np.ndarray, pred_digits: np.ndarray, confidence: np.ndarray,
                       true_lengths: np.ndarray, true_digits: np.ndarray) -> dict[str, Any]:
    """Every evaluation figure, JSON-serialisable, keys prefixed with ``eval_``."""
    correct = sequence_correct(pred_digits, true_digits)
    return {
        "eval_sequence_accuracy": float(correct.mean()) if correct.size else 0.0,
        "eval_digit_accuracy": digit_accuracy(pred_digits, true_lengths, true_digits),
        "num_eval_examples": int(correct.size),
    }
